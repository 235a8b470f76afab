"""noncde.readmodels: the composition root: picks adapters from allow-listed URL schemes."""
