"""Non-CDE platform adapters, AWS SQS: the job queue at scale (`sqs://<name>.fifo`).

Why a FIFO queue: its MessageDeduplicationId lets the broker drop a message published twice
within 5 minutes, which is exactly the outbox relay's crash window (published, crashed before
recording it). Every message's deduplication id is the job id (derived from the caller's
dedup id when there is one) and its group id is the job id too, so groups never block each
other and there is no head-of-line ordering between jobs. Beyond the window, consumers still
see the same job id and dedup on it (every handler is idempotent).

FIFO queues have no per-message delay: a delayed job carries `not_before` and is deferred with
a visibility change when it is received early (the outbox relay instead publishes delayed jobs
only when due). Attempts are SQS's ApproximateReceiveCount minus that one early receive.
Retries use ChangeMessageVisibility (backoff with jitter). When a nack exhausts the attempts,
the job is sent to the DLQ with its last error and deleted; the queue's RedrivePolicy
(maxReceiveCount = max_attempts + 2) is the backstop for workers that die on a job every time.
Replay moves dead letters back by hand: moto does not implement StartMessageMoveTask.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fincore.ids import random_token
from noncde.platform.adapters.aws import aws_client, aws_errors, error_code, url_name, wants_create
from noncde.platform.domain import (
    JSON,
    BackendUnavailable,
    Clock,
    DeadLetter,
    InvalidArgument,
    Job,
    Lease,
    LeaseLost,
    NackOutcome,
    NewJob,
    OutboxMessage,
    QueueCounts,
    RetryPolicy,
    check_delay,
    check_ref,
    dump_json,
    from_micros,
    job_message_body,
    load_json,
    safe_error_text,
    to_micros,
)

_RECEIVE_ATTRIBUTES = ["ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp"]
_INVALID_HANDLE = {"ReceiptHandleIsInvalid", "InvalidParameterValue", "MessageNotInflight"}
_EXPIRED_LEASE = "lease expired without ack or nack (the worker stopped)"


def _ceil_s(seconds: float) -> int:
    return max(0, min(43_200, math.ceil(seconds)))


class SqsJobQueue:
    """JobQueue on an SQS FIFO queue with a FIFO dead-letter queue."""

    def __init__(
        self,
        client: Any,
        queue_url: str,
        dlq_url: str,
        policy: RetryPolicy | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.dlq_url = dlq_url
        self.policy = policy or RetryPolicy()
        self.clock = clock

    # ------------------------------------------------------------ construction

    @classmethod
    def from_url(cls, url: str, policy: RetryPolicy | None = None) -> SqsJobQueue:
        """`sqs://<name>.fifo[?create=1][&region=…][&endpoint=…]`."""
        client = aws_client("sqs", url)
        name = url_name(url)
        if wants_create(url):
            queue_url, dlq_url = ensure_queues(client, name, policy or RetryPolicy())
            return cls(client, queue_url, dlq_url, policy)
        with aws_errors():
            queue_url = client.get_queue_url(QueueName=name)["QueueUrl"]
            attributes = client.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]
            )["Attributes"]
        if "RedrivePolicy" not in attributes:
            raise InvalidArgument(f"SQS queue {name} has no RedrivePolicy (a DLQ is required)")
        dlq_name = load_json(attributes["RedrivePolicy"])["deadLetterTargetArn"].split(":")[-1]
        with aws_errors():
            dlq_url = client.get_queue_url(QueueName=dlq_name)["QueueUrl"]
        return cls(client, queue_url, dlq_url, policy)

    # ------------------------------------------------------------ producing

    def enqueue(
        self,
        job_type: str,
        payload: JSON,
        *,
        delay_s: float = 0.0,
        dedup_id: str | None = None,
    ) -> str:
        job = NewJob(job_type, payload, delay_s, dedup_id)
        job_id, _ = job.prepared()
        now = to_micros(self.clock())
        not_before = now + to_micros(job.delay_s) if job.delay_s > 0 else None
        with aws_errors():
            self.client.send_message(
                QueueUrl=self.queue_url,
                MessageBody=job_message_body(job_id, job, now, not_before),
                MessageGroupId=job_id,
                MessageDeduplicationId=job_id,
            )
        return job_id

    def publish(self, messages: Sequence[OutboxMessage]) -> list[str]:
        """The outbox relay's publisher: a batch send; returns the accepted message ids."""
        accepted: list[str] = []
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            with aws_errors():
                answer = self.client.send_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {
                            "Id": str(index),
                            "MessageBody": message.body,
                            "MessageGroupId": message.message_id,
                            "MessageDeduplicationId": message.message_id,
                        }
                        for index, message in enumerate(chunk)
                    ],
                )
            accepted.extend(chunk[int(ok["Id"])].message_id for ok in answer.get("Successful", []))
        return accepted

    # ------------------------------------------------------------ consuming

    def lease(self, worker_id: str, n: int = 1, visibility_timeout_s: float = 30.0) -> list[Job]:
        check_ref("worker_id", worker_id)
        check_delay("visibility_timeout_s", visibility_timeout_s)
        visibility = max(1, _ceil_s(visibility_timeout_s))
        leased: list[Job] = []
        for _round in range(n // 10 + 3):
            if len(leased) >= n:
                break
            with aws_errors():
                answer = self.client.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=min(10, n - len(leased)),
                    VisibilityTimeout=visibility,
                    AttributeNames=_RECEIVE_ATTRIBUTES,
                    WaitTimeSeconds=0,
                )
            messages = answer.get("Messages", [])
            if not messages:
                break
            expires_at = from_micros(to_micros(self.clock() + visibility))
            for message in messages:
                job = self._accept(message, worker_id, expires_at)
                if job is not None:
                    leased.append(job)
        return leased

    def _accept(self, message: dict[str, Any], worker_id: str, expires_at: Any) -> Job | None:
        body = load_json(message["Body"])
        handle = message["ReceiptHandle"]
        attributes = message.get("Attributes", {})
        now = to_micros(self.clock())
        not_before = body.get("not_before")
        if not_before is not None and now < not_before:
            with aws_errors():
                self.client.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=handle,
                    VisibilityTimeout=max(1, _ceil_s((not_before - now) / 1_000_000)),
                )
            return None
        first_receive_us = int(attributes.get("ApproximateFirstReceiveTimestamp", "0")) * 1000
        early = 1 if not_before is not None and first_receive_us < not_before else 0
        attempts = int(attributes.get("ApproximateReceiveCount", "1")) - early
        if attempts > self.policy.max_attempts:
            with aws_errors():
                self._dead_letter(body, handle, attempts - 1, _EXPIRED_LEASE)
            return None
        return Job(
            id=body["id"],
            type=body["type"],
            payload=body["payload"],
            attempts=attempts,
            enqueued_at=from_micros(int(body["enqueued_at"])),
            lease=Lease(worker_id, handle, expires_at),
            last_error=None,
        )

    def ack(self, job: Job) -> None:
        with _lease_errors(job):
            self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=job.lease.handle)

    def nack(self, job: Job, error: str | BaseException) -> NackOutcome:
        text = safe_error_text(error)
        if self.policy.exhausted(job.attempts):
            body = {
                "id": job.id,
                "type": job.type,
                "payload": dict(job.payload),
                "enqueued_at": to_micros(job.enqueued_at.timestamp()),
            }
            with _lease_errors(job):
                self._dead_letter(body, job.lease.handle, job.attempts, text)
            return NackOutcome(dead_lettered=True)
        delay = _ceil_s(self.policy.backoff_s(job.attempts))
        with _lease_errors(job):
            self.client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=job.lease.handle, VisibilityTimeout=delay
            )
        return NackOutcome(False, from_micros(to_micros(self.clock() + delay)))

    def _dead_letter(self, body: dict[str, Any], handle: str, attempts: int, error: str) -> None:
        """Send to the DLQ with the last error, then delete from the queue. A crash between the
        two leaves the job in both; the next delivery dead-letters it again (same dedup id)."""
        dead: dict[str, Any] = {
            k: body[k] for k in ("id", "type", "payload", "enqueued_at") if k in body
        }
        dead.update(attempts=attempts, last_error=error, dead_at=to_micros(self.clock()))
        with aws_errors():
            self.client.send_message(
                QueueUrl=self.dlq_url,
                MessageBody=dump_json(dead),
                MessageGroupId=body["id"],
                MessageDeduplicationId=f"{body['id']}:dead:{attempts}",
            )
        self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=handle)

    def extend(self, job: Job, visibility_timeout_s: float) -> Job:
        check_delay("visibility_timeout_s", visibility_timeout_s)
        seconds = max(1, _ceil_s(visibility_timeout_s))
        with _lease_errors(job):
            self.client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=job.lease.handle, VisibilityTimeout=seconds
            )
        lease = Lease(
            job.lease.worker_id, job.lease.handle, from_micros(to_micros(self.clock() + seconds))
        )
        return Job(
            job.id, job.type, job.payload, job.attempts, job.enqueued_at, lease, job.last_error
        )

    # ------------------------------------------------------------ dead letters

    def _drain_dlq(self, limit: int) -> list[dict[str, Any]]:
        """Receive up to `limit` DLQ messages, hidden for 60 s while the caller works."""
        found: list[dict[str, Any]] = []
        while len(found) < limit:
            with aws_errors():
                answer = self.client.receive_message(
                    QueueUrl=self.dlq_url,
                    MaxNumberOfMessages=min(10, limit - len(found)),
                    VisibilityTimeout=60,
                    AttributeNames=["SentTimestamp"],
                    WaitTimeSeconds=0,
                )
            messages = answer.get("Messages", [])
            if not messages:
                break
            found.extend(messages)
        return found

    def _put_back(self, messages: Sequence[dict[str, Any]]) -> None:
        for message in messages:
            with aws_errors():
                self.client.change_message_visibility(
                    QueueUrl=self.dlq_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=0,
                )

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        messages = self._drain_dlq(limit)
        self._put_back(messages)
        letters = []
        for message in messages:
            body = load_json(message["Body"])
            dead_at = body.get("dead_at")
            letters.append(
                DeadLetter(
                    job_id=body["id"],
                    type=body["type"],
                    payload=body["payload"],
                    attempts=int(body.get("attempts", self.policy.max_attempts)),
                    last_error=body.get("last_error"),
                    dead_at=None if dead_at is None else from_micros(int(dead_at)),
                )
            )
        letters.sort(key=lambda d: d.dead_at.timestamp() if d.dead_at else 0.0, reverse=True)
        return letters

    def replay(self, job_ids: Sequence[str] | None = None) -> int:
        wanted = None if job_ids is None else set(job_ids)
        if wanted is not None and not wanted:
            return 0
        messages = self._drain_dlq(10_000)
        keep: list[dict[str, Any]] = []
        replayed = 0
        for message in messages:
            body = load_json(message["Body"])
            if wanted is not None and body["id"] not in wanted:
                keep.append(message)
                continue
            fresh = {key: body[key] for key in ("id", "type", "payload", "enqueued_at")}
            with aws_errors():
                self.client.send_message(
                    QueueUrl=self.queue_url,
                    MessageBody=dump_json(fresh),
                    MessageGroupId=body["id"],
                    # A replay is a new delivery of the same job: a fresh dedup id, same job id.
                    MessageDeduplicationId=f"{body['id']}:replay:{random_token(8)}",
                )
                self.client.delete_message(
                    QueueUrl=self.dlq_url, ReceiptHandle=message["ReceiptHandle"]
                )
            replayed += 1
        self._put_back(keep)
        return replayed

    def counts(self) -> QueueCounts:
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        with aws_errors():
            main = self.client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)
            dead = self.client.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=names)
        m, d = main["Attributes"], dead["Attributes"]
        return QueueCounts(
            ready=int(m.get(names[0], 0)),
            in_flight=int(m.get(names[1], 0)),
            delayed=int(m.get(names[2], 0)),
            dead=int(d.get(names[0], 0)) + int(d.get(names[1], 0)),
        )

    def ping(self) -> bool:
        try:
            self.client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
            return True
        except (BotoCoreError, ClientError):
            return False


