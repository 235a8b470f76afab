"""audit: the Protocols for audit sinks and signers."""
