"""FinCore's custom checkov policies (loaded with --external-checks-dir; checkov needs this file)."""
