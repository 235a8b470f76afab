"""noncde.workers (non-CDE): the values and decisions of the job worker (`jobs`), merchant
webhooks (`webhooks`) and reconciliation (`reconciliation`); pure, no I/O."""
