"""The job worker, the read models, the ledger and reconciliation with the real CDE: vault,
gateway and PSP sandbox as processes. Vault-token and PSP-token charges, a decline, a partial
capture, a cancel, partial refunds and an answer lost at the PSP end with one PSP payment per
charge; the ledger balances; the sandbox's own settlement file, fetched over its SFTP server,
reconciles with zero findings and posts its fees; no card number is in any store of ours."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from fincore.identity import ServiceCredentials
from fincore.netutil import free_port, wait_for_port
from fincore.pan_sweep import Sweeper
from fincore.pki import issue_service_credentials
from noncde.api.domain import ChargeStatus, RefundStatus
from noncde.platform.ports import Platform
from noncde.readmodels.bootstrap import open_ledger, open_payments
from noncde.readmodels.service.ledger import LedgerService
from noncde.readmodels.service.projector import Projector, rebuild
from noncde.workers.adapters.files import FileAlertSink, FileReportStore
from noncde.workers.adapters.ledger import LedgerServiceBook
from noncde.workers.adapters.sftp import SftpSettlementSource
from noncde.workers.bootstrap import JobWorkerRole, build_job_worker
from noncde.workers.config import WorkersConfig
from noncde.workers.service.reconciliation import Reconciler
from tests.integration.gateway.conftest import audit_records
from tests.integration.gateway.peers import (
    MERCHANT,
    GatewayServer,
    RecordingApi,
    VaultServer,
    gateway_env,
    intents_for,
    make_plan,
    psp_token,
    start_gateway,
    start_vault,
)
from tests.integration.psp_sandbox.peer import SandboxServer, start_sandbox
from tests.integration.workers import harness

pytestmark = [pytest.mark.e2e, pytest.mark.psp, pytest.mark.sftp]

CARDS = {"ok": "4242424242424242", "mc": "5555555555554444", "declined": "4000000000000002"}


@dataclass
class Stack:
    plan: object
    sandbox: SandboxServer
    vault: VaultServer
    gateway: GatewayServer
    sftp_port: int


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    plan = make_plan(tmp_path_factory.mktemp("workers-stack"))
    api = RecordingApi(plan).start()
    sftp_port = free_port()
    try:
        for sandbox in start_sandbox(
            tmp_path_factory.mktemp("workers-sandbox"),
            ca_file=plan.ca_file,
            SFTP_PORT=str(sftp_port),
            SETTLEMENT_JOB="0",
        ):
            for vault in start_vault(plan):
                env = gateway_env(
                    plan, sandbox.url, sandbox.secret_key, sandbox.webhook_secret, api.url
                )
                for gateway in start_gateway(plan, env):
                    sandbox.set_endpoints(gateway.url + "/v1/psp/webhooks")
                    wait_for_port(sftp_port)
                    yield Stack(plan, sandbox, vault, gateway, sftp_port)
    finally:
        api.stop()


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    built = harness.open_platform(f"sqlite:///{tmp_path / 'platform.db'}", max_attempts=6)
    yield built
    built.close()


@pytest.fixture
def worker(stack: Stack, platform: Platform, tmp_path: Path) -> Iterator[JobWorkerRole]:
    files = issue_service_credentials(stack.plan.pki_dir, "worker", "noncde")  # type: ignore[attr-defined]
    env = {
        "FINCORE_VAR_DIR": str(tmp_path / "var"),
        "FINCORE_WORKERS_GATEWAY_URL": stack.gateway.url,
        "FINCORE_WORKERS_GATEWAY_TIMEOUT_S": "8",
        "FINCORE_WORKERS_JOB_VISIBILITY_TIMEOUT_S": "30",
        "FINCORE_WORKERS_POLL_S": "0.05",
    }
    role = build_job_worker(
        WorkersConfig.from_env(env),
        env=env,
        credentials=ServiceCredentials.from_files(files.key, files.cert),
        ca_file=stack.plan.ca_file,  # type: ignore[attr-defined]
        platform=platform,
    )
    yield role
    role.close()


def _drain(role: JobWorkerRole, platform: Platform, timeout_s: float = 120) -> None:
    assert role.worker is not None
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=role.worker.run, args=(stop,), kwargs={"name": f"w{n}"}, daemon=True
        )
        for n in range(3)
    ]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            counts = platform.jobs.counts()
            if counts.ready == counts.in_flight == counts.delayed == 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"queue did not drain: {platform.jobs.counts()}")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


def fee_of(amount: int) -> int:
    return int((Decimal(amount) * 290 / 10000).quantize(Decimal(1), ROUND_HALF_UP)) + 30


def test_payments_ledger_and_reconciliation_with_the_real_cde(
    stack: Stack, platform: Platform, worker: JobWorkerRole, tmp_path: Path
) -> None:
    """Every flow ends with its outcome and one PSP payment; the ledger and PaymentDB agree
    with a rebuild; the sandbox's settlement file reconciles with zero findings."""

    def vault_token(card: str) -> str:
        return str(stack.vault.tokenize(CARDS[card])["token"])

    auto = harness.request_charge(platform, MERCHANT, 2500, token=vault_token("ok"))
    declined = harness.request_charge(platform, MERCHANT, 1800, token=vault_token("declined"))
    manual = harness.request_charge(
        platform, MERCHANT, 4000, capture=False, token=psp_token(stack.sandbox), psp_token=True
    )
    canceled = harness.request_charge(
        platform, MERCHANT, 900, capture=False, token=vault_token("mc")
    )
    _drain(worker, platform)
    assert harness.request_capture(platform, manual, 3000)
    assert harness.request_cancel(platform, canceled)
    _drain(worker, platform)
    # The PSP's answer to the next authorization is lost (the payment is made, the answer held
    # past the gateway's read timeout): the worker resolves it by a status lookup.
    stack.sandbox.fault(
        kind="timeout", next=1, hold_s=4, execute=True, path_prefix="/v1/payment_intents"
    )
    lost = harness.request_charge(platform, MERCHANT, 3100, token=vault_token("ok"))
    _drain(worker, platform)
    assert harness.request_refund(platform, auto, 1000)
    _drain(worker, platform)
    assert harness.request_refund(platform, auto, 500)
    assert harness.request_refund(platform, manual, 3000)
    _drain(worker, platform)

    expected = {
        auto: ChargeStatus.SUCCEEDED,
        declined: ChargeStatus.FAILED,
        manual: ChargeStatus.SUCCEEDED,
        canceled: ChargeStatus.CANCELED,
        lost: ChargeStatus.SUCCEEDED,
    }
    for charge_id, status in expected.items():
        current = harness.charge(platform, charge_id)
        assert current.status is status, (charge_id, current.status, current.failure_message)
        assert len(intents_for(stack.sandbox, charge_id)) == 1, charge_id
    assert harness.charge(platform, declined).failure_code == "card_declined"
    assert harness.charge(platform, manual).amount_captured == 3000
    assert harness.charge(platform, auto).amount_refunded == 1500
    assert all(r.status is RefundStatus.SUCCEEDED for r in harness.charge(platform, auto).refunds)
    assert harness.charge(platform, lost).amount_captured == 3100
    assert platform.jobs.dead_letters() == []
    assert stack.sandbox.admin("GET", "/_sandbox/faults") in ([], {"faults": []})  # it fired
    lookups = [
        r
        for r in audit_records(stack.plan)  # type: ignore[arg-type]
        if r.get("target") == lost and "retrieve" in str(r.get("details"))
    ]
    assert lookups, "the lost answer was not resolved by a status lookup at the gateway"

    # Ledger and PaymentDB, and their rebuilds.
    payments = open_payments(f"sqlite:///{tmp_path / 'payments.db'}")
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    Projector(platform.events, payments).catch_up()
    projector = Projector(platform.events, ledger)
    service = LedgerService(platform.events, ledger, projector)
    service.catch_up()
    (balance,) = service.merchant_balance(MERCHANT)
    assert (balance.captured, balance.refunded) == (2500 + 3000 + 3100, 1500 + 3000)
    assert service.trial_balance().balanced
    for live, fresh in (
        (payments, open_payments(f"sqlite:///{tmp_path / 'p2.db'}")),
        (ledger, open_ledger(f"sqlite:///{tmp_path / 'l2.db'}")),
    ):
        assert rebuild(platform.events, fresh).digest == live.digest()  # type: ignore[arg-type]
        fresh.close()

    # Reconciliation against the sandbox's settlement file, over its SFTP server.
    today = datetime.now(UTC).date()
    stack.sandbox.admin("POST", f"/_sandbox/settlements/{today.isoformat()}")
    keys = stack.sandbox.state_dir / "sftp-keys"
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        f"[127.0.0.1]:{stack.sftp_port} {(keys / 'sftp_host_key.pub').read_text().strip()}\n"
    )
    reconciler = Reconciler(
        SftpSettlementSource(
            "127.0.0.1",
            stack.sftp_port,
            "fincore",
            key_file=keys / "sftp_client_key",
            known_hosts=known_hosts,
        ),
        LedgerServiceBook(service),
        FileReportStore(tmp_path / "reports"),
        FileAlertSink(tmp_path / "reports" / "alerts.jsonl"),
    )
    result = reconciler.run(today)
    assert result.report.findings == [], result.report.summary()
    assert result.report.matched == 6  # 3 captures (one partial) and 3 refunds
    (after,) = service.merchant_balance(MERCHANT)
    assert after.fees == fee_of(2500) + fee_of(3000) + fee_of(3100)
    assert reconciler.run(today).fees_posted == 0

    # No card number anywhere in our stores, reports or logs.
    sweeper = Sweeper(canaries=list(CARDS.values()))
    for target in (tmp_path / "platform.db", tmp_path / "payments.db", tmp_path / "ledger.db"):
        sweeper.target(f"sqlite:///{target}")
    sweeper.target(str(tmp_path / "reports"))
    assert sweeper.result.errors == [] and sweeper.findings == []
    payments.close()
    ledger.close()
