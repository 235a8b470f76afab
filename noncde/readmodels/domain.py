"""noncde.readmodels: values, entities, events and errors; pure, no I/O."""
