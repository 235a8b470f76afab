"""noncde.readmodels (non-CDE): the composition root. Picks the PaymentDB and LedgerDB adapters
from their URLs' schemes (allow-listed), wires the projectors over the platform's event store,
and hands other components what they may use:

- `payment_queries(...)`: PaymentDB's query side for the API's list endpoints (the API's own
  composition root calls it and passes its `Page` and `CursorNotFound` types);
- `open_ledger_service(...)`: the ledger's reads and fee recording for reconciliation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fincore.settings import choose_adapter
from noncde.platform.adapters.sql.schema import SqlDatabase
from noncde.platform.bootstrap import build_platform
from noncde.platform.ports import Platform
from noncde.readmodels.adapters.sql.ledger import SqlLedger
from noncde.readmodels.adapters.sql.payments import ListPage, SqlPaymentDb, UnknownCursor
from noncde.readmodels.config import PREFIX, ReadModelsConfig
from noncde.readmodels.ports import AuditTrail
from noncde.readmodels.service.ledger import LedgerService
from noncde.readmodels.service.projector import Projector


def _database(setting: str, url: str, synchronous: str) -> SqlDatabase:
    def sql(chosen: str) -> SqlDatabase:
        return SqlDatabase(chosen, synchronous=synchronous)

    return choose_adapter(f"{PREFIX}{setting}", url, {"sqlite": sql, "postgresql": sql})


def open_payments(
    url: str,
    *,
    synchronous: str = "NORMAL",
    livemode: bool = False,
    page: Callable[[list[Any], bool], Any] | None = None,
    cursor_not_found: Callable[[str], Exception] | None = None,
    create_schema: bool = True,
) -> SqlPaymentDb:
    """PaymentDB at `url` (sqlite:// or postgresql://), created if missing."""
    return SqlPaymentDb(
        _database("PAYMENTDB_URL", url, synchronous),
        livemode=livemode,
        page=page or ListPage,
        cursor_not_found=cursor_not_found or UnknownCursor,
        create_schema=create_schema,
    )


def open_ledger(url: str, *, synchronous: str = "NORMAL", create_schema: bool = True) -> SqlLedger:
    """LedgerDB at `url` (sqlite:// or postgresql://), created (with its triggers) if missing."""
    return SqlLedger(_database("LEDGERDB_URL", url, synchronous), create_schema=create_schema)


def payment_queries(
    *,
    env: Mapping[str, str] | None = None,
    page: Callable[[list[Any], bool], Any] | None = None,
    cursor_not_found: Callable[[str], Exception] | None = None,
    livemode: bool | None = None,
) -> SqlPaymentDb:
    """PaymentDB's queries for the API (`PaymentQueries` port of noncde.api.ports), from
    `FINCORE_READMODELS_PAYMENTDB_URL`. Pass the API's `Page` and `CursorNotFound`."""
    config = ReadModelsConfig.from_env(env)
    return open_payments(
        config.payments_url,
        synchronous=config.sqlite_synchronous,
        livemode=config.livemode if livemode is None else livemode,
        page=page,
        cursor_not_found=cursor_not_found,
    )


@dataclass
class ReadModels:
    """Everything a read-model process (or command) works with."""

    config: ReadModelsConfig
    platform: Platform
    payments: SqlPaymentDb
    ledger: SqlLedger
    payment_projector: Projector
    ledger_projector: Projector
    ledger_service: LedgerService
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def build_read_models(
    config: ReadModelsConfig | None = None,
    *,
    env: Mapping[str, str] | None = None,
    platform: Platform | None = None,
    audit: AuditTrail | None = None,
    clock: Callable[[], float] = time.time,
) -> ReadModels:
    """Wire PaymentDB, LedgerDB and their projectors. An injected `platform` stays owned by
    the caller (not closed here)."""
    config = config or ReadModelsConfig.from_env(env)
    closers: list[Callable[[], None]] = []
    if platform is None:
        platform = build_platform(env=env)
        closers.append(platform.close)
    payments = open_payments(
        config.payments_url, synchronous=config.sqlite_synchronous, livemode=config.livemode
    )
    closers.append(payments.close)
    ledger = open_ledger(config.ledger_url, synchronous=config.sqlite_synchronous)
    closers.append(ledger.close)
    payment_projector = Projector(
        platform.events, payments, batch_size=config.batch_size, clock=clock
    )
    ledger_projector = Projector(platform.events, ledger, batch_size=config.batch_size, clock=clock)
    return ReadModels(
        config=config,
        platform=platform,
        payments=payments,
        ledger=ledger,
        payment_projector=payment_projector,
        ledger_projector=ledger_projector,
        ledger_service=LedgerService(platform.events, ledger, ledger_projector, audit),
        closers=closers,
    )


def open_ledger_service(
    platform: Platform,
    *,
    env: Mapping[str, str] | None = None,
    audit: AuditTrail | None = None,
) -> tuple[LedgerService, Callable[[], None]]:
    """The ledger's service over `platform`'s event store (for reconciliation), and its
    closer."""
    config = ReadModelsConfig.from_env(env)
    ledger = open_ledger(config.ledger_url, synchronous=config.sqlite_synchronous)
    projector = Projector(platform.events, ledger, batch_size=config.batch_size)
    return LedgerService(platform.events, ledger, projector, audit), ledger.close
