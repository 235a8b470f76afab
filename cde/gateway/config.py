"""cde.gateway: the frozen settings of the PSP gateway, built from the environment at start.

CDE. Read once at start, never at import. The PSP secret key and webhook secret come from
`FINCORE_GATEWAY_PSP_SECRET_KEY` / `FINCORE_GATEWAY_PSP_WEBHOOK_SECRET` or their `_FILE`
variants (the local runner writes one shared pair under var/ for the sandbox and the gateway);
outside production, with neither set, from the sandbox's own `credentials.json`. Production
refuses the development defaults: SQLite, the sandbox PSP, plain-HTTP neighbours and secrets
taken from the sandbox's file (PCI DSS 4.2.1, 6.5.3).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from fincore.sensitive import SecretKey
from fincore.settings import (
    SettingsError,
    env_bool,
    env_float,
    env_int,
    env_str,
    environment,
    refuse_dev_defaults_in_production,
    url_scheme,
    var_dir,
)

DEFAULT_PSP_URL = "http://127.0.0.1:8400"  # the PSP sandbox of a local run
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _secret(name: str, env: Mapping[str, str]) -> str | None:
    value = env.get(name)
    if value:
        return value.strip()
    path = env.get(name + "_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"{name}_FILE cannot be read") from exc
    return None


def _sandbox_credentials(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{path} is not a readable PSP sandbox credentials file") from exc
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Everything the gateway reads at start."""

    environment: str
    vault_url: str
    psp_url: str
    api_url: str
    psp_secret_key: SecretKey
    psp_webhook_secret: SecretKey
    secrets_from_sandbox_file: bool
    db_url: str
    psp_connect_timeout_s: float
    psp_read_timeout_s: float
    psp_threads: int
    webhook_tolerance_s: int
    vault_timeout_s: float
    max_body: int
    relay_enabled: bool
    relay_timeout_s: float
    relay_retry_base_s: float
    relay_retry_max_s: float
    relay_give_up_after_s: float
    relay_poll_s: float
    relay_batch: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewaySettings:
        source = os.environ if env is None else env
        cde = var_dir(source) / "cde"
        secret = _secret("FINCORE_GATEWAY_PSP_SECRET_KEY", source)
        webhook = _secret("FINCORE_GATEWAY_PSP_WEBHOOK_SECRET", source)
        from_sandbox = False
        if (secret is None or webhook is None) and environment(source) != "production":
            sandbox_file = Path(
                env_str(
                    "FINCORE_GATEWAY_PSP_CREDENTIALS_FILE",
                    str(var_dir(source) / "psp-sandbox" / "credentials.json"),
                    source,
                )
            )
            stored = _sandbox_credentials(sandbox_file)
            if secret is None and stored.get("secret_key"):
                secret, from_sandbox = stored["secret_key"], True
            if webhook is None and stored.get("webhook_secret"):
                webhook, from_sandbox = stored["webhook_secret"], True
        if not secret:
            raise SettingsError("FINCORE_GATEWAY_PSP_SECRET_KEY (or _FILE) is required")
        if not webhook:
            raise SettingsError("FINCORE_GATEWAY_PSP_WEBHOOK_SECRET (or _FILE) is required")
        settings = cls(
            environment=environment(source),
            vault_url=env_str("FINCORE_GATEWAY_VAULT_URL", "https://127.0.0.1:8101", source),
            psp_url=env_str("FINCORE_GATEWAY_PSP_URL", DEFAULT_PSP_URL, source).rstrip("/"),
            api_url=env_str("FINCORE_GATEWAY_API_URL", "https://127.0.0.1:8200", source),
            psp_secret_key=SecretKey(secret),
            psp_webhook_secret=SecretKey(webhook),
            secrets_from_sandbox_file=from_sandbox,
            db_url=env_str("FINCORE_GATEWAY_DB_URL", f"sqlite:///{cde / 'gateway.db'}", source),
            psp_connect_timeout_s=env_float("FINCORE_GATEWAY_PSP_CONNECT_TIMEOUT_S", 3.0, source),
            psp_read_timeout_s=env_float("FINCORE_GATEWAY_PSP_READ_TIMEOUT_S", 20.0, source),
            psp_threads=env_int("FINCORE_GATEWAY_PSP_THREADS", 32, source, minimum=1, maximum=256),
            webhook_tolerance_s=env_int(
                "FINCORE_GATEWAY_WEBHOOK_TOLERANCE_S", 300, source, minimum=1, maximum=300
            ),
            vault_timeout_s=env_float("FINCORE_GATEWAY_VAULT_TIMEOUT_S", 10.0, source),
            max_body=env_int("FINCORE_GATEWAY_MAX_BODY", 256 * 1024, source, minimum=4096),
            relay_enabled=env_bool("FINCORE_GATEWAY_RELAY", True, source),
            relay_timeout_s=env_float("FINCORE_GATEWAY_RELAY_TIMEOUT_S", 10.0, source),
            relay_retry_base_s=env_float("FINCORE_GATEWAY_RELAY_RETRY_BASE_S", 1.0, source),
            relay_retry_max_s=env_float("FINCORE_GATEWAY_RELAY_RETRY_MAX_S", 300.0, source),
            relay_give_up_after_s=env_float(
                "FINCORE_GATEWAY_RELAY_GIVE_UP_AFTER_S", 3 * 86400.0, source
            ),
            relay_poll_s=env_float("FINCORE_GATEWAY_RELAY_POLL_S", 1.0, source),
            relay_batch=env_int("FINCORE_GATEWAY_RELAY_BATCH", 50, source, minimum=1, maximum=1000),
        )
        settings.validate(source)
        return settings

    def validate(self, env: Mapping[str, str]) -> None:
        for name, value in (
            ("FINCORE_GATEWAY_PSP_CONNECT_TIMEOUT_S", self.psp_connect_timeout_s),
            ("FINCORE_GATEWAY_PSP_READ_TIMEOUT_S", self.psp_read_timeout_s),
            ("FINCORE_GATEWAY_VAULT_TIMEOUT_S", self.vault_timeout_s),
            ("FINCORE_GATEWAY_RELAY_TIMEOUT_S", self.relay_timeout_s),
            ("FINCORE_GATEWAY_RELAY_RETRY_BASE_S", self.relay_retry_base_s),
            ("FINCORE_GATEWAY_RELAY_POLL_S", self.relay_poll_s),
        ):
            if not 0 < value <= 600:
                raise SettingsError(f"{name} must be between 0 and 600 seconds")
        if self.relay_retry_max_s < self.relay_retry_base_s:
            raise SettingsError("FINCORE_GATEWAY_RELAY_RETRY_MAX_S must be >= the base")
        if self.relay_give_up_after_s <= 0:
            raise SettingsError("FINCORE_GATEWAY_RELAY_GIVE_UP_AFTER_S must be > 0")
        if not self.psp_secret_key.reveal().startswith(("sk_", "rk_")):
            raise SettingsError("FINCORE_GATEWAY_PSP_SECRET_KEY must be a PSP secret key (sk_…)")
        if not self.psp_webhook_secret.reveal().startswith("whsec_"):
            raise SettingsError("FINCORE_GATEWAY_PSP_WEBHOOK_SECRET must be a whsec_… secret")
        psp = urlsplit(self.psp_url)
        if psp.scheme != "https" and not (psp.scheme == "http" and psp.hostname in _LOOPBACK):
            # PCI DSS 4.2.1: card data goes to the PSP over TLS (plain HTTP only on loopback).
            raise SettingsError("FINCORE_GATEWAY_PSP_URL must be https:// (http only on loopback)")
        if url_scheme(self.db_url) not in {"sqlite", "postgresql", "memory"}:
            raise SettingsError("FINCORE_GATEWAY_DB_URL must be sqlite:, postgresql: or memory:")
        refuse_dev_defaults_in_production(
            "gateway",
            {
                "SQLite (FINCORE_GATEWAY_DB_URL=sqlite:…)": url_scheme(self.db_url) == "sqlite",
                "in-memory store (FINCORE_GATEWAY_DB_URL=memory://)": (
                    url_scheme(self.db_url) == "memory"
                ),
                "the PSP sandbox (plain-HTTP FINCORE_GATEWAY_PSP_URL)": psp.scheme != "https",
                "PSP secrets from the sandbox's credentials file": self.secrets_from_sandbox_file,
                "plain-HTTP vault or API URL": any(
                    urlsplit(url).scheme != "https" for url in (self.vault_url, self.api_url)
                ),
            },
            env,
        )