def ensure_queues(client: Any, name: str, policy: RetryPolicy) -> tuple[str, str]:
    """Create (or find) `<name>` and its DLQ `<base>-dlq.fifo` with the redrive policy.
    For development and tests; production queues come from Terraform."""
    if not name.endswith(".fifo"):
        raise InvalidArgument("the SQS job queue must be a FIFO queue (name ending in .fifo)")
    base = name.removesuffix(".fifo")
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    with aws_errors():
        dlq_url = client.create_queue(
            QueueName=f"{base}-dlq.fifo",
            Attributes={**fifo, "MessageRetentionPeriod": str(14 * 24 * 3600)},
        )["QueueUrl"]
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        redrive = {
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": str(policy.max_attempts + 2),
        }
        queue_url = client.create_queue(
            QueueName=name,
            Attributes={**fifo, "VisibilityTimeout": "30", "RedrivePolicy": dump_json(redrive)},
        )["QueueUrl"]
    return queue_url, dlq_url


@contextmanager
def _lease_errors(job: Job) -> Iterator[None]:
    """An invalid receipt handle means the lease is gone (LeaseLost); the rest as aws_errors."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code in _INVALID_HANDLE or "ReceiptHandle" in code:
            raise LeaseLost(job.id) from exc
        raise BackendUnavailable(f"AWS error {code or 'ClientError'}") from exc
    except BotoCoreError as exc:
        raise BackendUnavailable(f"AWS unavailable ({type(exc).__name__})") from exc
