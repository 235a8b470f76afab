"""noncde.api: the Protocols for everything outside this component."""
