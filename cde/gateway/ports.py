"""cde.gateway: the Protocols for everything outside this component."""
