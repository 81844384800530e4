"""evmodel."""
