"""audit: writing, verifying, searching and exporting."""
