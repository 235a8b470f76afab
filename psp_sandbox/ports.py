"""psp_sandbox: the Protocols for everything outside this component."""
