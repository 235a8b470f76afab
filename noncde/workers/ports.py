"""noncde.workers: the Protocols for everything outside this component."""
