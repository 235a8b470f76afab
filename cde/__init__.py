"""The cardholder-data environment (CDE): vault, card ingress and PSP gateway."""
