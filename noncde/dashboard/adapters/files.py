"""noncde.dashboard adapters, files: the sealing key of stored TOTP seeds, from one local key
file (the development and single-host default; 0600, created on first run outside
production). In production the file is provisioned from a secrets manager, never created.

PCI DSS 8.3.2: authentication factors are unreadable in storage. A TOTP seed must be usable
to check codes, so it cannot be hashed: it is sealed with AES-256-GCM under a key derived
(HKDF-SHA-256) from the file, bound to its account as associated data.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fincore.keyfile import load_or_create_key

_SEALED_PREFIX = "v1."


class AesGcmSecretBox:
    """seal/open with AES-256-GCM; the context string is the associated data."""

    def __init__(self, root: bytes) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"fincore.dashboard.totp-seal.v1"
        ).derive(root)
        self._aead = AESGCM(key)

    @classmethod
    def from_file(cls, path: Path, *, create: bool) -> AesGcmSecretBox:
        return cls(load_or_create_key(path, create=create, what="the dashboard key"))

    def seal(self, plaintext: str, context: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        return _SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, context: str) -> str:
        if not sealed.startswith(_SEALED_PREFIX):
            raise ValueError("unknown sealed-secret format")
        raw = base64.urlsafe_b64decode(sealed[len(_SEALED_PREFIX) :].encode("ascii"))
        try:
            plain = self._aead.decrypt(raw[:12], raw[12:], context.encode("utf-8"))
        except InvalidTag:
            raise ValueError("sealed secret failed authentication") from None
        return plain.decode("utf-8")
