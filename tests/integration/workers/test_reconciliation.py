"""Reconciliation over a real SFTP server (pinned host key): a clean day has zero findings and
posts the PSP's fees; a file with each kind of mismatch finds each one and alerts once; a
re-run changes nothing; the host key is verified; alerts reach SNS (moto); the CLI and the
daily scheduler run it."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import boto3
import pytest

from noncde.api.domain import (
    CardDisplay,
    ChargeCaptured,
    ChargeRequested,
    Flow,
    PaymentMethodRef,
    PaymentMethodType,
    RefundRequested,
    RefundSucceeded,
    charge_stream,
    rfc3339,
)
from noncde.api.domain.ids import new_id
from noncde.platform.bootstrap import build_platform
from noncde.platform.config import PlatformConfig
from noncde.platform.domain import NewEvent
from noncde.platform.ports import Platform
from noncde.readmodels.bootstrap import open_ledger_service
from noncde.readmodels.service.ledger import LedgerService
from noncde.workers.adapters.aws import SnsAlertSink
from noncde.workers.adapters.files import FileAlertSink, FileReportStore
from noncde.workers.adapters.ledger import LedgerServiceBook
from noncde.workers.adapters.sftp import SftpSettlementSource
from noncde.workers.domain.reconciliation import SettlementUnavailable
from noncde.workers.service.reconciliation import Reconciler, ReconcileScheduler
from tests.harness.peers import SftpServer
from tests.integration.workers import harness

pytestmark = pytest.mark.sftp

DAY = date(2026, 11, 27)
MERCHANT_A, MERCHANT_B = harness.MERCHANTS
HEADER = (
    "psp_reference,type,amount,fee,net,currency,date,payment_intent,balance_transaction,reference"
)


def fee_of(amount: int) -> int:
    return int((Decimal(amount) * 290 / 10000).quantize(Decimal(1), ROUND_HALF_UP)) + 30


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    def __call__(self) -> float:
        return self.now

    def at(self, moment: datetime) -> None:
        self.now = moment.timestamp()


@dataclass
class Book:
    """What the ledger holds: (psp reference, type, signed amount, currency, charge)."""

    lines: list[tuple[str, str, int, str, str]]


@dataclass
class World:
    platform: Platform
    clock: Clock
    ledger: LedgerService
    close_ledger: object
    tmp: Path
    env: dict[str, str]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = Clock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
    platform_url = f"sqlite:///{tmp_path / 'platform.db'}"
    platform = build_platform(PlatformConfig.for_database(platform_url), clock=clock)
    env = {
        "FINCORE_VAR_DIR": str(tmp_path / "var"),
        "FINCORE_ENV": "test",
        "FINCORE_NONCDE_DB_URL": platform_url,
        "FINCORE_READMODELS_PAYMENTDB_URL": f"sqlite:///{tmp_path / 'payments.db'}",
        "FINCORE_READMODELS_LEDGERDB_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
    }
    service, close = open_ledger_service(platform, env=env)
    yield World(platform, clock, service, close, tmp_path, env)
    close()
    platform.close()


def _captured(
    world: World, merchant: str, amount: int, currency: str, when: datetime
) -> tuple[str, str]:
    world.clock.at(when)
    charge_id, pi = new_id("ch"), new_id("pi")
    method = PaymentMethodRef(
        PaymentMethodType.PSP_TOKEN, new_id("pm"), CardDisplay("visa", "4242", 1, 2030)
    )
    world.platform.events.append(
        charge_stream(charge_id),
        [
            NewEvent(e.type, e.to_data(), merchant_id=merchant, id=new_id("evt"))
            for e in (
                ChargeRequested(charge_id, amount, currency, True, method, Flow.SDK, rfc3339(when)),
                ChargeCaptured(charge_id, amount, amount, pi),
            )
        ],
        expected_version=0,
    )
    return charge_id, pi


def _refunded(world: World, charge_id: str, merchant: str, amount: int, when: datetime) -> str:
    world.clock.at(when)
    refund_id, pre = new_id("re"), new_id("pre")
    world.platform.events.append(
        charge_stream(charge_id),
        [
            NewEvent(e.type, e.to_data(), merchant_id=merchant, id=new_id("evt"))
            for e in (
                RefundRequested(refund_id, charge_id, amount),
                RefundSucceeded(refund_id, charge_id, amount, pre),
            )
        ],
        expected_version=2,
    )
    return pre


def _history(world: World) -> Book:
    """Five captures and a refund on DAY, one capture the day before."""
    at = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    book = []
    charges = []
    for n, (merchant, amount, currency) in enumerate(
        [
            (MERCHANT_A, 2000, "usd"),
            (MERCHANT_A, 1550, "eur"),
            (MERCHANT_B, 9999, "usd"),
            (MERCHANT_B, 400, "usd"),
            (MERCHANT_A, 12345, "gbp"),
        ]
    ):
        charge_id, pi = _captured(world, merchant, amount, currency, at + timedelta(minutes=n))
        charges.append((charge_id, merchant, amount, currency))
        book.append((pi, "charge", amount, currency, charge_id))
    pre = _refunded(world, charges[2][0], MERCHANT_B, 2500, at + timedelta(hours=3))
    book.append((pre, "refund", -2500, "usd", charges[2][0]))
    _captured(world, MERCHANT_B, 777, "usd", datetime(2026, 11, 26, 15, 0, tzinfo=UTC))
    return Book(book)


def settlement_csv(rows: list[tuple[str, str, int, str]], day: date = DAY) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER.split(","))
    for n, (ref, kind, amount, currency) in enumerate(rows):
        fee = fee_of(amount) if kind == "charge" else 0
        writer.writerow(
            [
                ref,
                kind,
                amount,
                fee,
                amount - fee,
                currency,
                day.isoformat(),
                ref if kind == "charge" else "pi_parent",
                f"txn_{day:%Y%m%d}Line{n}x",
                "",
            ]
        )
    return out.getvalue().encode()


def _put(server: SftpServer, data: bytes, day: date = DAY) -> None:
    (server.root / f"settlement-{day.isoformat()}.csv").write_bytes(data)


def _known_hosts(server: SftpServer, tmp: Path) -> Path:
    path = tmp / "known_hosts"
    path.write_text(server.known_hosts_line() + "\n")
    return path


def _source(server: SftpServer, known_hosts: Path) -> SftpSettlementSource:
    return SftpSettlementSource(
        server.host,
        server.port,
        server.username,
        key_file=server.client_key,
        known_hosts=known_hosts,
    )


def _reconciler(world: World, server: SftpServer, alerts: object = None) -> Reconciler:
    return Reconciler(
        _source(server, _known_hosts(server, world.tmp)),
        LedgerServiceBook(world.ledger),
        FileReportStore(world.tmp / "reports"),
        alerts or FileAlertSink(world.tmp / "reports" / "alerts.jsonl"),  # type: ignore[arg-type]
    )


def test_clean_day_has_zero_findings_and_posts_the_fees(
    world: World, sftp_server: SftpServer
) -> None:
    """A settlement file that agrees with the ledger reconciles with zero findings; its fees
    are posted to the merchants' fee accounts once, and a re-run changes nothing."""
    book = _history(world)
    _put(sftp_server, settlement_csv([(r, k, a, c) for r, k, a, c, _ in book.lines]))
    reconciler = _reconciler(world, sftp_server)
    first = reconciler.run(DAY)
    assert first.report.findings == []
    assert first.report.clean and first.report.matched == 6 and first.report.lines == 6
    assert not first.alerted
    expected_fees = {MERCHANT_A: {}, MERCHANT_B: {}}
    for _ref, kind, amount, currency, _charge_id in book.lines:
        if kind == "charge":
            merchant = MERCHANT_A if amount in (2000, 1550, 12345) else MERCHANT_B
            expected_fees[merchant][currency] = expected_fees[merchant].get(currency, 0) + fee_of(
                amount
            )
    for merchant, fees in expected_fees.items():
        got = {b.currency: b.fees for b in world.ledger.merchant_balance(merchant) if b.fees}
        assert got == fees
    assert world.ledger.trial_balance().balanced
    count = world.ledger.trial_balance().transactions
    report_dir = Path(first.location)
    files = {p.name: p.read_bytes() for p in report_dir.iterdir()}
    assert set(files) == {"report.json", "findings.csv", "summary.txt"}
    assert b"CLEAN" in files["summary.txt"]
    counts = json.loads(files["report.json"])["counts"]
    assert counts == dict.fromkeys(counts, 0)

    again = reconciler.run(DAY)
    assert again.fees_posted == 0 and not again.alerted
    assert world.ledger.trial_balance().transactions == count
    assert {p.name: p.read_bytes() for p in report_dir.iterdir()} == files


