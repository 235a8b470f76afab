"""The AWS sink against moto: WORM archive settings, what the verifier reads, failing closed.

moto does not enforce COMPLIANCE against PutObjectRetention and lacks GetObjectRetention
(../shared/notes/test-peers-moto-localstripe.md B.2), so retention is read with head_object
and these tests do not claim moto proves immutability; deleting a locked version is refused.
"""

from __future__ import annotations

import io
import json
import secrets
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

from audit.app import main
from audit.bootstrap import open_audit_log, open_audit_reader
from audit.domain import AuditError, AuditUnavailable, EventType
from fincore.netutil import free_port
from tests.harness.peers import MotoServer
from tests.integration.audit.conftest import AuditEnv
from tests.integration.audit.sweep import sweep_sinks

pytestmark = pytest.mark.aws


@pytest.fixture
def aws_url(aws: MotoServer, audit_env: AuditEnv, monkeypatch: pytest.MonkeyPatch) -> str:
    bucket = f"fincore-audit-{secrets.token_hex(4)}"
    url = f"aws://{bucket}/fincore/audit?create=1"
    monkeypatch.setenv("FINCORE_AUDIT_URL", url)
    return url


def write(count: int) -> None:
    with open_audit_log("cde", "vault") as log:
        for n in range(count):
            log.record(EventType.DETOKENIZE, actor="gateway", outcome="success", target=f"tok_{n}")


def bucket_of(url: str) -> str:
    return url.split("/")[2]


def test_log_verifies_and_is_archived_under_compliance_lock(aws_url: str) -> None:
    """Segments and checkpoints land in S3 under COMPLIANCE for >= 365 days; the log verifies."""
    write(25)
    reader = open_audit_reader("cde")
    report = reader.verify()
    assert report.ok, report.issues
    assert report.records == 28  # init, start, 25, stop
    assert report.streams[0].last_checkpoint_seq == 28
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket_of(aws_url))["Contents"]]
    assert any("/segments/" in k for k in keys) and any("/checkpoints/" in k for k in keys)
    soon = datetime.now(UTC) + timedelta(days=364)
    for key in keys:
        head = s3.head_object(Bucket=bucket_of(aws_url), Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert head["ObjectLockRetainUntilDate"] > soon
    logs = boto3.client("logs")
    group = logs.describe_log_groups(logGroupNamePrefix="/fincore/audit/cde")["logGroups"][0]
    assert group["retentionInDays"] >= 365
    assert sweep_sinks([reader.sink("cde")]) == []


def test_locked_versions_cannot_be_deleted(aws_url: str) -> None:
    """DeleteObject on an archived version is AccessDenied (PCI DSS 10.3.4)."""
    write(12)
    s3 = boto3.client("s3")
    versions = s3.list_object_versions(Bucket=bucket_of(aws_url))["Versions"]
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(
            Bucket=bucket_of(aws_url), Key=versions[0]["Key"], VersionId=versions[0]["VersionId"]
        )


def test_a_version_stacked_on_a_segment_does_not_fool_the_verifier(aws_url: str) -> None:
    """Anyone with PutObject can add a newer version; the verifier reads the locked original."""
    write(12)
    s3 = boto3.client("s3")
    bucket = bucket_of(aws_url)
    key = next(
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if "/segments/" in o["Key"]
    )
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    forged = original.replace(b"tok_3", b"tok_X")
    s3.put_object(Bucket=bucket, Key=key, Body=forged)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == forged
    assert open_audit_reader("cde").verify().ok


def test_each_writer_process_has_its_own_verified_chain(aws_url: str) -> None:
    """Two writers make two streams; the CLI verifies both and records its own access."""
    write(3)
    write(4)
    out = io.StringIO()
    assert main(["verify", "--zone", "cde", "--json"], out=out) == 0
    report = json.loads(out.getvalue())
    assert len(report["streams"]) == 2
    assert sorted(s["records"] for s in report["streams"]) == [6, 7]
    records = list(open_audit_reader("cde").all_records())
    assert any(r.event_type == "audit.verify" and r.actor.id == "auditor.alice" for r in records)


def test_a_bucket_without_compliance_retention_is_refused(
    aws: MotoServer, audit_env: AuditEnv
) -> None:
    """An archive bucket not defaulting to COMPLIANCE >= 365 days is a configuration error."""
    bucket = f"weak-{secrets.token_hex(4)}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 30}},
        },
    )
    boto3.client("logs").create_log_group(logGroupName="/fincore/audit/cde")
    with pytest.raises(AuditError, match="COMPLIANCE"):
        open_audit_log("cde", "vault", url=f"aws://{bucket}/fincore/audit")


def test_short_log_group_retention_is_refused(aws: MotoServer, audit_env: AuditEnv) -> None:
    """A log group that keeps less than 365 days is refused (PCI DSS 10.5.1)."""
    logs = boto3.client("logs")
    logs.create_log_group(logGroupName="/short/cde")
    logs.put_retention_policy(logGroupName="/short/cde", retentionInDays=30)
    with pytest.raises(AuditError, match="365"):
        open_audit_log("cde", "vault", url=f"aws://b-{secrets.token_hex(3)}/short?create=1")


def test_unreachable_aws_refuses_to_open(
    audit_env: AuditEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the endpoint down the writer cannot be opened: nothing runs unaudited."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with pytest.raises(AuditUnavailable):
        open_audit_log("cde", "vault", url="aws://down/fincore/audit?create=1")


def test_losing_the_log_group_fails_closed(aws_url: str, aws: MotoServer) -> None:
    """If CloudWatch refuses the events, record() raises AuditUnavailable."""
    log = open_audit_log("cde", "vault")
    log.record(EventType.TOKENIZE, actor="ingress", outcome="success")
    aws.reset()
    with pytest.raises(AuditUnavailable):
        log.record(EventType.TOKENIZE, actor="ingress", outcome="success")
    log.close()
