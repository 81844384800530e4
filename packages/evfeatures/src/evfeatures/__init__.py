"""evfeatures."""
