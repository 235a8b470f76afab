"""checkov (3.3.30, own venv, offline) over the real Terraform, the known-bad root and fixtures."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.procs import unavailable
from tests.infra.checkov_runs import CHECKOV, FIXTURES, REAL_TARGETS, RUNS
from tests.infra.policy import TERRAFORM, skip_comments

CUSTOM_IDS = (
    "CKV_PAY_1",
    "CKV_PAY_2",
    "CKV_PAY_3",
    "CKV_PAY_4",
    "CKV_PAY_5",
    "CKV_PAY_6",
    "CKV2_PAY_1",
    "CKV2_PAY_2",
    "CKV2_PAY_3",
)

# checkov findings fixtures/known_bad must produce: (check id, resource), built-in and custom.
KNOWN_BAD_FAILURES = (
    ("CKV_AWS_24", "aws_security_group.cde_vault"),  # 0.0.0.0/0 to port 22
    ("CKV_AWS_25", "aws_security_group.cde_vault"),  # 0.0.0.0/0 to port 3389
    ("CKV_AWS_260", "aws_security_group.cde_vault"),  # 0.0.0.0/0 to port 80
    ("CKV_PAY_1", "aws_security_group.cde_vault"),  # CIDR inline ingress on a CDE group
    (
        "CKV2_PAY_1",
        "aws_vpc_security_group_ingress_rule.noncde_cidr_to_vault",
    ),  # non-CDE CIDR into the CDE
    ("CKV_PAY_2", "aws_route.shadow_into_cde"),  # shadow route through a transit gateway
    ("CKV_AWS_16", "aws_db_instance.vault"),  # unencrypted database
    ("CKV_AWS_17", "aws_db_instance.vault"),  # publicly accessible database
    ("CKV_PAY_5", "aws_db_instance.vault"),  # CDE store without a customer key
    ("CKV_AWS_36", "aws_cloudtrail.audit"),  # no log-file validation
    ("CKV_AWS_67", "aws_cloudtrail.audit"),  # single region
    ("CKV_AWS_7", "aws_kms_key.cde_pan"),  # key without rotation
    ("CKV2_PAY_3", "aws_s3_bucket.audit"),  # audit bucket without Object Lock
    ("CKV_PAY_3", "aws_s3_bucket_object_lock_configuration.lb_logs"),  # GOVERNANCE, 30 days
    ("CKV_AWS_338", "aws_cloudwatch_log_group.cde_audit"),  # a month of logs
    ("CKV_PAY_6", "aws_cognito_user_pool.staff"),  # MFA optional
    ("CKV_PAY_4", "aws_sqs_queue.jobs"),  # no pci_zone tag
    ("CKV_AWS_130", "aws_subnet.cde_app"),  # public IPs on an app subnet
    ("CKV2_AWS_12", "aws_vpc.cde"),  # default security group not restricted
    ("CKV2_AWS_11", "aws_vpc.cde"),  # no flow logs
)


@pytest.fixture(scope="module")
def checkov() -> None:
    """checkov from .venv-checkov; skips loudly here, fails under CI=true, when it is missing."""
    if not CHECKOV.exists():
        unavailable(f"checkov ({CHECKOV}; run `make checkov-install`)")
    RUNS.start()


def _results(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return list(report.get("results", {}).get(kind, []))


def _fixture_results(prefix: str) -> Iterator[dict[str, Any]]:
    report = RUNS.report(FIXTURES)
    for kind in ("passed_checks", "failed_checks"):
        for result in _results(report, kind):
            if result["file_path"].startswith(prefix):
                yield {**result, "outcome": kind}


@pytest.mark.usefixtures("checkov")
@pytest.mark.parametrize("target", REAL_TARGETS)
def test_real_code_has_no_failed_checks(target: str) -> None:
    """checkov (built-in and FinCore policies) fails nothing in each root and zone module."""
    report = RUNS.report(target)
    failed = [
        f"{r['check_id']} {r['resource']} ({r['file_path']}) {r.get('details') or ''}"
        for r in _results(report, "failed_checks")
    ]
    assert failed == []
    assert _results(report, "parsing_errors") == []
    assert len(_results(report, "passed_checks")) > 100, "checkov evaluated (almost) nothing"


@pytest.mark.usefixtures("checkov")
def test_every_module_is_checked() -> None:
    """Every module directory has resources checkov evaluated, through a root or zone module."""
    seen = set()
    for target in REAL_TARGETS:
        for kind in ("passed_checks", "skipped_checks"):
            for result in _results(RUNS.report(target), kind):
                parts = result["file_abs_path"].split("/modules/")
                if len(parts) == 2:
                    seen.add(parts[1].split("/")[0])
    modules = {
        path.name
        for path in (TERRAFORM / "modules").iterdir()
        if path.is_dir() and any(path.glob("*.tf"))
    }
    assert (
        modules - {"platform"} <= seen
    )  # platform only wires modules together: no resources of its own


@pytest.mark.usefixtures("checkov")
def test_custom_policies_evaluate_the_real_code() -> None:
    """The FinCore policies that apply to the real code ran on it (loaded and matched)."""
    ran = {
        r["check_id"]
        for target in ("envs/prod", "modules/cde")
        for r in _results(RUNS.report(target), "passed_checks")
    }
    # CKV_PAY_3 reads a variable checkov leaves unrendered in the real code (the policy test covers
    # it), and CKV2_PAY_2 is for the legacy rule resource the code does not use.
    assert {
        "CKV_PAY_1",
        "CKV_PAY_2",
        "CKV_PAY_4",
        "CKV_PAY_5",
        "CKV_PAY_6",
        "CKV2_PAY_1",
        "CKV2_PAY_3",
    } <= ran


@pytest.mark.usefixtures("checkov")
@pytest.mark.parametrize(("check_id", "resource"), KNOWN_BAD_FAILURES)
def test_known_bad_root_fails(check_id: str, resource: str) -> None:
    """checkov reports the named defect of fixtures/known_bad."""
    failed = {
        (r["check_id"], r["resource"])
        for r in _fixture_results("/known_bad/")
        if r["outcome"] == "failed_checks"
    }
    assert (check_id, resource) in failed


@pytest.mark.usefixtures("checkov")
@pytest.mark.parametrize("check_id", CUSTOM_IDS)
def test_custom_policy_fixtures(check_id: str) -> None:
    """Each FinCore policy passes all of its good fixture and fails all of its bad fixture."""
    outcomes: dict[str, set[tuple[str, str]]] = {"good": set(), "bad": set()}
    for side in outcomes:
        for result in _fixture_results(f"/checkov/{check_id}/{side}/"):
            if result["check_id"] == check_id:
                outcomes[side].add((result["outcome"], result["resource"]))
    assert outcomes["good"] and all(
        outcome == "passed_checks" for outcome, _ in outcomes["good"]
    ), outcomes["good"]
    assert outcomes["bad"] and all(outcome == "failed_checks" for outcome, _ in outcomes["bad"]), (
        outcomes["bad"]
    )


@pytest.mark.usefixtures("checkov")
def test_every_inline_skip_is_used_and_justified() -> None:
    """Each checkov:skip suppresses a real finding, and its reason reaches the report."""
    skipped = {
        (r["check_id"], (r["check_result"].get("suppress_comment") or "").strip())
        for target in REAL_TARGETS
        for r in _results(RUNS.report(target), "skipped_checks")
    }
    directories = [
        TERRAFORM / "envs" / "prod",
        TERRAFORM / "envs" / "dev",
        *sorted(p for p in (TERRAFORM / "modules").iterdir() if p.is_dir()),
    ]
    comments = skip_comments(directories)
    assert comments, "no inline skips found: the scan of comments is broken"
    unused = [
        f"{f.relative_to(TERRAFORM)}:{line} {check_id}"
        for f, line, check_id, why in comments
        if (check_id, why) not in skipped
    ]
    assert unused == []
    assert all(len(why) >= 30 for _, why in skipped), (
        "a skip without a justification reached the report"
    )


@pytest.mark.usefixtures("checkov")
def test_pci_mapping_cites_checks_that_ran() -> None:
    """Every checkov id PCI_MAPPING.md cites ran on the real code or on the known-bad root."""
    ran = {
        r["check_id"]
        for target in REAL_TARGETS
        for kind in ("passed_checks", "skipped_checks")
        for r in _results(RUNS.report(target), kind)
    }
    ran |= {r["check_id"] for r in _fixture_results("/")}
    cited = set()
    text = (TERRAFORM / "PCI_MAPPING.md").read_text(encoding="utf-8")
    for match in re.finditer(r"(CKV2?_(?:AWS|PAY)_)(\d+)(?:[–-](\d+))?", text):
        first, last = int(match.group(2)), int(match.group(3) or match.group(2))
        cited |= {f"{match.group(1)}{n}" for n in range(first, last + 1)}
    assert len(cited) > 40
    assert sorted(cited - ran) == []
