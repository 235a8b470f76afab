"""FinCore shared kernel: logging with redaction, card detection, masked types, settings,
service identity, the local runner and the PAN sweep. No business logic; imports neither zone."""

__version__ = "0.1.0"
