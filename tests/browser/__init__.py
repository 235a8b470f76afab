"""Browser tests (Playwright with Debian's Chromium)."""
