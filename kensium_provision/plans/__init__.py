"""Saved plans and their approvals (issue 17.3 and 17.4)."""
