"""Outside both zones: a Stripe-compatible PSP stand-in (the PSP of local runs)."""
