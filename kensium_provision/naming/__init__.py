"""Kensium's naming conventions: the rules, and the sweep of an account for names that break them."""
