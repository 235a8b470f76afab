"""Adapters of noncde.dashboard: one module per technology; imported only by bootstrap."""
