"""Settings and the composition root: per-zone settings, allowed schemes, keys, production."""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

import pytest

from audit.bootstrap import open_audit_log, open_audit_reader
from audit.config import AuditSettings, Durability
from audit.domain import AuditError, EventType
from fincore.settings import SettingsError


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "FINCORE_VAR_DIR": str(tmp_path / "var"),
        "FINCORE_AUDIT_CHECKPOINT_SECONDS": "0",
        **extra,
    }


def test_zone_settings_override_shared_ones(tmp_path: Path) -> None:
    """FINCORE_CDE_AUDIT_* wins over FINCORE_AUDIT_* for the CDE, and only for it."""
    env = env_for(
        tmp_path,
        FINCORE_AUDIT_URL="memory://shared",
        FINCORE_CDE_AUDIT_URL="memory://cde-only",
        FINCORE_CDE_AUDIT_FSYNC="batch",
        FINCORE_AUDIT_FSYNC_BATCH_RECORDS="7",
    )
    cde = AuditSettings.from_env("cde", "vault", env=env)
    noncde = AuditSettings.from_env("noncde", "api", env=env)
    assert (cde.url, noncde.url) == ("memory://cde-only", "memory://shared")
    assert cde.durability.mode is Durability.BATCH
    assert noncde.durability.mode is Durability.ALWAYS
    assert cde.durability.batch_records == 7


def test_defaults_put_log_and_key_in_separate_folders(tmp_path: Path) -> None:
    """By default the log is under var/audit/ and the signing key under var/keys/audit/."""
    settings = AuditSettings.from_env("cde", "vault", env=env_for(tmp_path))
    var = (tmp_path / "var").resolve()
    assert settings.url == f"file://{var / 'audit'}"
    assert settings.url_is_default
    assert settings.signing_key_file == var / "keys" / "audit" / "cde-checkpoint.key"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FINCORE_AUDIT_FSYNC", "sometimes"),
        ("FINCORE_AUDIT_CHECKPOINT_RECORDS", "0"),
        ("FINCORE_AUDIT_FSYNC_BATCH_MS", "soon"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, name: str, value: str) -> None:
    """A bad value raises SettingsError naming the variable."""
    with pytest.raises(SettingsError, match="FINCORE_AUDIT_"):
        AuditSettings.from_env("cde", "vault", env=env_for(tmp_path, **{name: value}))


def test_only_allow_listed_schemes_are_accepted(tmp_path: Path) -> None:
    """A sink URL with an unknown scheme is refused, naming the zone's variable."""
    with pytest.raises(SettingsError, match="FINCORE_CDE_AUDIT_URL"):
        open_audit_log("cde", "vault", url="ftp://example/audit", env=env_for(tmp_path))


def test_first_open_creates_a_private_key_and_its_public_half(tmp_path: Path) -> None:
    """The checkpoint key is created 0600 in a 0700 folder; the .pub beside it is for verifiers."""
    env = env_for(tmp_path)
    open_audit_log("cde", "vault", env=env).close()
    key = tmp_path / "var" / "keys" / "audit" / "cde-checkpoint.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert key.with_suffix(".pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert not any(p.suffix == ".key" for p in (tmp_path / "var" / "audit").rglob("*"))


def test_memory_sink_is_shared_by_name_within_a_process(tmp_path: Path) -> None:
    """memory://name lets a library user's tests write and read the same in-process log."""
    url = f"memory://{secrets.token_hex(4)}"
    env = env_for(tmp_path)
    with open_audit_log("cde", "vault", url=url, env=env) as log:
        log.record(EventType.TOKENIZE, actor="ingress", outcome="success", target="tok_1")
    reader = open_audit_reader("cde", url=url, env=env)
    report = reader.verify()
    assert report.ok
    assert [r.event_type for r in reader.all_records()][-2:] == ["card.tokenize", "audit.log_stop"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [(None, "AUDIT_URL unset"), ("memory://x", "memory://")],
)
def test_production_refuses_development_sinks(
    tmp_path: Path, url: str | None, expected: str
) -> None:
    """FINCORE_ENV=production refuses the default file sink and the memory sink."""
    env = env_for(tmp_path, FINCORE_ENV="production")
    with pytest.raises(SettingsError, match=expected):
        open_audit_log("cde", "vault", url=url, env=env)


def test_production_never_creates_the_signing_key(tmp_path: Path) -> None:
    """In production a missing checkpoint key is an error, not something made on the fly."""
    env = env_for(tmp_path, FINCORE_ENV="production")
    with pytest.raises(AuditError, match="checkpoint key"):
        open_audit_log("cde", "vault", url=f"file://{tmp_path / 'audit'}", env=env)
    assert not (tmp_path / "var" / "keys").exists()


def test_production_accepts_an_explicit_sink_and_an_existing_key(tmp_path: Path) -> None:
    """With a configured sink and a provisioned key, production opens the log."""
    dev = env_for(tmp_path)
    open_audit_log("cde", "vault", url=f"file://{tmp_path / 'provision'}", env=dev).close()
    prod = env_for(tmp_path, FINCORE_ENV="production")
    log = open_audit_log("cde", "vault", url=f"file://{tmp_path / 'audit'}", env=prod)
    record = log.record(EventType.KEY_CREATE, actor="vault", outcome="success", target="key_1")
    log.close()
    assert record.seq == 3