def test_each_kind_of_mismatch_is_found_and_alerted_once(
    world: World, sftp_server: SftpServer
) -> None:
    """Missing in the ledger, missing at the PSP, amount and currency mismatches, duplicates and
    an unreadable line are each found; one alert is raised; a re-run finds the same and
    neither alerts nor posts again."""
    book = _history(world)
    lines = {ref: (ref, kind, amount, currency) for ref, kind, amount, currency, _ in book.lines}
    refs = list(lines)
    rows = [
        lines[refs[0]],  # matched
        (refs[1], "charge", 1549, "eur"),  # amount mismatch (ledger 1550)
        (refs[2], "charge", 9999, "gbp"),  # currency mismatch (ledger usd)
        lines[refs[3]],
        lines[refs[3]],  # duplicate line
        ("pi_NotOursNotOursNot1", "charge", 5000, "usd"),  # missing in the ledger
        lines[refs[5]],  # the refund, matched
        # refs[4] (the gbp capture) is missing at the PSP
    ]
    data = settlement_csv(rows) + b"pi_Broken,charge,12x,3,9,usd,2026-11-27,pi_Broken,txn_b,\n"
    _put(sftp_server, data)
    alerts = FileAlertSink(world.tmp / "reports" / "alerts.jsonl")
    reconciler = _reconciler(world, sftp_server, alerts)
    result = reconciler.run(DAY)
    found = {(f.kind.value, f.psp_reference) for f in result.report.findings}
    assert found == {
        ("amount_mismatch", refs[1]),
        ("currency_mismatch", refs[2]),
        ("duplicate", refs[3]),
        ("missing_in_ledger", "pi_NotOursNotOursNot1"),
        ("missing_at_psp", refs[4]),
        ("malformed", "pi_Broken"),
    }
    assert result.report.matched == 3
    amount = next(f for f in result.report.findings if f.kind.value == "amount_mismatch")
    assert (amount.settlement_amount, amount.ledger_amount) == (1549, 1550)
    assert result.alerted
    alert_lines = (world.tmp / "reports" / "alerts.jsonl").read_text().splitlines()
    assert len(alert_lines) == 1 and json.loads(alert_lines[0])["counts"]["missing_at_psp"] == 1
    findings_csv = (Path(result.location) / "findings.csv").read_text()
    assert "pi_NotOursNotOursNot1" in findings_csv and findings_csv.count("\n") == 7
    posted = world.ledger.trial_balance().transactions
    # Fees: for lines whose reference the ledger knows (matched or mismatched), once.
    assert result.fees_posted == 4

    again = reconciler.run(DAY)
    assert {(f.kind.value, f.psp_reference) for f in again.report.findings} == found
    assert not again.alerted and again.fees_posted == 0
    assert world.ledger.trial_balance().transactions == posted
    assert len((world.tmp / "reports" / "alerts.jsonl").read_text().splitlines()) == 1


