"""Non-CDE: the merchant API (charges, refunds, payment sessions, merchants, risk)."""
