"""The approved-flows file: it validates, it renders the Terraform, and its design rules hold."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.infra.policy import TERRAFORM, flowsfile, render_flows

FLOWS_FILE = TERRAFORM / "approved-flows.yaml"


def _raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(FLOWS_FILE.read_text(encoding="utf-8"))
    return data


def test_generated_terraform_is_current(flows: Any) -> None:
    """modules/network/flows.generated.tf is exactly what the renderer makes of the file."""
    assert render_flows.OUTPUT.read_text(encoding="utf-8") == render_flows.render(flows)


def test_renderer_check_mode_reports_current() -> None:
    """`render_flows.py --check` exits 0 on the committed tree (the command the docs give)."""
    result = subprocess.run(
        [sys.executable, str(TERRAFORM / "tools" / "render_flows.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_terraform_files_are_formatted() -> None:
    """Every .tf file has its attribute runs aligned (tools/hclfmt.py --check finds nothing)."""
    result = subprocess.run(
        [sys.executable, str(TERRAFORM / "tools" / "hclfmt.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def _mutate(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(_raw())
    target: Any = data
    keys = path.split("/")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    if value is _DELETE:
        del target[int(last) if last.isdigit() else last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("flows/1/id", "FLOW-001", "duplicate id"),
        ("flows/0/destination", "cde.nowhere", "unknown endpoint"),
        ("flows/0/port", 70000, "port 1-65535"),
        ("flows/0/protocol", "icmp", "protocol must be one of"),
        ("flows/0/approval", _DELETE, "approval id is required"),
        ("flows/0/purpose", "  ", "purpose is required"),
        ("flows/0/destination", "psp.sftp", "at least one end must be a security group"),
        ("flows/0/source", "psp.api", "cannot be a source"),
        ("flows/0/capture", "an unquoted comma split the purpose", "unknown keys"),
        ("zones/cde/tiers/app", "10.10.0.0/24", "overlap"),
        ("zones/cde/tiers/app", "10.30.0.0/22", "outside"),
        ("zones/noncde/cidr", "10.0.0.0/8", "zones cde and noncde overlap"),
        ("endpoints/cde.vault/zone", "connected", "everything in the CDE VPC is pci_zone cde"),
        ("cross_zone_path/routes/0/to", "noncde.app", "stays inside one zone"),
        ("cross_zone_path/routes/0/to", "cde.nowhere", "unknown tier"),
    ],
)
def test_invalid_files_are_refused(path: str, value: Any, message: str) -> None:
    """A malformed or inconsistent flows file is refused with a message saying what is wrong."""
    with pytest.raises(flowsfile.FlowsFileError, match=message):
        flowsfile.parse(_mutate(path, value))


def test_a_flow_added_to_the_file_changes_the_rendered_rules() -> None:
    """Adding a flow to the file adds its ingress and egress rules to the rendered Terraform."""
    data = _raw()
    data["flows"].append(
        {
            "id": "FLOW-999",
            "source": "noncde.workers",
            "destination": "noncde.api",
            "port": 8200,
            "protocol": "tcp",
            "purpose": "test",
            "approval": "SEC-TEST",
        }
    )
    text = render_flows.render(flowsfile.parse(data))
    assert 'resource "aws_vpc_security_group_ingress_rule" "flow_999"' in text
    assert 'resource "aws_vpc_security_group_egress_rule" "flow_999"' in text
    assert text != render_flows.OUTPUT.read_text(encoding="utf-8")


def test_cross_zone_flows_end_at_internal_listeners(flows: Any) -> None:
    """Every flow between the VPCs ends at the other zone's internal load balancer, not a task."""
    crossing = [
        f
        for f in flows.flows
        if flows.is_endpoint(f.source)
        and flows.is_endpoint(f.destination)
        and flows.endpoints[f.source].vpc != flows.endpoints[f.destination].vpc
    ]
    assert crossing, "the platform needs its cross-zone flows"
    assert [f.id for f in crossing if not f.destination.endswith(".internal_alb")] == []
    into_cde = {f.source for f in crossing if f.destination.startswith("cde.")}
    assert into_cde == {"noncde.api", "noncde.workers"}


def test_cde_reaches_the_internet_only_by_domain(flows: Any) -> None:
    """Every CDE flow to the internet goes to a destination with a domain allow-list."""
    open_egress = [
        f.id
        for f in flows.flows
        if f.source in flows.endpoints
        and flows.endpoints[f.source].vpc == "cde"
        and f.destination in flows.externals
        and flows.externals[f.destination].cidr is not None
        and not flows.externals[f.destination].domains
    ]
    assert open_egress == []
    assert flows.egress_domains("cde") == ("api.stripe.com",)


def test_zones_of_endpoints_follow_their_flows(flows: Any) -> None:
    """An endpoint that exchanges traffic with a CDE endpoint is itself cde or connected."""
    wrong = []
    for flow in flows.flows:
        ends = [flows.endpoints.get(flow.source), flows.endpoints.get(flow.destination)]
        if any(e is not None and e.zone == "cde" for e in ends):
            wrong += [e.name for e in ends if e is not None and e.zone == "out-of-scope"]
    assert wrong == []


def test_every_flow_is_one_port_with_a_reason(flows: Any) -> None:
    """Each flow opens exactly one TCP/UDP port and carries a purpose and an approval id."""
    assert all(
        isinstance(f.port, int) and f.purpose and f.approval.startswith("SEC-") for f in flows.flows
    )
    assert len({f.id for f in flows.flows}) == len(flows.flows)