def test_a_capture_settled_the_next_day_is_not_a_finding(
    world: World, sftp_server: SftpServer
) -> None:
    """A capture recorded at 23:59:59 whose PSP settles it the next day is matched on the next
    day's file and is no finding on either day."""
    _charge_id, pi = _captured(
        world, MERCHANT_A, 3000, "usd", datetime(2026, 11, 27, 23, 59, 59, tzinfo=UTC)
    )
    _other_id, other = _captured(
        world, MERCHANT_A, 1000, "usd", datetime(2026, 11, 27, 12, tzinfo=UTC)
    )
    _put(sftp_server, settlement_csv([(other, "charge", 1000, "usd")]))
    _put(
        sftp_server,
        settlement_csv([(pi, "charge", 3000, "usd")], DAY + timedelta(days=1)),
        DAY + timedelta(days=1),
    )
    reconciler = _reconciler(world, sftp_server)
    today = reconciler.run(DAY).report
    assert today.findings == [] and today.timing == [pi]
    tomorrow = reconciler.run(DAY + timedelta(days=1)).report
    assert tomorrow.findings == [] and tomorrow.matched == 1


def test_unknown_or_changed_host_keys_are_refused(
    world: World, sftp_server: SftpServer, tmp_path: Path
) -> None:
    """The SFTP client accepts only the pinned host key: an empty known_hosts or a different
    key for the host refuses the connection (no trust on first use)."""
    _put(sftp_server, settlement_csv([]))
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(SettlementUnavailable, match="refused"):
        _source(sftp_server, empty).fetch(DAY)
    import asyncssh

    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[{sftp_server.host}]:{sftp_server.port} {impostor}\n")
    with pytest.raises(SettlementUnavailable, match="does not match"):
        _source(sftp_server, wrong).fetch(DAY)
    assert _source(sftp_server, _known_hosts(sftp_server, tmp_path)).fetch(DAY) == settlement_csv(
        []
    )
    assert (
        _source(sftp_server, _known_hosts(sftp_server, tmp_path)).fetch(DAY + timedelta(days=3))
        is None
    )


