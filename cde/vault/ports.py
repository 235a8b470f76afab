"""cde.vault: the Protocols for everything outside this component."""
