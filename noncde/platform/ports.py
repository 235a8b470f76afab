"""noncde.platform: ports."""