@pytest.mark.aws
def test_mismatch_alert_goes_to_sns(world: World, sftp_server: SftpServer, aws: object) -> None:
    """With the SNS sink, a mismatch publishes one message to the topic (read back through an
    SQS subscription on moto); a re-run publishes nothing more."""
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="fincore-reconciliation")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    _history(world)
    _put(sftp_server, settlement_csv([("pi_NotOursNotOursNot1", "charge", 5000, "usd")]))
    sink = SnsAlertSink(topic, FileAlertSink(world.tmp / "reports" / "alerts.jsonl"), client=sns)
    reconciler = _reconciler(world, sftp_server, sink)
    assert reconciler.run(DAY).alerted
    assert not reconciler.run(DAY).alerted
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
        "Messages", []
    )
    assert len(messages) == 1
    body = json.loads(json.loads(messages[0]["Body"])["Message"])
    assert body["day"] == DAY.isoformat()
    assert body["counts"]["missing_in_ledger"] == 1 and body["counts"]["missing_at_psp"] == 6


def test_cli_reconciles_a_day_and_the_scheduler_catches_up(
    world: World, sftp_server: SftpServer
) -> None:
    """`reconcile --date` over SFTP exits 0 on a clean day and writes the report; the scheduler
    runs every recent day without a report, once."""
    book = _history(world)
    _put(sftp_server, settlement_csv([(r, k, a, c) for r, k, a, c, _ in book.lines]))
    known = _known_hosts(sftp_server, world.tmp)
    pki = harness.make_pki(world.tmp / "pki")
    env = harness.process_env(
        pki,
        world.tmp,
        name="reconciler",
        platform_url=world.env["FINCORE_NONCDE_DB_URL"],
        payments_url=world.env["FINCORE_READMODELS_PAYMENTDB_URL"],
        ledger_url=world.env["FINCORE_READMODELS_LEDGERDB_URL"],
        extra={
            "FINCORE_VAR_DIR": world.env["FINCORE_VAR_DIR"],
            "FINCORE_WORKERS_SETTLEMENT_URL": f"sftp://{sftp_server.username}@{sftp_server.host}:{sftp_server.port}/",
            "FINCORE_WORKERS_SFTP_KEY_FILE": str(sftp_server.client_key),
            "FINCORE_WORKERS_SFTP_KNOWN_HOSTS": str(known),
            "FINCORE_AUDIT_ACTOR": "ops-carol",
        },
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "noncde.workers.app",
            "reconcile",
            "--date",
            DAY.isoformat(),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=harness.ROOT,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["clean"] and out["matched"] == 6 and out["fees_posted_now"] == 5
    report = Path(world.env["FINCORE_VAR_DIR"]) / "reconciliation" / DAY.isoformat() / "report.json"
    assert json.loads(report.read_text())["matched"] == 6
    audit_lines = [
        line
        for p in (Path(world.env["FINCORE_VAR_DIR"]) / "audit").rglob("*")
        if p.is_file()
        for line in p.read_text(errors="replace").splitlines()
        if '"reconcile"' in line
    ]
    assert len(audit_lines) == 1 and "ops-carol" in audit_lines[0]

    reports = FileReportStore(world.tmp / "sched-reports")
    reconciler = Reconciler(
        _source(sftp_server, known),
        LedgerServiceBook(world.ledger),
        reports,
        FileAlertSink(world.tmp / "sched-reports" / "alerts.jsonl"),
    )
    now = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)  # before 02:00: the 28th is not due yet
    scheduler = ReconcileScheduler(
        reconciler, reports, catch_up_days=3, clock=lambda: now.timestamp()
    )
    assert scheduler.due() == [date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27)]
    assert scheduler.tick() == [date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27)]
    assert scheduler.due() == [date(2026, 11, 26)]  # no file, yet the ledger has a capture
    now = datetime(2026, 11, 29, 2, 30, tzinfo=UTC)
    assert date(2026, 11, 28) in scheduler.due()
