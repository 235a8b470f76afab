"""Adapters of psp_sandbox: one module per technology; imported only by bootstrap."""
