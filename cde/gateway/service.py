"""cde.gateway: the use cases; talks to ports only."""
