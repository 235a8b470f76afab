"""audit: the frozen audit settings."""
