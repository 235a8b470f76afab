"""noncde.api adapters, files: the API's keyring from one local key file (the development and
single-host default).

The file holds 32 random bytes (0600, created on first run outside production). Two keys are
derived from it with HKDF-SHA-256: the pepper of API-key digests and the AES-256-GCM key that
seals webhook signing secrets (bound to their endpoint id as associated data). In production
the file is provisioned by the deployment (from a secrets manager), never created here.
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


def _derive(root: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(root)


class FileKeyring:
    """Keyring from a key file: `pepper()` for API keys, `seal`/`open` for webhook secrets."""

    def __init__(self, root: bytes) -> None:
        self._pepper = _derive(root, b"fincore.api.api-key-pepper.v1")
        self._aead = AESGCM(_derive(root, b"fincore.api.webhook-secret-seal.v1"))

    @classmethod
    def from_file(cls, path: Path, *, create: bool) -> FileKeyring:
        return cls(load_or_create_key(path, create=create, what="the API secret key"))

    def pepper(self) -> bytes:
        return self._pepper

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
