"""Adapters of cde.gateway: one module per technology; imported only by bootstrap."""
