"""The step engine (plan, apply, check) and the injected world of a run."""
