"""Adapters of noncde.workers: one module per technology; imported only by bootstrap."""
