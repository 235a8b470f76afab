"""The job worker's sequencing against a scripted gateway on the in-memory platform: what it
asks before sending again, what it records, when it gives up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fincore.settings import SettingsError
from noncde.api.domain import AuthorizeCharge, CaptureCharge, Charge, charge_stream
from noncde.platform.bootstrap import build_platform
from noncde.platform.config import PlatformConfig
from noncde.platform.domain import RetryPolicy
from noncde.platform.ports import Platform
from noncde.workers.bootstrap import settlement_source
from noncde.workers.config import WorkersConfig
from noncde.workers.domain.jobs import (
    GatewayRefused,
    GatewayUnavailable,
    PaymentAnswer,
    PaymentNotFound,
    PaymentStatus,
    RefundAnswer,
    RefundAnswerStatus,
)
from noncde.workers.service.jobs import JobWorker, WorkerSettings
from tests.integration.workers import harness


class ScriptedGateway:
    """Answers from a script, one entry per call; records the calls in order."""

    def __init__(self, **script: list[Any]) -> None:
        self.script = script
        self.calls: list[str] = []
        self.refund_references: list[str | None] = []

    def _next(self, name: str) -> Any:
        self.calls.append(name)
        answer = self.script[name].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def authorize(self, job: AuthorizeCharge) -> PaymentAnswer:
        return self._next("authorize")

    def capture(self, job: CaptureCharge) -> PaymentAnswer:
        return self._next("capture")

    def cancel(self, job: Any) -> PaymentAnswer:
        return self._next("cancel")

    def refund(self, job: Any, psp_reference: str | None = None) -> RefundAnswer:
        self.refund_references.append(psp_reference)
        return self._next("refund")

    def payment_status(self, charge_id: str) -> PaymentAnswer:
        return self._next("status")

    def close(self) -> None:
        return None


@pytest.fixture
def platform() -> Iterator[Platform]:
    built = build_platform(
        PlatformConfig.for_database(
            "memory://",
            retry=RetryPolicy(max_attempts=3, backoff_base_s=0.001, backoff_cap_s=0.002),
        )
    )
    yield built
    built.close()


def _worker(platform: Platform, gateway: ScriptedGateway) -> JobWorker:
    return JobWorker(
        platform.jobs, platform.events, gateway, WorkerSettings("w1", max_attempts=3, poll_s=0.001)
    )


def _run(worker: JobWorker, platform: Platform) -> list[str]:
    outcomes = []
    for _ in range(50):
        leased = platform.jobs.lease("w1", visibility_timeout_s=5)
        if not leased:
            time.sleep(0.005)
            counts = platform.jobs.counts()
            if counts.ready == counts.in_flight == counts.delayed == 0:
                break
            continue
        outcomes.append(worker.handle(leased[0]))
    return outcomes


def _charge(platform: Platform, charge_id: str) -> Charge:
    charge = Charge.fold(platform.events.read_stream(charge_stream(charge_id)))
    assert charge is not None
    return charge


def test_unknown_answer_is_resolved_by_a_status_lookup_not_a_second_authorization(
    platform: Platform,
) -> None:
    """authorize → unknown → status (succeeded) → the capture is recorded; no second POST."""
    gateway = ScriptedGateway(
        authorize=[PaymentAnswer(PaymentStatus.UNKNOWN)],
        status=[PaymentAnswer(PaymentStatus.SUCCEEDED, "pi_1", amount_received=1200)],
    )
    charge_id = harness.request_charge(platform, "mer_A", 1200)
    assert _run(_worker(platform, gateway), platform) == ["resolved_succeeded"]
    assert gateway.calls == ["authorize", "status"]
    charge = _charge(platform, charge_id)
    assert str(charge.status) == "succeeded" and charge.psp_reference == "pi_1"


def test_failed_lookup_sends_nothing_and_the_retry_asks_first(platform: Platform) -> None:
    """When the status cannot be had, the attempt ends without sending; the next attempt asks
    again before anything else, and a PSP without the payment allows the authorization."""
    gateway = ScriptedGateway(
        authorize=[
            GatewayUnavailable("timeout"),
            PaymentAnswer(PaymentStatus.REQUIRES_CAPTURE, "pi_2", amount_capturable=900),
        ],
        status=[GatewayUnavailable("503"), PaymentNotFound("none")],
    )
    charge_id = harness.request_charge(platform, "mer_A", 900, capture=False)
    assert _run(_worker(platform, gateway), platform) == ["retry", "retry", "requires_capture"]
    assert gateway.calls == ["authorize", "status", "status", "authorize"]
    assert str(_charge(platform, charge_id).status) == "requires_capture"


def test_exhausted_retries_dead_letter_with_a_charge_event(platform: Platform) -> None:
    """Three unavailable answers exhaust the attempts: the job is a dead letter and the charge
    says why."""
    gateway = ScriptedGateway(
        authorize=[GatewayUnavailable("the gateway answered 503 (psp_unavailable)")],
        status=[PaymentNotFound("none"), PaymentNotFound("none")],
    )
    gateway.script["authorize"] += [GatewayUnavailable("again 503")] * 2
    charge_id = harness.request_charge(platform, "mer_A", 500)
    assert _run(_worker(platform, gateway), platform) == ["retry", "retry", "dead_lettered"]
    (letter,) = platform.jobs.dead_letters()
    charge = _charge(platform, charge_id)
    assert charge.dead_letter == {
        "operation": "authorize",
        "reason": "again 503",
        "job_id": letter.job_id,
    }


def test_a_refusal_fails_the_charge_but_an_identity_refusal_is_retried(platform: Platform) -> None:
    """400 from the gateway is the outcome (charge failed, nothing charged); 403 is ours to
    fix: retried, never recorded as the charge's outcome."""
    gateway = ScriptedGateway(authorize=[GatewayRefused(400, "parameter_invalid", "Bad token.")])
    charge_id = harness.request_charge(platform, "mer_A", 500)
    assert _run(_worker(platform, gateway), platform) == ["refused"]
    charge = _charge(platform, charge_id)
    assert charge.failure_code == "parameter_invalid" and str(charge.status) == "failed"

    gateway = ScriptedGateway(
        authorize=[GatewayRefused(403, "service_not_allowed", "No.")] * 3,
        status=[PaymentNotFound("x")] * 2,
    )
    other = harness.request_charge(platform, "mer_A", 501)
    assert _run(_worker(platform, gateway), platform) == ["retry", "retry", "dead_lettered"]
    assert str(_charge(platform, other).status) == "processing"


