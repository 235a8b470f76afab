"""Settings (production refuses development defaults) and the raw-card permission decision."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from cde.vault.config import IngressSettings, VaultSettings
from cde.vault.domain import Attestation, MerchantAuthorization
from cde.vault.domain.merchants import raw_card_refusal
from fincore.settings import SettingsError

PROD_OK = {
    "FINCORE_ENV": "production",
    "FINCORE_VAULT_DB_URL": "postgresql+psycopg://vault@db/vault",
    "FINCORE_VAULT_KEYS_URL": "aws-kms:alias/fincore-vault",
    "FINCORE_VAULT_CVC_URL": "rediss://cache:6379/0",
}


def test_defaults_are_local_and_safe(tmp_path: object) -> None:
    """Development defaults: SQLite and the key file under var/cde, memory CVC store, 15 min."""
    settings = VaultSettings.from_env({"FINCORE_VAR_DIR": str(tmp_path)})
    assert settings.db_url.startswith("sqlite:///") and settings.db_url.endswith("cde/vault.db")
    assert settings.keys_url.startswith("file:")
    assert settings.cvc_url == "memory://" and settings.cvc_ttl_s == 900
    assert settings.detokenize_callers == ("gateway",)


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("FINCORE_VAULT_DB_URL", "sqlite:///var/cde/vault.db", "SQLite"),
        ("FINCORE_VAULT_DB_URL", "memory://", "in-memory vault store"),
        ("FINCORE_VAULT_KEYS_URL", "file:var/cde/vault-keys.json", "key file"),
        ("FINCORE_VAULT_CVC_URL", "memory://", "in-process CVC store"),
        ("FINCORE_VAULT_KEYS_URL", "hashicorp+http://vault:8200/transit/k", "plain-HTTP"),
    ],
)
def test_production_refuses_development_defaults(name: str, value: str, named: str) -> None:
    """FINCORE_ENV=production with a dev default does not start, and says which one."""
    assert VaultSettings.from_env(PROD_OK).environment == "production"
    with pytest.raises(SettingsError, match=named):
        VaultSettings.from_env({**PROD_OK, name: value})


def test_unsafe_combinations_are_refused() -> None:
    """Two workers with an in-process CVC store or rate limiter, a TTL over 15 min, or a
    detokenizer other than the gateway are refused."""
    for env in (
        {"FINCORE_VAULT_WORKERS": "2"},
        {"FINCORE_VAULT_WORKERS": "2", "FINCORE_VAULT_CVC_URL": "redis://127.0.0.1:6379/1"},
        {"FINCORE_VAULT_CVC_TTL_S": "3600"},
        {"FINCORE_VAULT_DETOKENIZE_CALLERS": "gateway,api"},
    ):
        with pytest.raises(SettingsError):
            VaultSettings.from_env(env)
    shared = "redis://127.0.0.1:6379/1"
    env = {
        "FINCORE_VAULT_WORKERS": "2",
        "FINCORE_VAULT_CVC_URL": shared,
        "FINCORE_VAULT_RATE_URL": shared,
    }
    assert VaultSettings.from_env(env).workers == 2


def test_ingress_needs_https_in_production() -> None:
    """The ingress never talks plain HTTP to the vault or the API in production."""
    with pytest.raises(SettingsError):
        IngressSettings.from_env(
            {"FINCORE_ENV": "production", "FINCORE_INGRESS_API_URL": "http://api:8200"}
        )


TODAY = date(2026, 6, 1)
RECORDED = datetime(2026, 1, 1, tzinfo=UTC)


def _directory(
    active: bool = True, expires: date | None = date(2027, 3, 31)
) -> MerchantAuthorization:
    return MerchantAuthorization("mer_a", False, active, expires)


@pytest.mark.parametrize(
    ("directory", "register", "reason"),
    [
        (_directory(), Attestation("mer_a", date(2027, 3, 31), RECORDED), None),
        (_directory(), Attestation("mer_a", TODAY, RECORDED), None),  # valid through the day
        (
            _directory(active=False),
            Attestation("mer_a", date(2027, 1, 1), RECORDED),
            "capability_inactive",
        ),
        (
            _directory(expires=None),
            Attestation("mer_a", date(2027, 1, 1), RECORDED),
            "directory_attestation_missing",
        ),
        (
            _directory(expires=date(2026, 5, 31)),
            Attestation("mer_a", date(2027, 1, 1), RECORDED),
            "directory_attestation_expired",
        ),
        (_directory(), None, "cde_attestation_missing"),
        (
            _directory(),
            Attestation("mer_a", date(2026, 5, 31), RECORDED),
            "cde_attestation_expired",
        ),
    ],
)
def test_both_sources_must_agree(
    directory: MerchantAuthorization, register: Attestation | None, reason: str | None
) -> None:
    """Raw cards are permitted only when the directory AND the CDE register say so today."""
    assert raw_card_refusal(directory, register, TODAY) == reason
