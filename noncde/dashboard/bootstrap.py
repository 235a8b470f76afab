"""noncde.dashboard: the composition root: picks adapters from allow-listed URL schemes."""
