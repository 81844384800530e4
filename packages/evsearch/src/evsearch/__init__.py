"""evsearch."""
