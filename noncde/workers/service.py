"""noncde.workers: the use cases; talks to ports only."""
