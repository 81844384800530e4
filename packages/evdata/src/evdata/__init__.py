"""evdata."""
