"""Both zones: the tamper-evident audit log (library in every process, CLI for auditors)."""
