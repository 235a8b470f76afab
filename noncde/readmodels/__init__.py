"""Non-CDE: read models (PaymentDB) and the double-entry ledger (LedgerDB)."""
