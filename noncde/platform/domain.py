"""noncde.platform: domain."""
