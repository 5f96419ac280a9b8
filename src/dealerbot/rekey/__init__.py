"""Re-keying into the DMS: the ledger's vocabulary, reconciliation (the plan of writes) and the
exactly-once writer."""
