"""noncde.workers (non-CDE): the job worker: charge authorize/capture/cancel and refund jobs
through the CDE gateway, each outcome an event on the charge stream.

Guarantees:
- At most one payment per charge, however often a job is delivered. The gateway is idempotent
  by charge id; on top of that, an attempt that follows any earlier attempt (a retry, or a
  lease taken over from a worker that died) first asks the gateway for the payment's status,
  and an `unknown` answer is resolved the same way before anything is sent again. When the
  status cannot be had, nothing is sent: the job is retried later.
- Each outcome is recorded once: events are appended with the stream's expected version, and
  only while the charge still waits for that outcome (a second worker, a re-delivery or the
  API's PSP-webhook path that recorded it first wins; the loser finds nothing to do).
- Retries follow the queue's exponential backoff with jitter; after the last attempt the job is
  dead-lettered with its reason and a `charge.dead_lettered` event is appended first (a sweep
  records the ones whose worker died on the last attempt).
- Several threads and processes lease jobs side by side; a stop request finishes the job in
  hand and releases any leased job not yet started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fincore.logs import get_logger
from noncde.api.domain import (
    AuthorizeCharge,
    CancelCharge,
    CaptureCharge,
    Charge,
    ChargeDeadLettered,
    DomainEvent,
    ExecuteRefund,
    charge_stream,
    parse_job,
)
from noncde.api.domain.ids import new_id
from noncde.platform.domain import (
    ConcurrencyConflict,
    Job,
    LeaseLost,
    NewEvent,
    RecordedEvent,
    safe_error_text,
)
from noncde.platform.ports import EventStore, JobQueue
from noncde.workers.domain.jobs import (
    MAX_REASON,
    GatewayRefused,
    GatewayUnavailable,
    GiveUp,
    PaymentAnswer,
    PaymentNotFound,
    PaymentStatus,
    Retry,
    is_settled,
    operation_of,
    payment_events,
    refund_events,
    refused_events,
)
from noncde.workers.domain.jobs import Job as ParsedJob
from noncde.workers.ports import Gateway

Observer = Callable[[str, str, float], None]


def _ignore(_kind: str, _outcome: str, _seconds: float) -> None:
    return None


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    worker_id: str
    max_attempts: int
    visibility_timeout_s: float = 60.0
    gateway_timeout_s: float = 15.0
    poll_s: float = 0.2
    dead_letter_sweep_s: float = 60.0


class JobWorker:
    """Leases jobs and carries them out through the gateway (see the module docstring)."""

    def __init__(
        self,
        jobs: JobQueue,
        events: EventStore,
        gateway: Gateway,
        settings: WorkerSettings,
        *,
        observe: Observer = _ignore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = jobs
        self.events = events
        self.gateway = gateway
        self.settings = settings
        self.observe = observe
        self.clock = clock
        self.log = get_logger("workers.jobs")

    # ------------------------------------------------------------ loop

    def run(self, stop: threading.Event, *, name: str | None = None) -> None:
        """Lease and handle jobs until `stop` is set (one job at a time per thread)."""
        worker_id = name or self.settings.worker_id
        failures = 0
        while not stop.is_set():
            try:
                leased = self.jobs.lease(
                    worker_id, n=1, visibility_timeout_s=self.settings.visibility_timeout_s
                )
                failures = 0
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not end the loop
                failures += 1
                self.log.warning("lease failed", error=type(exc).__name__, failures=failures)
                stop.wait(min(30.0, self.settings.poll_s * 2**failures))
                continue
            if not leased:
                stop.wait(self.settings.poll_s)
                continue
            if stop.is_set():
                self.release(leased)
                return
            for job in leased:
                self.handle(job)

    def release(self, jobs: Sequence[Job]) -> None:
        """Give leased, unstarted jobs back at once (graceful shutdown)."""
        for job in jobs:
            try:
                self.jobs.extend(job, 0)
            except Exception as exc:  # noqa: BLE001 - the lease expires by itself anyway
                self.log.warning("release failed", job_id=job.id, error=type(exc).__name__)

    def run_once(self, worker_id: str | None = None) -> int:
        """Lease and handle at most one job; returns 1 if a job was handled (tests, CLI)."""
        leased = self.jobs.lease(
            worker_id or self.settings.worker_id,
            n=1,
            visibility_timeout_s=self.settings.visibility_timeout_s,
        )
        for job in leased:
            self.handle(job)
        return len(leased)

    # ------------------------------------------------------------ one job

    def handle(self, job: Job) -> str:
        """Carry out one leased job: ack it when done, nack it (retry or dead letter) when
        not. Returns what happened (for metrics and tests)."""
        started = time.perf_counter()
        parsed = None
        try:
            parsed = parse_job(job.type, job.payload)
            if parsed is None:
                raise GiveUp(f"unknown job type {job.type!r}")
            outcome = self._process(job, parsed)
        except LeaseLost:
            outcome = "lease_lost"
        except (Retry, GiveUp, GatewayUnavailable, GatewayRefused) as exc:
            outcome = self._fail(job, parsed, str(exc))
        except Exception as exc:  # noqa: BLE001 - any other failure is retried, then dead-lettered
            outcome = self._fail(job, parsed, safe_error_text(exc))
        else:
            try:
                self.jobs.ack(job)
            except LeaseLost:
                # Our lease ran out and another worker holds the job: it will find the
                # outcome recorded and ack it.
                outcome = "lease_lost"
        self.observe(job.type, outcome, time.perf_counter() - started)
        return outcome

    def _fail(self, job: Job, parsed: ParsedJob | None, reason: str) -> str:
        reason = reason[:MAX_REASON]
        last = job.attempts >= self.settings.max_attempts
        if last and parsed is not None:
            try:
                self._record_dead_letter(parsed, job.id, reason)
            except Exception as exc:  # noqa: BLE001 - the sweep records it later
                self.log.warning(
                    "could not record dead letter", job_id=job.id, error=type(exc).__name__
                )
        try:
            result = self.jobs.nack(job, reason)
        except LeaseLost:
            return "lease_lost"
        self.log.info(
            "job attempt failed",
            job_id=job.id,
            job_type=job.type,
            attempt=job.attempts,
            dead_lettered=result.dead_lettered,
            reason=reason,
        )
        return "dead_lettered" if result.dead_lettered else "retry"

    def _process(self, job: Job, parsed: ParsedJob) -> str:
        charge = self._charge(parsed.charge_id)
        if charge is None:
            raise GiveUp(f"charge {parsed.charge_id} does not exist")
        if is_settled(parsed, charge):
            return "already_settled"
        if isinstance(parsed, ExecuteRefund):
            return self._refund(job, parsed)
        if job.attempts > 1 or job.last_error:
            # An earlier attempt may have reached the PSP (a retry, a lease taken over from a
            # dead worker, or a dead letter replayed with a fresh count but its last error):
            # learn what happened before sending anything again (no retry can pay twice).
            done = self._resolve(job, parsed, before_call=True)
            if done is not None:
                return done
        self._heartbeat(job)
        try:
            answer = self._call(parsed)
        except GatewayRefused as refused:
            # A definite refusal is the outcome (an authorization refused charged nothing);
            # one that needs an operator (401/403/409) is retried, then dead-lettered.
            if not refused.needs_operator and self._record(
                job, parsed.charge_id, _refusal(parsed, refused)
            ):
                return "refused"
            raise
        self.observe(f"gateway.{operation_of(parsed)}", str(answer.status), 0.0)
        if self._record(job, parsed.charge_id, lambda c: payment_events(parsed, c, answer)):
            return str(answer.status)
        if answer.status is PaymentStatus.UNKNOWN or not self._settled_now(parsed):
            done = self._resolve(job, parsed, before_call=False)
            if done is not None:
                return done
            raise Retry(f"{operation_of(parsed)} outcome unknown; the status will be asked again")
        return "already_settled"

    def _call(self, parsed: AuthorizeCharge | CaptureCharge | CancelCharge) -> PaymentAnswer:
        if isinstance(parsed, AuthorizeCharge):
            return self.gateway.authorize(parsed)
        if isinstance(parsed, CaptureCharge):
            return self.gateway.capture(parsed)
        return self.gateway.cancel(parsed)

    def _resolve(
        self, job: Job, parsed: AuthorizeCharge | CaptureCharge | CancelCharge, *, before_call: bool
    ) -> str | None:
        """Ask the gateway for the payment's status and record it if it is the outcome.

        Returns what was recorded, None when the caller may (still) send its request.
        Raises `Retry` when the status cannot be had or is not final: nothing is sent then.
        """
        try:
            answer = self.gateway.payment_status(parsed.charge_id)
        except PaymentNotFound:
            if isinstance(parsed, AuthorizeCharge):
                # Nothing was charged: sending the authorization (again) is safe.
                self.observe("gateway.status", "not_found", 0.0)
                return None
            raise Retry("the gateway knows no payment for this charge yet") from None
        except GatewayUnavailable as exc:
            raise Retry(f"status lookup failed ({exc}); nothing was sent") from None
        self.observe("gateway.status", str(answer.status), 0.0)
        if self._record(job, parsed.charge_id, lambda c: payment_events(parsed, c, answer)):
            return f"resolved_{answer.status}"
        if self._settled_now(parsed):
            return "already_settled"
        if answer.status is PaymentStatus.UNKNOWN:
            raise Retry("the PSP's answer is still unknown; nothing was sent")
        if before_call:
            return None  # e.g. authorized, capture not done yet: send the capture
        raise Retry(f"{operation_of(parsed)} not final yet (status {answer.status})")

    def _refund(self, job: Job, parsed: ExecuteRefund) -> str:
        # POST /v1/refunds is idempotent by refund id at the gateway (it resolves an unknown
        # refund with the PSP under the same Idempotency-Key): repeating it is the lookup.
        self._heartbeat(job)
        charge = self._charge(parsed.charge_id)
        # A hosted-page payment is known to the gateway by its session: name its PaymentIntent.
        reference = charge.psp_reference if charge is not None else None
        try:
            answer = self.gateway.refund(parsed, reference)
        except GatewayRefused as refused:
            if not refused.needs_operator and self._record(
                job, parsed.charge_id, _refusal(parsed, refused)
            ):
                return "refund_refused"
            raise
        self.observe("gateway.refund", str(answer.status), 0.0)
        if self._record(job, parsed.charge_id, lambda c: refund_events(parsed, c, answer)):
            return f"refund_{answer.status}"
        if self._settled_now(parsed):
            return "already_settled"
        raise Retry(f"refund {answer.status}; it will be asked again")

    # ------------------------------------------------------------ events

    def _read(self, charge_id: str) -> tuple[Charge | None, list[RecordedEvent]]:
        stream = self.events.read_stream(charge_stream(charge_id))
        return Charge.fold(stream), stream

    def _charge(self, charge_id: str) -> Charge | None:
        return self._read(charge_id)[0]

    def _settled_now(self, parsed: ParsedJob) -> bool:
        charge = self._charge(parsed.charge_id)
        return charge is not None and is_settled(parsed, charge)

    def _record(
        self,
        job: Job | None,
        charge_id: str,
        decide: Callable[[Charge], list[DomainEvent]],
    ) -> bool:
        """Append what `decide` says for the charge as it is now; re-read and decide again on
        a concurrent append. True when something was appended."""
        for _attempt in range(8):
            charge, stream = self._read(charge_id)
            if charge is None:
                return False
            decided = decide(charge)
            if not decided:
                return False
            first = stream[0]
            try:
                self.events.append(
                    charge_stream(charge_id),
                    [
                        NewEvent(
                            type=event.type,
                            data=event.to_data(),
                            merchant_id=first.merchant_id,
                            correlation_id=first.correlation_id,
                            causation_id=job.id if job is not None else None,
                            id=new_id("evt"),
                        )
                        for event in decided
                    ],
                    expected_version=stream[-1].version,
                )
            except ConcurrencyConflict:
                continue
            return True
        raise Retry("the charge stream kept changing; trying again later")

    def _record_dead_letter(self, parsed: ParsedJob, job_id: str, reason: str) -> bool:
        operation = operation_of(parsed)

        def decide(charge: Charge) -> list[DomainEvent]:
            current = charge.dead_letter or {}
            if current.get("job_id") == job_id and current.get("reason") == reason:
                return []
            return [ChargeDeadLettered(charge.id, job_id, operation, reason)]

        return self._record(None, parsed.charge_id, decide)

    def sweep_dead_letters(self, limit: int = 500) -> int:
        """Record `charge.dead_lettered` for dead letters that lack one (their worker died on
        the last attempt, so the queue dead-lettered them on its own). Returns how many."""
        recorded = 0
        for letter in self.jobs.dead_letters(limit):
            parsed = parse_job(letter.type, letter.payload)
            if parsed is None:
                continue
            charge = self._charge(parsed.charge_id)
            if charge is None:
                continue
            if charge.dead_letter and charge.dead_letter.get("job_id") == letter.job_id:
                continue
            reason = (letter.last_error or "dead-lettered")[:MAX_REASON]
            if self._record_dead_letter(parsed, letter.job_id, reason):
                recorded += 1
        return recorded

    def _heartbeat(self, job: Job) -> None:
        """Keep the lease long enough for the coming gateway call (and its lookup)."""
        remaining = job.lease.expires_at.timestamp() - self.clock()
        if remaining < 3 * self.settings.gateway_timeout_s:
            self.jobs.extend(
                job,
                max(self.settings.visibility_timeout_s, 3 * self.settings.gateway_timeout_s),
            )


def _refusal(parsed: ParsedJob, refused: GatewayRefused) -> Callable[[Charge], list[DomainEvent]]:
    return lambda charge: refused_events(parsed, charge, refused)
