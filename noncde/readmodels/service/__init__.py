"""noncde.readmodels (non-CDE): the use cases: the projector (PaymentDB, LedgerDB) with lag and
rebuild, and the ledger's reports and corrections. Talks to ports only."""
