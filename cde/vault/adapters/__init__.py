"""Adapters of cde.vault: one module per technology; imported only by bootstrap."""
