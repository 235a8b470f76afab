"""noncde.readmodels: the frozen settings object, built from the environment at start."""
