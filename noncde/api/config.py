"""noncde.api (non-CDE): the frozen settings object, built from the environment at start.

Variables use the `FINCORE_API_` prefix (the runner passes them only to non-CDE processes); the
platform's ports are configured by `FINCORE_NONCDE_*` (noncde.platform.config).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fincore.settings import (
    SettingsError,
    env_bool,
    env_float,
    env_int,
    env_str,
    is_production,
    refuse_dev_defaults_in_production,
    url_scheme,
    var_dir,
)

PREFIX = "FINCORE_API_"
SQL_SCHEMES = frozenset({"sqlite", "postgresql"})


def default_db_url(env: Mapping[str, str] | None = None) -> str:
    return f"sqlite:///{var_dir(env) / 'noncde' / 'api.db'}"


@dataclass(frozen=True)
class ApiConfig:
    """Settings of the merchant API process and its admin CLI.

    - `db_url`: the API's own database (merchant directory, payment read model, and the
      counters unless `counters_url` says otherwise). A separate SQLite file from the
      platform's by default, so its writes never queue behind charge transactions.
    - `counters_url`: rate limits and risk velocity: SQL (`db_url`) or `redis://…`.
    - `secret_key_file`: the root of the API-key pepper and the webhook-secret sealing key
      (0600, created on first run outside production).
    """

    db_url: str
    counters_url: str
    secret_key_file: Path
    gateway_url: str
    public_url: str
    ingress_url: str
    livemode: bool = False
    rate_limit_per_s: int = 1000
    rules_check_interval_s: float = 1.0
    projection_poll_s: float = 0.2
    session_default_expires_s: int = 86_400
    workers: int = 1
    seed_default_rules: bool = True
    gateway_timeout_s: float = 10.0
    db_pool_size: int = 10
    auth_cache_s: float = 1.0

    def __post_init__(self) -> None:
        if url_scheme(self.db_url) not in SQL_SCHEMES:
            raise SettingsError(f"{PREFIX}DB_URL must be sqlite:// or postgresql://")
        if url_scheme(self.counters_url) not in SQL_SCHEMES | {"redis"}:
            raise SettingsError(f"{PREFIX}COUNTERS_URL must be the SQL database or redis://")
        if url_scheme(self.counters_url) in SQL_SCHEMES and self.counters_url != self.db_url:
            raise SettingsError(f"{PREFIX}COUNTERS_URL: a SQL backend must be {PREFIX}DB_URL")
        if not 0 <= self.auth_cache_s <= 60:
            raise SettingsError(f"{PREFIX}AUTH_CACHE_S must be between 0 and 60 seconds")
        if self.rate_limit_per_s < 1:
            raise SettingsError(f"{PREFIX}RATE_LIMIT_PER_S must be >= 1")
        if not 60 <= self.session_default_expires_s <= 86_400:
            raise SettingsError(f"{PREFIX}SESSION_EXPIRES_S must be between 60 and 86400")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiConfig:
        db_url = env_str(f"{PREFIX}DB_URL", default_db_url(env), env)
        base = var_dir(env) / "noncde"
        config = cls(
            db_url=db_url,
            counters_url=env_str(f"{PREFIX}COUNTERS_URL", db_url, env),
            secret_key_file=Path(
                env_str(f"{PREFIX}SECRET_KEY_FILE", str(base / "api-secret.key"), env)
            ),
            gateway_url=env_str(f"{PREFIX}GATEWAY_URL", "https://127.0.0.1:8102", env),
            public_url=env_str(f"{PREFIX}PUBLIC_URL", "https://127.0.0.1:8200", env),
            ingress_url=env_str(f"{PREFIX}INGRESS_URL", "https://127.0.0.1:8100", env),
            livemode=is_production(env),
            rate_limit_per_s=env_int(f"{PREFIX}RATE_LIMIT_PER_S", 1000, env, minimum=1),
            rules_check_interval_s=env_float(f"{PREFIX}RULES_CHECK_S", 1.0, env),
            projection_poll_s=env_float(f"{PREFIX}PROJECTION_POLL_S", 0.2, env),
            session_default_expires_s=env_int(f"{PREFIX}SESSION_EXPIRES_S", 86_400, env),
            workers=env_int(f"{PREFIX}WORKERS", 1, env, minimum=1, maximum=16),
            seed_default_rules=env_bool(f"{PREFIX}SEED_DEFAULT_RULES", True, env),
            gateway_timeout_s=env_float(f"{PREFIX}GATEWAY_TIMEOUT_S", 10.0, env),
            db_pool_size=env_int(f"{PREFIX}DB_POOL_SIZE", 10, env, minimum=1, maximum=100),
            auth_cache_s=env_float(f"{PREFIX}AUTH_CACHE_S", 1.0, env),
        )
        config.refuse_dev_defaults(env)
        return config

    def refuse_dev_defaults(self, env: Mapping[str, str] | None = None) -> None:
        """Production refuses SQLite and a secret key file that does not exist yet."""
        refuse_dev_defaults_in_production(
            "noncde.api",
            {
                f"SQLite database ({PREFIX}DB_URL)": url_scheme(self.db_url) == "sqlite",
                f"secret key created on first run ({PREFIX}SECRET_KEY_FILE missing)": (
                    not self.secret_key_file.exists()
                ),
            },
            env,
        )
