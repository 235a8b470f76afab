"""Helpers for the workers' and read models' integration tests: a PKI, the fake gateway process,
the environment of worker/projectionist/ledger processes, and a driver that writes charges,
captures, cancels and refunds exactly as the API does (events + job in one unit of work)."""

from __future__ import annotations

import json
import os
import ssl
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from fincore.netutil import free_port
from fincore.pki import ensure_ca, issue_service_credentials
from noncde.api.domain import (
    AuthorizeCharge,
    CancelCharge,
    CaptureCharge,
    CardDisplay,
    Charge,
    ChargeCancelRequested,
    ChargeCaptureRequested,
    ChargeRequested,
    ChargeRiskAssessed,
    ExecuteRefund,
    Flow,
    PaymentMethodRef,
    PaymentMethodType,
    RefundRequested,
    RiskDecision,
    charge_stream,
    rfc3339,
)
from noncde.api.domain.ids import new_id
from noncde.platform.bootstrap import build_platform
from noncde.platform.config import PlatformConfig
from noncde.platform.domain import ConcurrencyConflict, NewEvent, RetryPolicy
from noncde.platform.ports import Platform
from tests.harness.procs import ServerProcess

ROOT = Path(__file__).resolve().parents[3]
MERCHANTS = ("mer_AlphaAlphaAlpha", "mer_BravoBravoBravo")


@dataclass
class Pki:
    folder: Path
    ca: Path

    def files(self, name: str, zone: str) -> tuple[Path, Path]:
        creds = issue_service_credentials(self.folder, name, zone)
        return creds.key, creds.cert


def make_pki(folder: Path) -> Pki:
    _, ca = ensure_ca(folder)
    return Pki(folder, ca)


@dataclass
class FakeGateway:
    url: str
    process: ServerProcess
    ca: Path

    def _client(self) -> httpx.Client:
        return httpx.Client(verify=ssl.create_default_context(cafile=str(self.ca)), timeout=10)

    def state(self) -> dict[str, Any]:
        with self._client() as client:
            return dict(client.get(self.url + "/_fake/state").json())

    def set_faults(self, **faults: float) -> None:
        with self._client() as client:
            client.post(self.url + "/_fake/faults", json=faults).raise_for_status()


@contextmanager
def fake_gateway(
    pki: Pki, workdir: Path, faults: Mapping[str, float] | None = None, *, slow_s: float = 2.5
) -> Iterator[FakeGateway]:
    key, cert = pki.files("gateway", "cde")
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "FINCORE_CA_FILE": str(pki.ca),
        "FINCORE_SERVICE_KEY_FILE": str(key),
        "FINCORE_SERVICE_CERT_FILE": str(cert),
        "FINCORE_PORT": str(port),
        "FINCORE_LOG_DIR": str(workdir / "log"),
        "FAKE_FAULTS": json.dumps(dict(faults or {})),
        "FAKE_SLOW_S": str(slow_s),
    }
    proc = ServerProcess(
        [sys.executable, "-m", "tests.integration.workers.fake_gateway"],
        name="fake-gateway",
        log_path=workdir / "fake-gateway.out",
        env=env,
        cwd=ROOT,
    )
    url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(pki.ca))
    try:
        proc.wait_until(lambda: httpx.get(url + "/healthz", verify=context).status_code == 200)
        yield FakeGateway(url, proc, pki.ca)
    finally:
        proc.stop()


def platform_config(db_url: str, *, max_attempts: int = 4) -> PlatformConfig:
    return PlatformConfig.for_database(
        db_url, retry=RetryPolicy(max_attempts=max_attempts, backoff_base_s=0.2, backoff_cap_s=1.0)
    )


def open_platform(db_url: str, *, max_attempts: int = 4) -> Platform:
    return build_platform(platform_config(db_url, max_attempts=max_attempts))


