"""psp_sandbox: the frozen settings object, built from the environment at start."""
