"""The gateway's settings: secrets from the environment, files or (outside production) the
sandbox's credentials file; TLS rules; production refuses the development defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cde.gateway.config import GatewaySettings
from fincore.settings import SettingsError

KEYS = {
    "FINCORE_GATEWAY_PSP_SECRET_KEY": "sk_test_abcdefghijklmnop",
    "FINCORE_GATEWAY_PSP_WEBHOOK_SECRET": "whsec_abcdefghijklmnop",
}


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"FINCORE_VAR_DIR": str(tmp_path), "FINCORE_ENV": "test", **values}


def test_defaults(tmp_path: Path) -> None:
    """With only the secrets set, the gateway uses SQLite under var/cde and the local peers."""
    settings = GatewaySettings.from_env(env(tmp_path, **KEYS))
    assert settings.db_url == f"sqlite:///{tmp_path.resolve() / 'cde' / 'gateway.db'}"
    assert settings.psp_url == "http://127.0.0.1:8400"
    assert settings.vault_url == "https://127.0.0.1:8101"
    assert settings.webhook_tolerance_s == 300
    assert "abcdef" not in repr(settings.psp_secret_key)


def test_secrets_from_files(tmp_path: Path) -> None:
    """`*_FILE` variables name files holding the secrets (the runner's way)."""
    (tmp_path / "sk").write_text("sk_test_fromfile123456\n")
    (tmp_path / "wh").write_text("whsec_fromfile123456")
    settings = GatewaySettings.from_env(
        env(
            tmp_path,
            FINCORE_GATEWAY_PSP_SECRET_KEY_FILE=str(tmp_path / "sk"),
            FINCORE_GATEWAY_PSP_WEBHOOK_SECRET_FILE=str(tmp_path / "wh"),
        )
    )
    assert settings.psp_secret_key.reveal() == "sk_test_fromfile123456"
    assert settings.psp_webhook_secret.reveal() == "whsec_fromfile123456"
    assert not settings.secrets_from_sandbox_file


def test_sandbox_credentials_outside_production_only(tmp_path: Path) -> None:
    """Without secrets, a development gateway reads the sandbox's credentials.json;
    production never does."""
    folder = tmp_path / "psp-sandbox"
    folder.mkdir()
    (folder / "credentials.json").write_text(
        json.dumps({"secret_key": "sk_test_sandbox12345678", "webhook_secret": "whsec_sbx1234"})
    )
    settings = GatewaySettings.from_env(env(tmp_path))
    assert settings.secrets_from_sandbox_file
    assert settings.psp_secret_key.reveal() == "sk_test_sandbox12345678"
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        GatewaySettings.from_env(env(tmp_path, FINCORE_ENV="production"))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FINCORE_GATEWAY_PSP_SECRET_KEY", "pk_test_publishable", "secret key"),
        ("FINCORE_GATEWAY_PSP_WEBHOOK_SECRET", "secret", "whsec_"),
        ("FINCORE_GATEWAY_PSP_URL", "http://psp.example.com", "https"),
        ("FINCORE_GATEWAY_DB_URL", "mysql://x", "DB_URL"),
        ("FINCORE_GATEWAY_PSP_READ_TIMEOUT_S", "0", "READ_TIMEOUT"),
        ("FINCORE_GATEWAY_WEBHOOK_TOLERANCE_S", "301", "TOLERANCE"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, name: str, value: str, message: str) -> None:
    """A bad value is refused at start, naming the setting, never echoing a secret."""
    with pytest.raises(SettingsError, match=message) as refused:
        GatewaySettings.from_env(env(tmp_path, **{**KEYS, name: value}))
    assert "abcdefghijklmnop" not in str(refused.value)


def test_production_refuses_development_defaults(tmp_path: Path) -> None:
    """Production needs PostgreSQL, an https PSP and https neighbours."""
    with pytest.raises(SettingsError) as refused:
        GatewaySettings.from_env(env(tmp_path, FINCORE_ENV="production", **KEYS))
    assert "SQLite" in str(refused.value) and "sandbox" in str(refused.value)
    settings = GatewaySettings.from_env(
        env(
            tmp_path,
            FINCORE_ENV="production",
            FINCORE_GATEWAY_DB_URL="postgresql+psycopg://gw@db.internal/gateway",
            FINCORE_GATEWAY_PSP_URL="https://api.stripe.com",
            **KEYS,
        )
    )
    assert settings.environment == "production"
