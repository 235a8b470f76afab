"""noncde.readmodels (non-CDE): the values of PaymentDB (read models for lists and counts) and of
LedgerDB (double-entry postings derived from events); pure, no I/O."""
