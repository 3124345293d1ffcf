"""What the operator sees and answers: rendering, prompts, diagnostics."""