def process_env(
    pki: Pki,
    workdir: Path,
    *,
    name: str,
    platform_url: str,
    payments_url: str,
    ledger_url: str,
    gateway_url: str = "https://127.0.0.1:1",
    max_attempts: int = 4,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment the runner would give a non-CDE process (plain HTTP health port)."""
    key, cert = pki.files(name, "noncde")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(workdir)),
        "FINCORE_ENV": "test",
        "FINCORE_VAR_DIR": str(workdir / "var"),
        "FINCORE_LOG_DIR": str(workdir / "log"),
        "FINCORE_COMPONENT": name,
        "FINCORE_ZONE": "noncde",
        "FINCORE_PORT": str(free_port()),
        "FINCORE_TLS": "0",
        "FINCORE_CA_FILE": str(pki.ca),
        "FINCORE_SERVICE_NAME": name,
        "FINCORE_SERVICE_KEY_FILE": str(key),
        "FINCORE_SERVICE_CERT_FILE": str(cert),
        "FINCORE_NONCDE_DB_URL": platform_url,
        "FINCORE_NONCDE_JOB_MAX_ATTEMPTS": str(max_attempts),
        "FINCORE_NONCDE_JOB_BACKOFF_BASE_S": "0.2",
        "FINCORE_NONCDE_JOB_BACKOFF_CAP_S": "1.0",
        "FINCORE_READMODELS_PAYMENTDB_URL": payments_url,
        "FINCORE_READMODELS_LEDGERDB_URL": ledger_url,
        "FINCORE_READMODELS_POLL_S": "0.05",
        "FINCORE_WORKERS_GATEWAY_URL": gateway_url,
        "FINCORE_WORKERS_GATEWAY_TIMEOUT_S": "1.0",
        "FINCORE_WORKERS_JOB_VISIBILITY_TIMEOUT_S": "3.0",
        "FINCORE_WORKERS_POLL_S": "0.05",
        "FINCORE_WORKERS_JOB_CONCURRENCY": "3",
    }
    env.update(extra or {})
    return env


# ---------------------------------------------------------------- the API's writes


def _new_events(events: list[Any], merchant_id: str, request_id: str | None) -> list[NewEvent]:
    return [
        NewEvent(
            e.type,
            e.to_data(),
            merchant_id=merchant_id,
            correlation_id=request_id,
            id=new_id("evt"),
        )
        for e in events
    ]


def request_charge(
    platform: Platform,
    merchant_id: str,
    amount: int,
    *,
    currency: str = "usd",
    capture: bool = True,
    token: str | None = None,
    psp_token: bool = False,
) -> str:
    """A charge as `POST /v1/charges` records it: requested + risk verdict + authorize job
    (a vault token, as relayed by the card ingress, or a PSP token from the SDK flow)."""
    charge_id = new_id("ch")
    method = PaymentMethodRef(
        PaymentMethodType.PSP_TOKEN if psp_token else PaymentMethodType.VAULT_TOKEN,
        token or new_id("tok"),
        CardDisplay("visa", "4242", 12, 2030, fingerprint="fp" + new_id("x")[2:14]),
    )
    events = [
        ChargeRequested(
            charge_id=charge_id,
            amount=amount,
            currency=currency,
            capture=capture,
            payment_method=method,
            flow=Flow.S2S,
            created=rfc3339(datetime.now(UTC)),
        ),
        ChargeRiskAssessed(charge_id, RiskDecision.ALLOW, [], 1),
    ]
    job = AuthorizeCharge(charge_id, merchant_id, amount, currency, capture, method.job_data())
    request_id = new_id("req")
    with platform.unit_of_work() as uow:
        uow.events.append(charge_stream(charge_id), _new_events(events, merchant_id, request_id), 0)
        uow.jobs.enqueue(job.type, job.to_payload(), dedup_id=job.dedup_id)
        uow.commit()
    return charge_id


def charge(platform: Platform, charge_id: str) -> Charge:
    found = Charge.fold(platform.events.read_stream(charge_stream(charge_id)))
    assert found is not None
    return found


def request_capture(platform: Platform, charge_id: str, amount: int | None = None) -> bool:
    current = charge(platform, charge_id)
    if current.amount_capturable == 0 or current.capture_requested or current.cancel_requested:
        return False
    amount = amount or current.amount_capturable
    job = CaptureCharge(charge_id, current.merchant_id or "", amount)
    try:
        with platform.unit_of_work() as uow:
            uow.events.append(
                charge_stream(charge_id),
                _new_events(
                    [ChargeCaptureRequested(charge_id, amount)], current.merchant_id or "", None
                ),
                current.version,
            )
            uow.jobs.enqueue(job.type, job.to_payload(), dedup_id=job.dedup_id)
            uow.commit()
    except ConcurrencyConflict:
        return False  # a worker appended meanwhile: nothing was requested, ask again
    return True


def request_cancel(platform: Platform, charge_id: str) -> bool:
    current = charge(platform, charge_id)
    if current.amount_capturable == 0 or current.capture_requested or current.cancel_requested:
        return False
    job = CancelCharge(charge_id, current.merchant_id or "")
    try:
        with platform.unit_of_work() as uow:
            uow.events.append(
                charge_stream(charge_id),
                _new_events([ChargeCancelRequested(charge_id)], current.merchant_id or "", None),
                current.version,
            )
            uow.jobs.enqueue(job.type, job.to_payload(), dedup_id=job.dedup_id)
            uow.commit()
    except ConcurrencyConflict:
        return False
    return True


def request_refund(platform: Platform, charge_id: str, amount: int) -> str | None:
    current = charge(platform, charge_id)
    if amount > current.amount_refundable or amount <= 0:
        return None
    refund_id = new_id("re")
    job = ExecuteRefund(refund_id, charge_id, current.merchant_id or "", amount)
    try:
        with platform.unit_of_work() as uow:
            uow.events.append(
                charge_stream(charge_id),
                _new_events(
                    [RefundRequested(refund_id, charge_id, amount)], current.merchant_id or "", None
                ),
                current.version,
            )
            uow.jobs.enqueue(job.type, job.to_payload(), dedup_id=job.dedup_id)
            uow.commit()
    except ConcurrencyConflict:
        return None
    return refund_id
