"""audit: records, the event catalogue, hash chain and checkpoints; pure."""
