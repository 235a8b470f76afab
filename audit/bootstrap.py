"""audit: the composition root: picks the sink from an allow-listed URL scheme."""
