"""noncde.readmodels: the use cases; talks to ports only."""
