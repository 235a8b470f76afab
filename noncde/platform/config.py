"""Non-CDE platform: the frozen settings object (one backend URL per port), built from the
environment at start, never at import time.

Variables use the `FINCORE_NONCDE_` prefix, which the local runner passes to every non-CDE
process and to no CDE process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fincore.settings import (
    SettingsError,
    env_float,
    env_int,
    env_str,
    refuse_dev_defaults_in_production,
    url_scheme,
    var_dir,
)
from noncde.platform.domain import MIN_IDEMPOTENCY_RETENTION_S, InvalidArgument, RetryPolicy

SQL_SCHEMES = frozenset({"sqlite", "postgresql"})
PREFIX = "FINCORE_NONCDE_"


def default_db_url(env: Mapping[str, str] | None = None) -> str:
    return f"sqlite:///{var_dir(env) / 'noncde' / 'platform.db'}"


def _same_database(a: str, b: str) -> bool:
    """Two SQL URLs name the same database (ignoring the `+driver` suffix)."""

    def strip(url: str) -> str:
        scheme, _, rest = url.partition("://")
        return f"{scheme.split('+', 1)[0].lower()}://{rest}"

    return strip(a) == strip(b)


@dataclass(frozen=True)
class PlatformConfig:
    """Backends of the platform ports.

    `db_url` is the platform database: it always holds the unit of work, the outbox and the
    checkpoints, and any port whose URL is SQL must use this same database (one transaction).
    A port URL left unset means "the platform database".
    """

    db_url: str
    event_store_url: str
    job_queue_url: str
    idempotency_url: str
    rules_url: str
    sqlite_synchronous: str = "NORMAL"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    idempotency_retention_s: float = MIN_IDEMPOTENCY_RETENTION_S
    idempotency_lock_ttl_s: float = 60.0
    db_pool_size: int = 5

    def __post_init__(self) -> None:
        for name, url in self.port_urls().items():
            if url_scheme(url) in SQL_SCHEMES and not _same_database(url, self.db_url):
                raise SettingsError(
                    f"{PREFIX}{name}: a SQL backend must be the platform database "
                    f"({PREFIX}DB_URL), so the unit of work stays one transaction"
                )
        if url_scheme(self.db_url) == "memory":
            for name, url in self.port_urls().items():
                if url_scheme(url) not in {"memory", "file"}:
                    raise SettingsError(f"{PREFIX}{name}: memory:// mixes with nothing but file://")
        if self.sqlite_synchronous not in {"NORMAL", "FULL"}:
            raise SettingsError(f"{PREFIX}SQLITE_SYNCHRONOUS must be NORMAL or FULL")
        if self.idempotency_retention_s < MIN_IDEMPOTENCY_RETENTION_S:
            raise SettingsError(f"{PREFIX}IDEMPOTENCY_RETENTION_S must be at least 86400 (24 h)")

    def port_urls(self) -> dict[str, str]:
        return {
            "EVENT_STORE_URL": self.event_store_url,
            "JOB_QUEUE_URL": self.job_queue_url,
            "IDEMPOTENCY_URL": self.idempotency_url,
            "RULES_URL": self.rules_url,
        }

    @classmethod
    def for_database(
        cls,
        db_url: str,
        *,
        event_store_url: str | None = None,
        job_queue_url: str | None = None,
        idempotency_url: str | None = None,
        rules_url: str | None = None,
        **settings: Any,
    ) -> PlatformConfig:
        """Every port on one database unless overridden (`job_queue_url="sqs://…"`)."""
        return cls(
            db_url=db_url,
            event_store_url=event_store_url or db_url,
            job_queue_url=job_queue_url or db_url,
            idempotency_url=idempotency_url or db_url,
            rules_url=rules_url or db_url,
            **settings,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PlatformConfig:
        db_url = env_str(f"{PREFIX}DB_URL", default_db_url(env), env)
        try:
            retry = RetryPolicy(
                max_attempts=env_int(f"{PREFIX}JOB_MAX_ATTEMPTS", 5, env, minimum=1, maximum=100),
                backoff_base_s=env_float(f"{PREFIX}JOB_BACKOFF_BASE_S", 1.0, env),
                backoff_cap_s=env_float(f"{PREFIX}JOB_BACKOFF_CAP_S", 300.0, env),
            )
        except InvalidArgument as exc:
            raise SettingsError(f"{PREFIX}JOB_BACKOFF_*: {exc}") from None
        config = cls(
            db_url=db_url,
            event_store_url=env_str(f"{PREFIX}EVENT_STORE_URL", db_url, env),
            job_queue_url=env_str(f"{PREFIX}JOB_QUEUE_URL", db_url, env),
            idempotency_url=env_str(f"{PREFIX}IDEMPOTENCY_URL", db_url, env),
            rules_url=env_str(f"{PREFIX}RULES_URL", db_url, env),
            sqlite_synchronous=env_str(f"{PREFIX}SQLITE_SYNCHRONOUS", "NORMAL", env).upper(),
            retry=retry,
            idempotency_retention_s=env_float(
                f"{PREFIX}IDEMPOTENCY_RETENTION_S", MIN_IDEMPOTENCY_RETENTION_S, env
            ),
            idempotency_lock_ttl_s=env_float(f"{PREFIX}IDEMPOTENCY_LOCK_TTL_S", 60.0, env),
            db_pool_size=env_int(f"{PREFIX}DB_POOL_SIZE", 5, env, minimum=1, maximum=100),
        )
        config.refuse_dev_defaults(env)
        return config

    def refuse_dev_defaults(self, env: Mapping[str, str] | None = None) -> None:
        """Production refuses SQLite and in-memory backends (DESIGN.md section 4)."""
        urls = [self.db_url, *self.port_urls().values()]
        refuse_dev_defaults_in_production(
            "noncde.platform",
            {
                f"SQLite database ({PREFIX}DB_URL)": url_scheme(self.db_url) == "sqlite",
                "in-memory backend (memory://)": any(url_scheme(u) == "memory" for u in urls),
            },
            env,
        )
