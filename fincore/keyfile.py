"""Shared kernel: a local key file of random bytes, created on first use (the development and
single-host default of the non-CDE components' keyrings; production provisions the file from
a secrets manager and never lets it be created)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from fincore.cards import contains_card_number

KEY_BYTES = 32


def new_key(size: int = KEY_BYTES) -> bytes:
    """`size` random bytes with no card-like digit run in them: a PAN sweep reads key files
    too, and a chance hit would be a false alarm."""
    while True:
        key = secrets.token_bytes(size)
        if not contains_card_number(key.decode("latin-1")):
            return key


def load_or_create_key(path: Path, *, create: bool, what: str, size: int = KEY_BYTES) -> bytes:
    """The key in `path`; when it is missing and `create`, a new one written atomically (file
    0600, folder 0700; if another process created it first, that one). `what` names the key
    in the error raised when the file holds fewer than `size` bytes."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        candidate = new_key(size)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = path.read_bytes()  # another process created it first
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(candidate)
                handle.flush()
                os.fsync(handle.fileno())
            key = candidate
    if len(key) < size:
        raise ValueError(f"{path}: {what} must hold at least {size} bytes")
    return key
