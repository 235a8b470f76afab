"""Adapters of noncde.platform: one module per technology; imported only by bootstrap."""
