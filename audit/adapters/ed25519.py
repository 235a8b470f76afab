"""audit adapter: Ed25519 checkpoint signing with a local key file, and verification.

The private key lives under `var/keys/audit/` (0600, folder 0700), apart from the log under
`var/audit/`: whoever can rewrite the log cannot sign a matching checkpoint (PCI DSS 10.3.4).
The verifier needs only the public key (`<zone>-checkpoint.pub`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.domain import AuditError, key_id_for

_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def _public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write_public(path: Path, key: Ed25519PublicKey) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    tmp.write_bytes(_public_pem(key))
    tmp.replace(path)


def public_key_path(private_key_path: Path) -> Path:
    return private_key_path.with_suffix(".pub")


class Ed25519FileSigner:
    """Signs with an Ed25519 private key read from (or created in) a 0600 PEM file."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self._key_id = key_id_for(private_key.public_key().public_bytes(*_RAW))

    @classmethod
    def load(cls, path: Path, *, create: bool) -> Ed25519FileSigner:
        """The key in `path`; with `create`, a new key is made when the file does not exist.

        Creation is race-free between processes (O_EXCL); the public key is written beside it.
        """
        if create and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            # Written whole to a private temporary file, then linked into place: link() fails
            # if the key exists, so concurrent first starts agree on one complete key.
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(pem)
                    handle.flush()
                    os.fsync(handle.fileno())
                try:
                    os.link(tmp, path)
                    created = True
                except FileExistsError:
                    created = False  # another process made it first: use theirs
            finally:
                tmp.unlink(missing_ok=True)
            if created:
                _write_public(public_key_path(path), key.public_key())
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise AuditError(f"audit checkpoint key {path} is not readable") from exc
        try:
            loaded = serialization.load_pem_private_key(data, password=None)
        except ValueError as exc:
            raise AuditError(f"audit checkpoint key {path} is not a PEM private key") from exc
        if not isinstance(loaded, Ed25519PrivateKey):
            raise AuditError(f"audit checkpoint key {path} is not an Ed25519 key")
        signer = cls(loaded)
        public = public_key_path(path)
        if not public.exists():
            with contextlib.suppress(OSError):
                _write_public(public, loaded.public_key())
        return signer

    @property
    def key_id(self) -> str:
        return self._key_id

    def public_key_pem(self) -> bytes:
        return _public_pem(self._key.public_key())

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


class Ed25519Verifier:
    """Verifies checkpoint signatures against a set of trusted Ed25519 public keys."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self._keys = dict(keys)

    @classmethod
    def from_pems(cls, pems: Sequence[bytes]) -> Ed25519Verifier:
        keys: dict[str, Ed25519PublicKey] = {}
        for pem in pems:
            try:
                key = serialization.load_pem_public_key(pem)
            except ValueError as exc:
                raise AuditError("a trusted audit public key is not a PEM public key") from exc
            if not isinstance(key, Ed25519PublicKey):
                raise AuditError("a trusted audit public key is not an Ed25519 key")
            keys[key_id_for(key.public_bytes(*_RAW))] = key
        return cls(keys)

    @classmethod
    def from_files(cls, paths: Sequence[Path]) -> Ed25519Verifier:
        pems = []
        for path in paths:
            try:
                pems.append(path.read_bytes())
            except OSError as exc:
                raise AuditError(f"audit public key {path} is not readable") from exc
        return cls.from_pems(pems)

    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def public_keys_pem(self) -> dict[str, bytes]:
        return {key_id: _public_pem(key) for key_id, key in sorted(self._keys.items())}

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool:
        key = self._keys.get(key_id)
        if key is None:
            return False
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True
