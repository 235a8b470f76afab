"""Contract tests of the PSP adapter against the sandbox and localstripe."""
