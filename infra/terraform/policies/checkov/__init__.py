"""FinCore's custom checkov policies (checkov loads a folder only if it has this file)."""
