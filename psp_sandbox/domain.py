"""psp_sandbox: values, entities, events and errors; pure, no I/O."""
