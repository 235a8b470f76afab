"""Test harness: real servers (PostgreSQL, Redis, moto, localstripe, SFTP, Chromium) on loopback."""
