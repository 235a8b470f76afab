"""noncde.api adapters, files: the API's keyring from one local key file (the development and
single-host default).

The file holds 32 random bytes (0600, created on first run outside production). Two keys are
derived from it with HKDF-SHA-256: the pepper of API-key digests and the AES-256-GCM key that
seals webhook signing secrets (bound to their endpoint id as associated data). In production
the file is provisioned by the deployment (from a secrets manager), never created here.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fincore.cards import contains_card_number

_ROOT_BYTES = 32
_SEALED_PREFIX = "v1."


def _derive(root: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(root)


def _new_root() -> bytes:
    # Never leave a card-like digit run in a file a PAN sweep reads (it would be a false alarm).
    while True:
        root = secrets.token_bytes(_ROOT_BYTES)
        if not contains_card_number(root.decode("latin-1")):
            return root


def load_or_create_root(path: Path, *, create: bool) -> bytes:
    """The root secret in `path`; created (0600, atomically) when missing and `create`."""
    try:
        root = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = _new_root()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            root = path.read_bytes()  # another process created it first
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(candidate)
                handle.flush()
                os.fsync(handle.fileno())
            root = candidate
    if len(root) < _ROOT_BYTES:
        raise ValueError(f"{path}: the API secret key must hold at least {_ROOT_BYTES} bytes")
    return root


class FileKeyring:
    """Keyring from a key file: `pepper()` for API keys, `seal`/`open` for webhook secrets."""

    def __init__(self, root: bytes) -> None:
        self._pepper = _derive(root, b"fincore.api.api-key-pepper.v1")
        self._aead = AESGCM(_derive(root, b"fincore.api.webhook-secret-seal.v1"))

    @classmethod
    def from_file(cls, path: Path, *, create: bool) -> FileKeyring:
        return cls(load_or_create_root(path, create=create))

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
