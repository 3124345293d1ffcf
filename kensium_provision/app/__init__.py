"""The composition root: config, guards, and the one bootstrap that wires every run."""
