"""Adapters of noncde.api: one module per technology; imported only by bootstrap."""
