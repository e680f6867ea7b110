"""One module per command: each drives a ``Session`` its way and returns its typed result."""
