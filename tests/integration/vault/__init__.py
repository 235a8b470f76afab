"""Tests of cde.vault (the card vault and the card ingress)."""
