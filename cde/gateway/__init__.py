"""CDE: the PSP gateway, the only component that talks to the PSP."""
