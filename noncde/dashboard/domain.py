"""noncde.dashboard: values, entities, events and errors; pure, no I/O."""
