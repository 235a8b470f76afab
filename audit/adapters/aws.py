"""audit adapter: CloudWatch Logs for search plus an S3 Object Lock archive (`aws://...`).

URL: `aws://<bucket>/<log group prefix>?region=<region>&create=1` -> log group
`<prefix>/<zone>` (retention >= 365 days, PCI DSS 10.5.1) and, in the bucket, per stream:
`<zone>/<stream>/segments/<first>-<last>.jsonl` (sealed records) and
`<zone>/<stream>/checkpoints/<seq>.json`, all under Object Lock COMPLIANCE >= 365 days
(PCI DSS 10.3.3, 10.3.4). CloudWatch has no append lock, so each writer process owns its
stream (`<component>.<host>.<pid>.<start>.<random>`), and each stream is its own hash chain.
The endpoint comes from the standard AWS settings (`AWS_ENDPOINT_URL` points tests at moto).
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from audit.config import Durability, DurabilityPolicy
from audit.domain import (
    AuditError,
    AuditUnavailable,
    ChainTail,
    Checkpoint,
    genesis_hash,
    line_digest,
    split_lines,
)
from audit.ports import LineBuilder

MIN_RETENTION_DAYS = 365
_CW_BATCH = 1000  # events per PutLogEvents (the API allows 10,000 and 1 MiB)
_BOTO = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"})
_STREAM_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _unavailable(exc: Exception) -> AuditUnavailable:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "error")
        return AuditUnavailable(f"audit AWS sink unavailable: {code}")
    return AuditUnavailable(f"audit AWS sink unavailable: {type(exc).__name__}")


class CloudWatchS3AuditSink:
    """One zone's log in CloudWatch Logs with sealed segments in S3 (module docstring)."""

    def __init__(
        self,
        url: str,
        zone: str,
        component: str,
        durability: DurabilityPolicy,
        *,
        writer: bool = True,
    ) -> None:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if not parts.netloc:
            raise AuditError("aws audit URL needs a bucket: aws://<bucket>/<log group prefix>")
        self._bucket = parts.netloc
        self._group = f"{parts.path.rstrip('/') or '/fincore/audit'}/{zone}"
        self._zone = zone
        self._durability = durability
        self._create = query.get("create", "0") in {"1", "true", "yes"}
        session = boto3.session.Session(region_name=query.get("region"))
        self._logs = session.client("logs", config=_BOTO)
        self._s3 = session.client("s3", config=_BOTO)
        started = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"{component}.{socket.gethostname()}.{secrets.token_hex(3)}.{started}"
        self._stream = _STREAM_SAFE.sub("_", name)
        self._lock = threading.Lock()
        self._tail = ChainTail(0, genesis_hash(zone, self._stream))
        self._pending: list[bytes] = []  # appended, not yet in CloudWatch (batch mode)
        self._unsealed: list[bytes] = []  # in CloudWatch, not yet in an S3 segment
        self._first_pending = 0.0
        self._stream_created = False
        self._error: AuditUnavailable | None = None
        self._closing = False
        self._wake = threading.Condition(self._lock)
        self._flusher: threading.Thread | None = None
        self._writer = writer
        self._check_storage()

    @property
    def zone(self) -> str:
        return self._zone

    @property
    def writer_stream(self) -> str:
        return self._stream

    @property
    def log_group(self) -> str:
        return self._group

    @property
    def bucket(self) -> str:
        return self._bucket

    # ------------------------------------------------------------ set-up

    def _check_storage(self) -> None:
        """The log group keeps >= 365 days and the bucket locks objects for >= 365 days."""
        try:
            groups = self._logs.describe_log_groups(logGroupNamePrefix=self._group)["logGroups"]
            group = next((g for g in groups if g["logGroupName"] == self._group), None)
            if group is None and self._create:
                self._logs.create_log_group(logGroupName=self._group)
                self._logs.put_retention_policy(
                    logGroupName=self._group, retentionInDays=MIN_RETENTION_DAYS
                )
                group = {"retentionInDays": MIN_RETENTION_DAYS}
            if group is None:
                raise AuditError(f"CloudWatch log group {self._group} does not exist")
            retention = group.get("retentionInDays")
            if retention is not None and retention < MIN_RETENTION_DAYS:
                raise AuditError(
                    f"log group {self._group} keeps {retention} days; PCI DSS 10.5.1 needs >= 365"
                )
            try:
                lock = self._s3.get_object_lock_configuration(Bucket=self._bucket)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code != "NoSuchBucket" or not self._create:
                    raise
                self._s3.create_bucket(Bucket=self._bucket, ObjectLockEnabledForBucket=True)
                self._s3.put_object_lock_configuration(
                    Bucket=self._bucket,
                    ObjectLockConfiguration={
                        "ObjectLockEnabled": "Enabled",
                        "Rule": {
                            "DefaultRetention": {"Mode": "COMPLIANCE", "Days": MIN_RETENTION_DAYS}
                        },
                    },
                )
                lock = self._s3.get_object_lock_configuration(Bucket=self._bucket)
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc) from exc
        rule = lock.get("ObjectLockConfiguration", {}).get("Rule", {}).get("DefaultRetention", {})
        days = int(rule.get("Days") or 0) + 365 * int(rule.get("Years") or 0)
        if rule.get("Mode") != "COMPLIANCE" or days < MIN_RETENTION_DAYS:
            raise AuditError(
                f"bucket {self._bucket} must default to Object Lock COMPLIANCE for >= 365 days "
                "(PCI DSS 10.3.4, 10.5.1)"
            )

    def _create_stream_locked(self) -> None:
        # Created with the first records, so a writer that never writes leaves no empty stream.
        if not self._writer:
            raise AuditError("this AWS audit sink was opened for reading only")
        self._logs.create_log_stream(logGroupName=self._group, logStreamName=self._stream)
        self._stream_created = True

    # ------------------------------------------------------------ writing

    def append(self, build: LineBuilder) -> ChainTail:
        with self._lock:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            lines = list(build(self._tail))
            if not lines:
                return self._tail
            self._pending.extend(lines)
            if len(self._pending) == len(lines):
                self._first_pending = time.monotonic()
            new_tail = ChainTail(self._tail.seq + len(lines), line_digest(lines[-1]))
            if (
                self._durability.mode is Durability.ALWAYS
                or len(self._pending) >= self._durability.batch_records
            ):
                try:
                    self._ship_locked()
                except AuditUnavailable:
                    # Not shipped: the chain position is not taken, the caller sees the failure.
                    del self._pending[-len(lines) :]
                    raise
            else:
                self._ensure_flusher()
            self._tail = new_tail
            return new_tail

    def _ship_locked(self) -> None:
        if self._pending and not self._stream_created:
            try:
                self._create_stream_locked()
            except (BotoCoreError, ClientError) as exc:
                raise _unavailable(exc) from exc
        while self._pending:
            batch = self._pending[:_CW_BATCH]
            events = []
            for line in batch:
                record = json.loads(line)
                moment = datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00"))
                events.append(
                    {
                        "timestamp": int(moment.timestamp() * 1000),
                        "message": line.rstrip(b"\n").decode("utf-8"),
                    }
                )
            try:
                self._logs.put_log_events(
                    logGroupName=self._group, logStreamName=self._stream, logEvents=events
                )
            except (BotoCoreError, ClientError) as exc:
                raise _unavailable(exc) from exc
            del self._pending[: len(batch)]
            self._unsealed.extend(batch)

    def _ensure_flusher(self) -> None:
        if self._flusher is None or not self._flusher.is_alive():
            self._flusher = threading.Thread(
                target=self._flush_loop, name=f"audit-ship-{self._zone}", daemon=True
            )
            self._flusher.start()
        self._wake.notify()

    def _flush_loop(self) -> None:
        limit = self._durability.batch_ms / 1000
        with self._wake:
            while not self._closing:
                if not self._pending:
                    self._wake.wait()
                    continue
                remaining = self._first_pending + limit - time.monotonic()
                if remaining > 0:
                    self._wake.wait(remaining)
                    continue
                try:
                    self._ship_locked()
                except AuditUnavailable as exc:
                    # Reported to the next caller; the lines stay pending for the next attempt.
                    self._error = exc
                    self._wake.wait(limit)

    def sync(self) -> None:
        with self._lock:
            self._ship_locked()

    def put_checkpoint(self, line: bytes) -> None:
        checkpoint = Checkpoint.from_line(line)
        with self._lock:
            self._ship_locked()
            sealed = [raw for raw in self._unsealed if json.loads(raw)["seq"] <= checkpoint.seq]
            prefix = f"{self._zone}/{self._stream}"
            try:
                if sealed:
                    first, last = json.loads(sealed[0])["seq"], json.loads(sealed[-1])["seq"]
                    self._put_locked(
                        f"{prefix}/segments/{first:012d}-{last:012d}.jsonl", b"".join(sealed)
                    )
                self._put_locked(f"{prefix}/checkpoints/{checkpoint.seq:012d}.json", line)
            except (BotoCoreError, ClientError) as exc:
                raise _unavailable(exc) from exc
            del self._unsealed[: len(sealed)]

    def _put_locked(self, key: str, body: bytes) -> None:
        # Explicit COMPLIANCE retention on top of the bucket default; IfNoneMatch refuses to
        # put a second version over an archived object.
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=body,
            IfNoneMatch="*",
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=MIN_RETENTION_DAYS),
        )

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._wake.notify_all()
            if self._pending:
                self._ship_locked()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=5)

    # ------------------------------------------------------------ reading

    def streams(self) -> list[str]:
        found: set[str] = set()
        try:
            paginator = self._logs.get_paginator("describe_log_streams")
            for page in paginator.paginate(logGroupName=self._group):
                # Every stream is listed, even one that looks empty: CloudWatch updates its
                # event timestamps only eventually, and an empty stream verifies trivially.
                found.update(s["logStreamName"] for s in page.get("logStreams", []))
            s3_pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=f"{self._zone}/", Delimiter="/"
            )
            for page in s3_pages:
                for common in page.get("CommonPrefixes", []):
                    found.add(common["Prefix"][len(self._zone) + 1 :].rstrip("/"))
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc) from exc
        return sorted(found)

    def _originals(self, prefix: str) -> list[tuple[str, str]]:
        """(key, version id) of the first version of every object under `prefix`.

        An archived object cannot be deleted or shortened (Object Lock COMPLIANCE), but anyone
        with PutObject can stack a newer version on top; the verifier reads the original.
        """
        first: dict[str, tuple[str, str]] = {}
        paginator = self._s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                # Versions are listed newest first: the last one seen is the original.
                first[version["Key"]] = (version["Key"], version["VersionId"])
        return [first[key] for key in sorted(first)]

    def _get(self, key: str, version: str) -> bytes:
        body: bytes = self._s3.get_object(Bucket=self._bucket, Key=key, VersionId=version)[
            "Body"
        ].read()
        return body

    def read(self, stream: str) -> Iterator[bytes]:
        return self._read(stream)

    def _read(self, stream: str) -> Iterator[bytes]:
        sealed_up_to = 0
        try:
            for key, version in self._originals(f"{self._zone}/{stream}/segments/"):
                yield from split_lines(self._get(key, version))
                last = key.rsplit("-", 1)[-1].split(".", 1)[0]
                sealed_up_to = max(sealed_up_to, int(last))
            yield from self._cloudwatch(stream, sealed_up_to)
        except (BotoCoreError, ClientError) as exc:
            if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in {
                "ResourceNotFoundException"
            }:
                return
            raise _unavailable(exc) from exc

    def _cloudwatch(self, stream: str, after_seq: int) -> Iterator[bytes]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "logGroupName": self._group,
                "logStreamName": stream,
                "startFromHead": True,
            }
            if token:
                kwargs["nextToken"] = token
            page = self._logs.get_log_events(**kwargs)
            for event in page.get("events", []):
                line = event["message"].encode("utf-8") + b"\n"
                try:
                    seq = json.loads(line).get("seq")
                except ValueError:
                    seq = None
                if isinstance(seq, int) and seq <= after_seq:
                    continue  # already read from its sealed S3 segment
                yield line
            next_token = page.get("nextForwardToken")
            if not next_token or next_token == token:
                return
            token = next_token

    def checkpoints(self, stream: str) -> list[bytes]:
        try:
            return [
                line if line.endswith(b"\n") else line + b"\n"
                for key, version in self._originals(f"{self._zone}/{stream}/checkpoints/")
                for line in [self._get(key, version)]
            ]
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc) from exc
