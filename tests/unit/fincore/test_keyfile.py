"""fincore.keyfile: the local key file of the non-CDE keyrings (API, dashboard)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from fincore.cards import contains_card_number
from fincore.keyfile import load_or_create_key, new_key


def test_created_once_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "api.key"
    key = load_or_create_key(path, create=True, what="the test key")
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_key(path, create=True, what="the test key") == key
    assert load_or_create_key(path, create=False, what="the test key") == key


def test_missing_without_create_raises_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "absent.key"
    with pytest.raises(FileNotFoundError):
        load_or_create_key(path, create=False, what="the test key")
    assert not path.exists()


def test_a_short_key_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "short.key"
    path.write_bytes(b"x" * 31)
    with pytest.raises(ValueError, match="the test key must hold at least 32 bytes"):
        load_or_create_key(path, create=True, what="the test key")


def test_new_keys_never_hold_a_card_like_digit_run() -> None:
    keys = {new_key() for _ in range(2000)}
    assert len(keys) == 2000
    assert not any(contains_card_number(k.decode("latin-1")) for k in keys)
