"""noncde.readmodels (non-CDE): the frozen settings object, built from the environment at start
(never at import time). Variables use the `FINCORE_READMODELS_` prefix, which the local runner
passes to every non-CDE process; the event store is the platform's (`FINCORE_NONCDE_*`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fincore.settings import (
    SettingsError,
    env_bool,
    env_float,
    env_int,
    env_str,
    refuse_dev_defaults_in_production,
    url_scheme,
    var_dir,
)

PREFIX = "FINCORE_READMODELS_"
SQL_SCHEMES = frozenset({"sqlite", "postgresql"})


def default_payments_url(env: Mapping[str, str] | None = None) -> str:
    return f"sqlite:///{var_dir(env) / 'noncde' / 'payments.db'}"


def default_ledger_url(env: Mapping[str, str] | None = None) -> str:
    return f"sqlite:///{var_dir(env) / 'noncde' / 'ledger.db'}"


@dataclass(frozen=True)
class ReadModelsConfig:
    """Where PaymentDB and LedgerDB live and how the projectors run.

    PaymentDB and LedgerDB are separate databases (their own URLs), apart from the platform
    database: each can be rebuilt from zero into a fresh database without touching the others.
    """

    payments_url: str
    ledger_url: str
    batch_size: int = 1000
    poll_s: float = 0.2
    max_lag_events: int = 10_000
    sqlite_synchronous: str = "NORMAL"
    livemode: bool = False

    def __post_init__(self) -> None:
        for name, url in (("PAYMENTDB_URL", self.payments_url), ("LEDGERDB_URL", self.ledger_url)):
            if url_scheme(url) not in SQL_SCHEMES:
                raise SettingsError(f"{PREFIX}{name}: use sqlite:// or postgresql://")
        if self.payments_url == self.ledger_url:
            raise SettingsError(f"{PREFIX}PAYMENTDB_URL and LEDGERDB_URL must differ")
        if not 1 <= self.batch_size <= 10_000:
            raise SettingsError(f"{PREFIX}BATCH_SIZE must be 1-10000")
        if self.sqlite_synchronous not in {"NORMAL", "FULL"}:
            raise SettingsError(f"{PREFIX}SQLITE_SYNCHRONOUS must be NORMAL or FULL")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReadModelsConfig:
        config = cls(
            payments_url=env_str(f"{PREFIX}PAYMENTDB_URL", default_payments_url(env), env),
            ledger_url=env_str(f"{PREFIX}LEDGERDB_URL", default_ledger_url(env), env),
            batch_size=env_int(f"{PREFIX}BATCH_SIZE", 1000, env, minimum=1, maximum=10_000),
            poll_s=env_float(f"{PREFIX}POLL_S", 0.2, env),
            max_lag_events=env_int(f"{PREFIX}MAX_LAG_EVENTS", 10_000, env, minimum=1),
            sqlite_synchronous=env_str(f"{PREFIX}SQLITE_SYNCHRONOUS", "NORMAL", env).upper(),
            livemode=env_bool(f"{PREFIX}LIVEMODE", False, env),
        )
        refuse_dev_defaults_in_production(
            "noncde.readmodels",
            {
                f"SQLite PaymentDB ({PREFIX}PAYMENTDB_URL)": url_scheme(config.payments_url)
                == "sqlite",
                f"SQLite LedgerDB ({PREFIX}LEDGERDB_URL)": url_scheme(config.ledger_url)
                == "sqlite",
            },
            env,
        )
        return config
