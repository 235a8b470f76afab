"""noncde.dashboard: the Protocols for everything outside this component."""
