"""Contract tests of cde.vault: one suite per port, run against every adapter."""
