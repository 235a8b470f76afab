"""cde.vault (CDE): the local key-file KEK provider (development default; refused in production).

The key file (default `var/cde/vault-keys.json`) is created on first use with mode 0600 in a
0700 folder, and the provider refuses a file that group or others can read. It holds one or
more 256-bit KEKs; data keys are wrapped with them through the aws-encryption-sdk's
RawMasterKey (AES-256-GCM wrapping). Retiring a KEK erases its material from the file. Writes
are atomic (temporary file + rename) under an exclusive lock, so the CLI and a running vault
can share the file (PCI DSS 3.6.1.2: a KEK stored apart from the data it protects, access
restricted to the fewest custodians).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import stat
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aws_encryption_sdk.identifiers import EncryptionKeyType, WrappingAlgorithm
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKey

from cde.vault.adapters.esdk import EsdkEnvelope
from cde.vault.domain import KeyUnavailable
from cde.vault.domain.ids import new_kek_id

PROVIDER_ID = "fincore-vault-file"
_KEY_BYTES = 32


class KeyFileError(KeyUnavailable):
    """The key file is missing, unreadable, too open or malformed."""


class FileKeyProvider:
    """`KeyProvider` backed by a 0600 JSON key file."""

    name = "file"

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        self._envelope = EsdkEnvelope()
        self._lock = threading.Lock()
        self._loaded_stamp: tuple[int, int] | None = None
        self._keys: dict[str, bytes] = {}
        self._order: list[str] = []
        self._master_keys: dict[str, RawMasterKey] = {}
        if create and not path.exists():
            self._create()
        self._reload()

    # ------------------------------------------------------------ file handling

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._exclusive():
            if self.path.exists():
                return
            self._write([(new_kek_id(), os.urandom(_KEY_BYTES), datetime.now(UTC))])

    def _write(self, keys: list[tuple[str, bytes, datetime]]) -> None:
        body = {
            "format": "fincore-vault-keys/1",
            "keys": [
                {
                    "id": kek_id,
                    "material": base64.b64encode(material).decode("ascii"),
                    "created_at": created.isoformat(),
                }
                for kek_id, material, created in keys
            ],
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(body, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, self.path)

    def _read(self) -> list[tuple[str, bytes, datetime]]:
        try:
            info = self.path.stat()
        except FileNotFoundError as exc:
            raise KeyFileError("The vault key file does not exist.") from exc
        if stat.S_IMODE(info.st_mode) & 0o077:
            # PCI DSS 3.6.1.2: only the vault's own account may read its KEKs.
            raise KeyFileError("The vault key file is readable by others; chmod 600 it.")
        try:
            body = json.loads(self.path.read_text(encoding="utf-8"))
            keys = []
            for entry in body["keys"]:
                material = base64.b64decode(entry["material"], validate=True)
                if len(material) != _KEY_BYTES:
                    raise ValueError("bad key length")
                keys.append(
                    (str(entry["id"]), material, datetime.fromisoformat(entry["created_at"]))
                )
            return keys
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyFileError("The vault key file is malformed.") from exc

    def _reload(self) -> None:
        try:
            info = self.path.stat()
        except FileNotFoundError as exc:
            raise KeyFileError("The vault key file does not exist.") from exc
        stamp = (info.st_mtime_ns, info.st_size)
        with self._lock:
            if stamp == self._loaded_stamp:
                return
            keys = self._read()
            self._keys = {kek_id: material for kek_id, material, _ in keys}
            self._order = [kek_id for kek_id, _, _ in sorted(keys, key=lambda k: k[2])]
            self._master_keys = {
                k: v for k, v in self._master_keys.items() if self._keys.get(k) is not None
            }
            self._loaded_stamp = stamp

    def _master_key(self, kek_id: str) -> RawMasterKey:
        self._reload()
        with self._lock:
            master = self._master_keys.get(kek_id)
            if master is not None:
                return master
            material = self._keys.get(kek_id)
            if material is None:
                raise KeyUnavailable("The key-encryption key is not in the key file.")
            master = RawMasterKey(
                provider_id=PROVIDER_ID,
                key_id=kek_id.encode("ascii"),
                wrapping_key=WrappingKey(
                    wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
                    wrapping_key=material,
                    wrapping_key_type=EncryptionKeyType.SYMMETRIC,
                ),
            )
            self._master_keys[kek_id] = master
            return master

    # ------------------------------------------------------------ KeyProvider

    def default_kek_id(self) -> str:
        self._reload()
        if not self._order:
            raise KeyFileError("The vault key file holds no key.")
        return self._order[-1]

    def wrap(self, kek_id: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        return self._envelope.encrypt(self._master_key(kek_id), plaintext, context)

    def unwrap(self, kek_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        return self._envelope.decrypt(self._master_key(kek_id), wrapped, context)

    def create_kek(self) -> str:
        kek_id = new_kek_id()
        with self._exclusive():
            keys = self._read()
            keys.append((kek_id, os.urandom(_KEY_BYTES), datetime.now(UTC)))
            self._write(keys)
        self._reload()
        return kek_id

    def retire_kek(self, kek_id: str) -> None:
        with self._exclusive():
            keys = self._read()
            remaining = [k for k in keys if k[0] != kek_id]
            if len(remaining) != len(keys):
                self._write(remaining)
        self._reload()
        with self._lock:
            self._master_keys.pop(kek_id, None)

    def check(self, kek_id: str) -> bool:
        try:
            self._master_key(kek_id)
        except KeyUnavailable:
            return False
        return True

    def describe(self) -> dict[str, Any]:
        """Key ids and the file's mode (never the material)."""
        self._reload()
        return {"path": str(self.path), "keys": list(self._order)}
