"""cde.vault (CDE): the frozen settings of the vault and the ingress, read from the environment.

Built once at start (never at import). Backends are URLs whose scheme picks the adapter in
`bootstrap`. Production (`FINCORE_ENV=production`) refuses the development defaults: the key
file, SQLite, the in-process CVC store and plain-HTTP Transit (PCI DSS 3.5.1, 3.6.1, 4.2.1).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from fincore.settings import (
    SettingsError,
    env_float,
    env_int,
    env_list,
    env_str,
    environment,
    refuse_dev_defaults_in_production,
    url_scheme,
    var_dir,
)

MAX_CVC_TTL_S = 15 * 60


def _cde_dir(env: Mapping[str, str]) -> Path:
    return var_dir(env) / "cde"


@dataclass(frozen=True, slots=True)
class VaultSettings:
    """Everything the vault role (and its operator CLI) reads at start."""

    environment: str
    db_url: str
    keys_url: str
    transit_token: str | None
    cvc_url: str
    cvc_ttl_s: int
    rate_url: str
    rate_per_s: float
    rate_burst: int
    max_body: int
    key_max_age_s: float
    key_max_uses: int
    key_cache_s: float
    retention_days: int
    workers: int
    tokenize_callers: tuple[str, ...]
    read_callers: tuple[str, ...]
    detokenize_callers: tuple[str, ...]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> VaultSettings:
        source = os.environ if env is None else env
        cde = _cde_dir(source)
        token = source.get("FINCORE_VAULT_TRANSIT_TOKEN")
        token_file = source.get("FINCORE_VAULT_TRANSIT_TOKEN_FILE")
        if token is None and token_file:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        settings = cls(
            environment=environment(source),
            db_url=env_str("FINCORE_VAULT_DB_URL", f"sqlite:///{cde / 'vault.db'}", source),
            keys_url=env_str("FINCORE_VAULT_KEYS_URL", f"file:{cde / 'vault-keys.json'}", source),
            transit_token=token,
            cvc_url=env_str("FINCORE_VAULT_CVC_URL", "memory://", source),
            cvc_ttl_s=env_int(
                "FINCORE_VAULT_CVC_TTL_S", MAX_CVC_TTL_S, source, minimum=1, maximum=MAX_CVC_TTL_S
            ),
            rate_url=env_str("FINCORE_VAULT_RATE_URL", "memory://", source),
            rate_per_s=env_float("FINCORE_VAULT_RATE_PER_S", 20.0, source),
            rate_burst=env_int("FINCORE_VAULT_RATE_BURST", 100, source, minimum=1),
            max_body=env_int("FINCORE_VAULT_MAX_BODY", 8 * 1024, source, minimum=512),
            key_max_age_s=env_float("FINCORE_VAULT_KEY_MAX_AGE_S", 3600.0, source),
            key_max_uses=env_int("FINCORE_VAULT_KEY_MAX_USES", 100_000, source, minimum=1),
            key_cache_s=env_float("FINCORE_VAULT_KEY_CACHE_S", 300.0, source),
            retention_days=env_int("FINCORE_VAULT_RETENTION_DAYS", 400, source, minimum=1),
            workers=env_int("FINCORE_VAULT_WORKERS", 1, source, minimum=1, maximum=16),
            tokenize_callers=env_list("FINCORE_VAULT_TOKENIZE_CALLERS", "ingress", source),
            read_callers=env_list("FINCORE_VAULT_READ_CALLERS", "ingress,gateway", source),
            detokenize_callers=env_list("FINCORE_VAULT_DETOKENIZE_CALLERS", "gateway", source),
        )
        settings.validate(source)
        return settings

    def validate(self, env: Mapping[str, str]) -> None:
        if self.rate_per_s <= 0:
            raise SettingsError("FINCORE_VAULT_RATE_PER_S must be > 0")
        if not 1 <= self.key_max_age_s <= 30 * 86400:
            raise SettingsError("FINCORE_VAULT_KEY_MAX_AGE_S must be between 1 s and 30 days")
        if not 1 <= self.key_cache_s <= 3600:
            raise SettingsError("FINCORE_VAULT_KEY_CACHE_S must be between 1 s and 1 hour")
        if self.workers > 1 and url_scheme(self.cvc_url) == "memory":
            # The in-process CVC store would give each worker its own CVCs: a detokenize
            # routed to another worker would miss the CVC (and delete nothing).
            raise SettingsError("FINCORE_VAULT_WORKERS > 1 needs a shared CVC store (redis://)")
        if self.workers > 1 and url_scheme(self.rate_url) == "memory":
            # Per-process buckets would multiply the per-merchant limit by the worker count.
            raise SettingsError("FINCORE_VAULT_WORKERS > 1 needs a shared rate limiter (redis://)")
        if set(self.detokenize_callers) - {"gateway"}:
            raise SettingsError(
                "only the gateway may detokenize (FINCORE_VAULT_DETOKENIZE_CALLERS)"
            )
        refuse_dev_defaults_in_production(
            "vault",
            {
                "key file (FINCORE_VAULT_KEYS_URL=file:…)": url_scheme(self.keys_url) == "file",
                "SQLite (FINCORE_VAULT_DB_URL=sqlite:…)": url_scheme(self.db_url) == "sqlite",
                "in-memory vault store (FINCORE_VAULT_DB_URL=memory://)": (
                    url_scheme(self.db_url) == "memory"
                ),
                "in-process CVC store (FINCORE_VAULT_CVC_URL=memory://)": (
                    url_scheme(self.cvc_url) == "memory"
                ),
                "plain-HTTP Vault Transit": urlsplit(self.keys_url).scheme == "hashicorp+http",
            },
            env,
        )


@dataclass(frozen=True, slots=True)
class IngressSettings:
    """What the ingress role reads at start."""

    environment: str
    vault_url: str
    api_url: str
    max_body: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngressSettings:
        source = os.environ if env is None else env
        settings = cls(
            environment=environment(source),
            vault_url=env_str("FINCORE_INGRESS_VAULT_URL", "https://127.0.0.1:8101", source),
            api_url=env_str("FINCORE_INGRESS_API_URL", "https://127.0.0.1:8200", source),
            max_body=env_int("FINCORE_INGRESS_MAX_BODY", 16 * 1024, source, minimum=1024),
        )
        for name, url in (("VAULT", settings.vault_url), ("API", settings.api_url)):
            if urlsplit(url).scheme != "https" and settings.environment == "production":
                raise SettingsError(f"FINCORE_INGRESS_{name}_URL must be https in production")
        return settings
