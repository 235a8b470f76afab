"""noncde.api: the use cases; talks to ports only."""