def test_settled_charges_are_acked_without_calling_the_gateway(platform: Platform) -> None:
    """A job whose outcome is already recorded (by another worker or the API) does nothing."""
    gateway = ScriptedGateway(
        authorize=[PaymentAnswer(PaymentStatus.SUCCEEDED, "pi_3", amount_received=700)]
    )
    charge_id = harness.request_charge(platform, "mer_A", 700)
    worker = _worker(platform, gateway)
    assert _run(worker, platform) == ["succeeded"]
    job = AuthorizeCharge(
        charge_id, "mer_A", 700, "usd", True, {"type": "vault_token", "token": "tok_x"}
    )
    platform.jobs.enqueue(job.type, job.to_payload())
    assert _run(worker, platform) == ["already_settled"]
    assert gateway.calls == ["authorize"]


def test_a_refund_names_the_charges_payment_intent(platform: Platform) -> None:
    """The refund call carries the charge's PSP reference, so the gateway can link a payment
    made on the PSP's hosted page (known to it by session) to our charge id."""
    gateway = ScriptedGateway(
        authorize=[PaymentAnswer(PaymentStatus.SUCCEEDED, "pi_hosted1", amount_received=800)],
        refund=[RefundAnswer(RefundAnswerStatus.SUCCEEDED, "re_psp1", 300)],
    )
    charge_id = harness.request_charge(platform, "mer_A", 800)
    worker = _worker(platform, gateway)
    assert _run(worker, platform) == ["succeeded"]
    assert harness.request_refund(platform, charge_id, 300) is not None
    assert _run(worker, platform) == ["refund_succeeded"]
    assert gateway.refund_references == ["pi_hosted1"]


def test_workers_config_defaults_and_refusals() -> None:
    """The settlement source follows the sandbox's SFTP port; bad URLs and a lease shorter
    than a lookup plus a call are refused; production refuses local defaults."""
    base = {"FINCORE_VAR_DIR": "/srv/fc"}
    assert WorkersConfig.from_env(base).settlement_url == "file:///srv/fc/psp-sandbox/settlements"
    assert (
        WorkersConfig.from_env({**base, "FINCORE_WORKERS_PSP_SFTP_PORT": "8422"}).settlement_url
        == "sftp://fincore@127.0.0.1:8422/"
    )
    for key, value in (
        ("FINCORE_WORKERS_SETTLEMENT_URL", "ftp://x/"),
        ("FINCORE_WORKERS_ALERT_URL", "smtp://x"),
        ("FINCORE_WORKERS_JOB_VISIBILITY_TIMEOUT_S", "5"),
        ("FINCORE_WORKERS_RECONCILE_AT", "25:00"),
        ("FINCORE_WORKERS_WEBHOOK_GIVE_UP_S", "90000"),
    ):
        with pytest.raises(SettingsError):
            WorkersConfig.from_env({**base, key: value})
    with pytest.raises(SettingsError, match="development defaults"):
        WorkersConfig.from_env({**base, "FINCORE_ENV": "production"})


def test_the_local_sandbox_host_key_is_pinned_for_each_port(tmp_path: Path) -> None:
    """Local runs pin the sandbox's host key from its key file; a later run of the same var
    folder on another port pins that address too (once), and a pinned line is never
    rewritten."""
    keys = tmp_path / "psp-sandbox" / "sftp-keys"
    keys.mkdir(parents=True)
    (keys / "sftp_host_key.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey\n")
    (keys / "sftp_client_key").write_text("client key\n")
    known = tmp_path / "noncde" / "sftp_known_hosts"
    for port in ("8422", "18422", "18422"):
        env = {"FINCORE_VAR_DIR": str(tmp_path), "FINCORE_WORKERS_PSP_SFTP_PORT": port}
        settlement_source(WorkersConfig.from_env(env))
    assert known.read_text().splitlines() == [
        "[127.0.0.1]:8422 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey",
        "[127.0.0.1]:18422 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey",
    ]
    assert known.stat().st_mode & 0o777 == 0o600


def test_a_replayed_dead_letter_asks_before_sending_again(platform: Platform) -> None:
    """A dead letter replayed with a fresh attempt count still starts with a status lookup:
    its earlier attempts may have reached the PSP."""
    gateway = ScriptedGateway(
        authorize=[GatewayUnavailable("503")] * 3,
        status=[PaymentNotFound("none")] * 2
        + [PaymentAnswer(PaymentStatus.SUCCEEDED, "pi_9", amount_received=800)],
    )
    charge_id = harness.request_charge(platform, "mer_A", 800)
    worker = _worker(platform, gateway)
    assert _run(worker, platform) == ["retry", "retry", "dead_lettered"]
    assert platform.jobs.replay() == 1
    assert _run(worker, platform) == ["resolved_succeeded"]
    assert gateway.calls[-1] == "status" and gateway.calls.count("authorize") == 3
    assert str(_charge(platform, charge_id).status) == "succeeded"
