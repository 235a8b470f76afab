"""noncde.dashboard: the use cases; talks to ports only."""
