"""Password-manager backends."""
