"""psp_sandbox: the use cases; talks to ports only."""
