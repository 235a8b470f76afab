"""Adapters of audit: one module per sink technology; imported only by bootstrap."""
