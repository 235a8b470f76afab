"""noncde.dashboard (non-CDE): the composition root. Picks the staff store from an allow-listed
URL scheme, the argon2id hasher, the TOTP factor, the sealing key, the OIDC provider (when
configured), the readers of the other components (PaymentDB and LedgerDB of noncde.readmodels,
the platform's event store and dead letters, the audit log) and the merchant API's staff
commands, and wires the use cases. `app.py` and the admin CLI call `build_runtime()` and use
only what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from audit.bootstrap import open_audit_log
from fincore.identity import ServiceCredentials
from fincore.logs import get_logger
from fincore.settings import choose_adapter, is_production
from noncde.dashboard.adapters.audit_log import AuditLogViewer
from noncde.dashboard.adapters.files import AesGcmSecretBox
from noncde.dashboard.adapters.memory import MemoryStaffStore
from noncde.dashboard.adapters.passwords import Argon2PasswordHasher
from noncde.dashboard.adapters.sql import SqlStaffStore
from noncde.dashboard.adapters.totp import PyotpTotp
from noncde.dashboard.config import PREFIX, DashboardConfig
from noncde.dashboard.ports import (
    ApiCommands,
    AuditTrail,
    AuditViewer,
    Clock,
    FinanceReads,
    OidcProvider,
    OperationsReads,
    PasswordHasher,
    PaymentReads,
    StaffStore,
    WebhookLog,
)
from noncde.dashboard.service import (
    AccessControl,
    AuditPages,
    AuthService,
    MerchantAdmin,
    OperationsAdmin,
    RefundApprovals,
    StaffAdmin,
    utc_now,
)
from noncde.dashboard.service.finance import ReconciliationDesk
from noncde.platform.adapters.sql.schema import SqlDatabase


@dataclass
class DashboardRuntime:
    """Everything one dashboard process (or one admin command) uses, and its shutdown.

    The readers and the API commands are None when their component is not reachable from
    this configuration; the pages that need them say so instead of failing.
    """

    config: DashboardConfig
    store: StaffStore
    audit: AuditTrail
    auth: AuthService
    staff: StaffAdmin
    access: AccessControl
    audit_pages: AuditPages
    totp: PyotpTotp
    payments: PaymentReads | None = None
    finance: FinanceReads | None = None
    operations: OperationsReads | None = None
    commands: ApiCommands | None = None
    webhooks: WebhookLog | None = None
    refunds: RefundApprovals | None = None
    merchants: MerchantAdmin | None = None
    operations_service: OperationsAdmin | None = None
    reconciliation: ReconciliationDesk | None = None
    readiness: dict[str, Callable[[], bool]] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - shut down everything we can
                get_logger("dashboard").warning("close failed", error=type(exc).__name__)
        self.closers.clear()


def build_store(config: DashboardConfig) -> StaffStore:
    def sql(url: str) -> StaffStore:
        return SqlStaffStore(SqlDatabase(url))

    return choose_adapter(
        f"{PREFIX}DB_URL",
        config.db_url,
        {"sqlite": sql, "postgresql": sql, "memory": lambda _url: MemoryStaffStore()},
    )


def build_oidc(config: DashboardConfig) -> OidcProvider | None:
    if config.oidc is None:
        return None
    from noncde.dashboard.adapters.oidc import AuthlibOidcProvider, OidcSettings

    secret = config.oidc.client_secret_file.read_text(encoding="utf-8").strip()
    return AuthlibOidcProvider(
        OidcSettings(
            issuer=config.oidc.issuer,
            client_id=config.oidc.client_id,
            client_secret=secret,
            scopes=config.oidc.scopes,
            username_claim=config.oidc.username_claim,
            ca_file=config.oidc.ca_file,
        )
    )


def build_runtime(
    config: DashboardConfig | None = None,
    *,
    env: Mapping[str, str] | None = None,
    audit: AuditTrail | None = None,
    store: StaffStore | None = None,
    hasher: PasswordHasher | None = None,
    viewer: AuditViewer | None = None,
    payments: PaymentReads | None = None,
    finance: FinanceReads | None = None,
    operations: OperationsReads | None = None,
    commands: ApiCommands | None = None,
    webhooks: WebhookLog | None = None,
    oidc: OidcProvider | None = None,
    credentials: ServiceCredentials | None = None,
    ca_file: Path | None = None,
    connect: bool = True,
    clock: Clock = utc_now,
) -> DashboardRuntime:
    """Wire the dashboard. Injected parts stay owned by the caller (not closed here).

    With `connect`, the readers of the read models, the platform and the API commands are
    built from the environment (the process and the CLI); without it only what is injected is
    used (tests of the access layer).
    """
    config = config or DashboardConfig.from_env(env)
    closers: list[Callable[[], None]] = []
    readiness: dict[str, Callable[[], bool]] = {}
    if store is None:
        store = build_store(config)
        closers.append(store.close)
        if isinstance(store, SqlStaffStore):
            readiness["staff_db"] = store.db.ping
    if audit is None:
        owned = open_audit_log("noncde", "dashboard", env=env)
        closers.append(owned.close)
        audit = owned
    hasher = hasher or Argon2PasswordHasher()
    totp = PyotpTotp()
    box = AesGcmSecretBox.from_file(config.secret_key_file, create=not is_production(env))
    if oidc is None:
        oidc = build_oidc(config)
    if connect:
        payments, finance, operations, commands, webhooks = _connect(
            config,
            env,
            closers,
            payments,
            finance,
            operations,
            commands,
            webhooks,
            credentials,
            ca_file,
        )
    auth = AuthService(
        store,
        hasher,
        totp,
        box,
        audit,
        sessions=config.session_policy(),
        lockout=config.lockout_policy(),
        passwords=config.password_policy(),
        step_up_window=timedelta(seconds=config.step_up_s),
        oidc=oidc,
        clock=clock,
    )
    staff = StaffAdmin(
        store, hasher, totp, box, audit, passwords=config.password_policy(), clock=clock
    )
    audit_pages = AuditPages(
        viewer or AuditLogViewer(config.audit_zones, env=env),
        audit,
        config.export_dir,
        clock=clock,
    )
    refunds = (
        RefundApprovals(store, payments, commands, audit, clock=clock)
        if payments is not None and commands is not None
        else None
    )
    return DashboardRuntime(
        config=config,
        store=store,
        audit=audit,
        auth=auth,
        staff=staff,
        access=AccessControl(audit),
        audit_pages=audit_pages,
        totp=totp,
        payments=payments,
        finance=finance,
        operations=operations,
        commands=commands,
        refunds=refunds,
        webhooks=webhooks,
        merchants=MerchantAdmin(commands, audit, webhooks) if commands is not None else None,
        operations_service=(OperationsAdmin(operations, audit) if operations is not None else None),
        reconciliation=(
            ReconciliationDesk(finance, store, audit, clock) if finance is not None else None
        ),
        readiness=readiness,
        closers=closers,
    )


def _connect(
    config: DashboardConfig,
    env: Mapping[str, str] | None,
    closers: list[Callable[[], None]],
    payments: PaymentReads | None,
    finance: FinanceReads | None,
    operations: OperationsReads | None,
    commands: ApiCommands | None,
    webhooks: WebhookLog | None,
    credentials: ServiceCredentials | None,
    ca_file: Path | None,
) -> tuple[
    PaymentReads | None,
    FinanceReads | None,
    OperationsReads | None,
    ApiCommands | None,
    WebhookLog | None,
]:
    """The readers of a running platform and the API's staff commands (built when not
    injected): the platform's event store and job queue, PaymentDB and LedgerDB of
    noncde.readmodels, WebhookDB and the reconciliation reports of noncde.workers."""
    from noncde.dashboard.adapters.http import HttpApiCommands
    from noncde.dashboard.adapters.readmodels import (
        LedgerFinanceReads,
        PaymentDbReads,
        PlatformOperations,
        WorkersWebhookLog,
    )
    from noncde.platform.bootstrap import build_platform
    from noncde.readmodels.bootstrap import open_ledger, open_payments
    from noncde.readmodels.config import ReadModelsConfig
    from noncde.workers.adapters.files import FileReportStore
    from noncde.workers.adapters.sql import SqlDeliveryStore
    from noncde.workers.config import WorkersConfig

    if commands is None:
        made = HttpApiCommands(config.api_url, credentials=credentials, ca_file=ca_file)
        closers.append(made.close)
        commands = made
    if payments is not None and finance is not None and operations is not None and webhooks:
        return payments, finance, operations, commands, webhooks
    platform = build_platform(env=env)
    closers.append(platform.close)
    read_models = ReadModelsConfig.from_env(env)
    payment_db = open_payments(read_models.payments_url, synchronous=read_models.sqlite_synchronous)
    closers.append(payment_db.close)
    ledger = open_ledger(read_models.ledger_url, synchronous=read_models.sqlite_synchronous)
    closers.append(ledger.close)
    workers = WorkersConfig.from_env(env)
    deliveries = SqlDeliveryStore(SqlDatabase(workers.webhooks_db_url))
    reads = PaymentDbReads(payment_db.db, platform.events)
    reports = FileReportStore(workers.reports_dir)

    def newest_reports() -> list[dict[str, object]]:
        found = [reports.read(day) for day in reversed(reports.days())]
        return [r for r in found if r is not None]

    if webhooks is None:
        owned = WorkersWebhookLog(deliveries)
        closers.append(owned.close)
        webhooks = owned
    payments = payments or reads
    finance = finance or LedgerFinanceReads(ledger, reads, newest_reports)
    operations = operations or PlatformOperations(
        platform.jobs,
        platform.events,
        {
            "PaymentDB (payments)": payment_db.position,
            "LedgerDB (ledger)": ledger.position,
            "webhook fan-out": deliveries.position,
        },
    )
    return payments, finance, operations, commands, webhooks
