"""evtrain."""
