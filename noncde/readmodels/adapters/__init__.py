"""Adapters of noncde.readmodels: one module per technology; imported only by bootstrap."""
