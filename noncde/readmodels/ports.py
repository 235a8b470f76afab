"""noncde.readmodels: the Protocols for everything outside this component."""
