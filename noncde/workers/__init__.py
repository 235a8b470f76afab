"""Non-CDE: job worker, merchant webhooks and reconciliation."""
