"""noncde.workers (non-CDE): the composition root. Picks adapters from allow-listed URL schemes
and wires the job worker, the webhook deliverer and reconciliation over the platform.

- Job worker: the gateway over HTTPS (`worker` identity).
- Webhooks: endpoints from the API's internal directory endpoint (`webhooks` identity; the
  API alone can open the sealed signing secrets), or a 0600 JSON file for runs without the
  API; deliveries in WebhookDB (SQL).
- Reconciliation: settlement files over SFTP (`sftp://`) or from a folder (`file://`); the
  ledger through noncde.readmodels (LedgerDB); alerts to log + file (`file://`) or SNS
  (`sns://<topic ARN>`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fincore.identity import ServiceCredentials
from fincore.logs import get_logger
from fincore.settings import SettingsError, choose_adapter
from noncde.platform.adapters.sql.schema import SqlDatabase
from noncde.platform.bootstrap import build_platform
from noncde.platform.config import PlatformConfig
from noncde.platform.ports import Platform
from noncde.readmodels.bootstrap import open_ledger_service
from noncde.workers.adapters.aws import SnsAlertSink
from noncde.workers.adapters.files import (
    FileAlertSink,
    FileEndpointDirectory,
    FileReportStore,
    FolderSettlementSource,
)
from noncde.workers.adapters.http import HttpEndpointDirectory, HttpGateway, HttpxWebhookSender
from noncde.workers.adapters.ledger import LedgerServiceBook
from noncde.workers.adapters.memory import MemoryEndpointDirectory
from noncde.workers.adapters.sftp import SftpSettlementSource
from noncde.workers.adapters.sql import SqlDeliveryStore
from noncde.workers.config import PREFIX, WorkersConfig
from noncde.workers.domain.webhooks import RetrySchedule
from noncde.workers.ports import (
    AlertSink,
    AuditTrail,
    EndpointDirectory,
    Gateway,
    SettlementSource,
)
from noncde.workers.service.jobs import JobWorker, Observer, WorkerSettings
from noncde.workers.service.reconciliation import Reconciler, ReconcileScheduler
from noncde.workers.service.webhooks import WebhookDispatcher, WebhookSettings


def _ignore(_kind: str, _outcome: str, _seconds: float) -> None:
    return None


@dataclass
class Wired:
    """A built role and what to close at shutdown (in reverse order)."""

    platform: Platform
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def _platform(
    env: Mapping[str, str] | None, platform: Platform | None
) -> tuple[Platform, int, bool]:
    config = PlatformConfig.from_env(env)
    if platform is not None:
        return platform, config.retry.max_attempts, False
    return build_platform(config, env=env), config.retry.max_attempts, True


def worker_id(role: str) -> str:
    return f"{role}-{os.getpid()}-{secrets.token_hex(3)}"


# ---------------------------------------------------------------- job worker


@dataclass
class JobWorkerRole(Wired):
    worker: JobWorker | None = None
    concurrency: int = 1


def build_job_worker(
    config: WorkersConfig | None = None,
    *,
    env: Mapping[str, str] | None = None,
    credentials: ServiceCredentials | None,
    ca_file: Path | None,
    platform: Platform | None = None,
    gateway: Gateway | None = None,
    observe: Observer = _ignore,
) -> JobWorkerRole:
    config = config or WorkersConfig.from_env(env)
    built, max_attempts, owned = _platform(env, platform)
    role = JobWorkerRole(platform=built, concurrency=config.job_concurrency)
    if owned:
        role.closers.append(built.close)
    if gateway is None:
        gateway = HttpGateway(
            config.gateway_url,
            credentials=credentials,
            ca_file=ca_file,
            timeout_s=config.gateway_timeout_s,
        )
    role.closers.append(gateway.close)
    role.worker = JobWorker(
        built.jobs,
        built.events,
        gateway,
        WorkerSettings(
            worker_id=worker_id("worker"),
            max_attempts=max_attempts,
            visibility_timeout_s=config.visibility_timeout_s,
            gateway_timeout_s=config.gateway_timeout_s,
            poll_s=config.poll_s,
            dead_letter_sweep_s=config.dead_letter_sweep_s,
        ),
        observe=observe,
    )
    return role


# ---------------------------------------------------------------- webhooks


def endpoint_directory(
    config: WorkersConfig, *, credentials: ServiceCredentials | None, ca_file: Path | None
) -> EndpointDirectory:
    def api(_url: str) -> EndpointDirectory:
        return HttpEndpointDirectory(config.api_url, credentials=credentials, ca_file=ca_file)

    def file(url: str) -> EndpointDirectory:
        return FileEndpointDirectory(Path(unquote(urlsplit(url).path)))

    if config.webhook_endpoints_url == "api":
        return api(config.api_url)
    return choose_adapter(
        f"{PREFIX}WEBHOOK_ENDPOINTS",
        config.webhook_endpoints_url,
        {"file": file, "memory": lambda _u: MemoryEndpointDirectory()},
    )


@dataclass
class WebhooksRole(Wired):
    dispatcher: WebhookDispatcher | None = None
    store: SqlDeliveryStore | None = None


def build_webhooks(
    config: WorkersConfig | None = None,
    *,
    env: Mapping[str, str] | None = None,
    credentials: ServiceCredentials | None,
    ca_file: Path | None,
    platform: Platform | None = None,
    directory: EndpointDirectory | None = None,
    audit: AuditTrail | None = None,
    observe: Observer = _ignore,
) -> WebhooksRole:
    config = config or WorkersConfig.from_env(env)
    built, _, owned = _platform(env, platform)
    role = WebhooksRole(platform=built)
    if owned:
        role.closers.append(built.close)
    database = choose_adapter(
        f"{PREFIX}WEBHOOKS_DB_URL",
        config.webhooks_db_url,
        {"sqlite": SqlDatabase, "postgresql": SqlDatabase},
    )
    store = SqlDeliveryStore(database)
    role.closers.append(store.close)
    role.store = store
    if directory is None:
        directory = endpoint_directory(config, credentials=credentials, ca_file=ca_file)
    sender = HttpxWebhookSender(
        allow_private=config.webhook_allow_private, ca_file=config.webhook_ca_file
    )
    role.dispatcher = WebhookDispatcher(
        built.events,
        directory,
        store,
        sender,
        schedule=RetrySchedule(
            base_s=config.webhook_retry_base_s,
            cap_s=config.webhook_retry_cap_s,
            give_up_after_s=config.webhook_give_up_s,
        ),
        settings=WebhookSettings(
            timeout_s=config.webhook_timeout_s,
            concurrency=config.webhook_concurrency,
            per_endpoint=config.webhook_per_endpoint,
            poll_s=max(0.05, config.poll_s),
        ),
        audit=audit,
        observe=observe,
    )
    return role


# ---------------------------------------------------------------- reconciliation


def _pin_local_sandbox_key(config: WorkersConfig, host: str, port: int) -> None:
    """Local runs only: pin the sandbox's host key from the sandbox's own key file on this
    machine (read from disk, never accepted from the network). Production must provide the
    known_hosts file."""
    if config.environment == "production":
        return
    public = config.sftp_key_file.parent / "sftp_host_key.pub"
    if not public.is_file():
        return
    line = f"[{host}]:{port} {public.read_text().strip()}\n"
    known = config.sftp_known_hosts
    if known.exists() and line in known.read_text().splitlines(keepends=True):
        return
    # The same sandbox on another port (a run with other ports on this var folder) is one more
    # pinned line; a key the file already holds for this address is never replaced.
    known.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(known, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        handle.write(line)
    get_logger("workers.reconciliation").info(
        "pinned the local sandbox's SFTP host key", known_hosts=str(config.sftp_known_hosts)
    )


def settlement_source(config: WorkersConfig) -> SettlementSource:
    def sftp(url: str) -> SettlementSource:
        parts = urlsplit(url)
        if not parts.hostname or not parts.username:
            raise SettingsError(f"{PREFIX}SETTLEMENT_URL: sftp://user@host:port/folder")
        port = parts.port or 22
        _pin_local_sandbox_key(config, parts.hostname, port)
        return SftpSettlementSource(
            parts.hostname,
            port,
            unquote(parts.username),
            key_file=config.sftp_key_file,
            known_hosts=config.sftp_known_hosts,
            folder=unquote(parts.path) or "/",
        )

    def folder(url: str) -> SettlementSource:
        return FolderSettlementSource(Path(unquote(urlsplit(url).path)))

    return choose_adapter(
        f"{PREFIX}SETTLEMENT_URL", config.settlement_url, {"sftp": sftp, "file": folder}
    )


def alert_sink(config: WorkersConfig) -> AlertSink:
    record = FileAlertSink(config.reports_dir / "alerts.jsonl")

    def file(url: str) -> AlertSink:
        return FileAlertSink(Path(unquote(urlsplit(url).path)))

    def sns(url: str) -> AlertSink:
        topic = url.split("://", 1)[1]
        if not topic.startswith("arn:"):
            raise SettingsError(f"{PREFIX}ALERT_URL: sns://<topic ARN>")
        return SnsAlertSink(topic, record)

    return choose_adapter(f"{PREFIX}ALERT_URL", config.alert_url, {"file": file, "sns": sns})


@dataclass
class ReconcileRole(Wired):
    reconciler: Reconciler | None = None
    scheduler: ReconcileScheduler | None = None
    reports: FileReportStore | None = None


def build_reconciler(
    config: WorkersConfig | None = None,
    *,
    env: Mapping[str, str] | None = None,
    platform: Platform | None = None,
    source: SettlementSource | None = None,
    alerts: AlertSink | None = None,
    audit: AuditTrail | None = None,
) -> ReconcileRole:
    config = config or WorkersConfig.from_env(env)
    built, _, owned = _platform(env, platform)
    role = ReconcileRole(platform=built)
    if owned:
        role.closers.append(built.close)
    service, close_ledger = open_ledger_service(built, env=env)
    role.closers.append(close_ledger)
    reports = FileReportStore(config.reports_dir)
    role.reports = reports
    role.reconciler = Reconciler(
        source or settlement_source(config),
        LedgerServiceBook(service),
        reports,
        alerts or alert_sink(config),
        audit=audit,
    )
    role.scheduler = ReconcileScheduler(
        role.reconciler,
        reports,
        run_at=config.reconcile_at,
        catch_up_days=config.reconcile_catch_up_days,
        check_every_s=config.reconcile_check_s,
    )
    return role
