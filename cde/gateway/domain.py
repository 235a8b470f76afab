"""cde.gateway: values, entities, events and errors; pure, no I/O."""
