"""cde.vault: the use cases; talks to ports only."""
