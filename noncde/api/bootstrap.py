"""noncde.api (non-CDE): the composition root. Picks the adapters (the API database, counters
from an allow-listed URL scheme, the key file, the gateway client, the audit log), wires the
use cases and owns the background threads (projector, platform relays and housekeeping).
`app.py` and the admin CLI call `build_runtime()` and use only what it returns.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from audit.bootstrap import open_audit_log
from fincore.identity import ServiceCredentials, ServiceTokenVerifier
from fincore.logs import get_logger
from fincore.settings import SettingsError, choose_adapter, is_production, url_scheme
from noncde.api.adapters.files import FileKeyring
from noncde.api.adapters.http import HttpCheckoutGateway
from noncde.api.adapters.memory import LocalRateCounters
from noncde.api.adapters.sql import SqlCounters, SqlMerchantDirectory, init_schema
from noncde.api.config import PREFIX, ApiConfig
from noncde.api.ports import AuditTrail, CheckoutGateway, Counters, CursorNotFound, Page
from noncde.api.service import DirectoryService, PaymentService, Projector, RiskEngine
from noncde.platform.adapters.sql.schema import SqlDatabase
from noncde.platform.bootstrap import build_platform
from noncde.platform.config import PlatformConfig
from noncde.platform.domain import ConcurrencyConflict
from noncde.platform.ports import Platform
from noncde.platform.service import run_background
from noncde.readmodels.bootstrap import payment_queries

HOUSEKEEPING_EVERY_S = 60.0


def _same_sqlite_file(a: str, b: str) -> bool:
    if url_scheme(a) != "sqlite" or url_scheme(b) != "sqlite":
        return False
    return Path(a.split("///", 1)[-1]).resolve() == Path(b.split("///", 1)[-1]).resolve()


@dataclass
class ApiRuntime:
    """Everything one API process (or one admin command) uses, and its shutdown."""

    config: ApiConfig
    platform: Platform
    db: SqlDatabase
    directory: DirectoryService
    payments: PaymentService
    projector: Projector
    risk: RiskEngine
    counters: Counters
    gateway: CheckoutGateway
    audit: AuditTrail
    verifier: ServiceTokenVerifier | None
    readiness: dict[str, Callable[[], bool]] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start_background(self) -> None:
        """Start the projector, the platform's relays/housekeeping and counter clean-up."""
        if self._threads:
            return
        self._stop.clear()
        jobs: list[tuple[str, Callable[[], None]]] = [
            ("api-projector", lambda: self.projector.run(self._stop)),
            ("api-platform", lambda: run_background(self.platform, self._stop)),
            ("api-housekeeping", self._housekeeping),
        ]
        for name, target in jobs:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _housekeeping(self) -> None:
        log = get_logger("api.housekeeping")
        while not self._stop.wait(HOUSEKEEPING_EVERY_S):
            try:
                self.counters.purge(time.time())
            except Exception as exc:  # noqa: BLE001 - clean-up is best effort
                log.warning("counter purge failed", error=type(exc).__name__)

    def close(self) -> None:
        self.projector.stop(self._stop)
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        for close in reversed(self.closers):
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - shut down everything we can
                get_logger("api").warning("close failed", error=type(exc).__name__)


def build_runtime(
    config: ApiConfig | None = None,
    *,
    env: Mapping[str, str] | None = None,
    platform: Platform | None = None,
    audit: AuditTrail | None = None,
    verifier: ServiceTokenVerifier | None = None,
    credentials: ServiceCredentials | None = None,
    ca_file: Path | None = None,
    create_schema: bool = True,
) -> ApiRuntime:
    """Wire the API. Injected `platform`/`audit` stay owned by the caller (not closed here)."""
    config = config or ApiConfig.from_env(env)
    closers: list[Callable[[], None]] = []
    if platform is None:
        platform_config = PlatformConfig.from_env(env)
        if _same_sqlite_file(platform_config.db_url, config.db_url):
            raise SettingsError(
                f"{PREFIX}DB_URL must not be the platform's SQLite file (one writer per file: "
                "the API would queue behind its own charge transactions)"
            )
        platform = build_platform(platform_config, env=env)
        closers.append(platform.close)
    db = SqlDatabase(config.db_url, pool_size=config.db_pool_size)
    closers.append(db.dispose)
    if create_schema:
        init_schema(db)

    def redis_counters(url: str) -> Counters:
        from noncde.api.adapters.redis import RedisCounters

        counters = RedisCounters.from_url(url)
        closers.append(counters.close)
        return counters

    counters: Counters = choose_adapter(
        f"{PREFIX}COUNTERS_URL",
        config.counters_url,
        {
            "sqlite": lambda _url: LocalRateCounters(SqlCounters(db), config.workers),
            "postgresql": lambda _url: LocalRateCounters(SqlCounters(db), config.workers),
            "redis": redis_counters,
        },
    )
    keyring = FileKeyring.from_file(config.secret_key_file, create=not is_production(env))
    if audit is None:
        owned = open_audit_log("noncde", "api", env=env)
        closers.append(owned.close)
        audit = owned
    # Lists read PaymentDB (noncde.readmodels), the database the projectionist writes. This
    # process applies the feed to it too, right after its own writes and when a read by id
    # misses, so its answers never trail its own writes; racing projectors are safe (each
    # batch is applied once, after the stored position).
    projection = payment_queries(
        env=env, page=Page, cursor_not_found=CursorNotFound, livemode=config.livemode
    )
    closers.append(projection.close)
    projector = Projector(platform.events, projection, poll_s=config.projection_poll_s)
    risk = RiskEngine(platform.rules, counters, check_interval_s=config.rules_check_interval_s)
    gateway = HttpCheckoutGateway(
        config.gateway_url,
        credentials=credentials,
        ca_file=ca_file,
        timeout_s=config.gateway_timeout_s,
    )
    closers.append(gateway.close)
    directory = DirectoryService(
        SqlMerchantDirectory(db),
        keyring,
        audit,
        platform.rules,
        livemode=config.livemode,
        auth_cache_s=config.auth_cache_s,
    )
    payments = PaymentService(
        platform,
        projection,
        risk,
        gateway,
        livemode=config.livemode,
        session_default_expires_s=config.session_default_expires_s,
        on_commit=projector.poke,
        catch_up=projector.run_once,
    )
    readiness: dict[str, Callable[[], bool]] = {**platform.readiness, "api_db": db.ping}
    return ApiRuntime(
        config=config,
        platform=platform,
        db=db,
        directory=directory,
        payments=payments,
        projector=projector,
        risk=risk,
        counters=counters,
        gateway=gateway,
        audit=audit,
        verifier=verifier,
        readiness=readiness,
        closers=closers,
    )


def seed_rules(runtime: ApiRuntime) -> None:
    """Publish the default risk rules on the first start (a racing process may win)."""
    if not runtime.config.seed_default_rules:
        return
    with contextlib.suppress(ConcurrencyConflict):  # another API process published first
        runtime.directory.seed_default_rules()
