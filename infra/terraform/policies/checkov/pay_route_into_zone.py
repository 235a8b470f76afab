"""Infrastructure (both zones): CKV_PAY_2, no route into a zone other than the approved path.

PCI DSS 1.3.1 / 1.3.2 / 1.4.1 / 11.4.5: a route whose destination lies in a zone's address space
(approved-flows.yaml `zones`) must be one of the approved paths: through the VPC peering connection
to a tier named in `cross_zone_path`, or through the Network Firewall to a tier named in
`inspection_routes`. A default route may use only an internet gateway, a NAT gateway or the
firewall endpoint (never a peering connection or transit gateway that could reach the CDE).
A destination that is not a literal CIDR fails closed.
"""

from __future__ import annotations

from typing import Any

from pay_common import approved_flows, as_network, first

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck

_TARGETS = (
    "gateway_id",
    "nat_gateway_id",
    "vpc_endpoint_id",
    "vpc_peering_connection_id",
    "transit_gateway_id",
    "network_interface_id",
    "egress_only_gateway_id",
    "local_gateway_id",
    "carrier_gateway_id",
    "core_network_arn",
    "instance_id",
)
_DEFAULT_ROUTE_TARGETS = {"gateway_id", "nat_gateway_id", "vpc_endpoint_id"}


def route_problem(route: dict[str, Any]) -> str | None:
    """Why this route (a dict of rendered attributes) breaks the approved path, or None."""
    if first(route.get("destination_cidr_block")) in (None, "") and first(
        route.get("cidr_block")
    ) in (None, ""):
        return None  # IPv6 or prefix-list destination: outside the zones' IPv4 plans
    raw = first(route.get("destination_cidr_block")) or first(route.get("cidr_block"))
    destination = as_network(raw)
    if destination is None:
        return f"destination {raw!r} is not a literal CIDR"
    targets = {key for key in _TARGETS if first(route.get(key)) not in (None, "")}
    if destination.prefixlen == 0:
        if not targets or not targets <= _DEFAULT_ROUTE_TARGETS:
            return f"default route through {sorted(targets)}"
        return None
    flows = approved_flows()
    if not any(destination.overlaps(zone.cidr) for zone in flows.zones.values()):
        return None
    peering = [flows.tier_block(r.destination_tier) for r in flows.cross_zone_routes]
    inspected = [flows.tier_block(r.destination_tier) for r in flows.inspection_routes]
    if targets == {"vpc_peering_connection_id"} and any(destination.subnet_of(b) for b in peering):
        return None
    if targets == {"vpc_endpoint_id"} and destination in inspected:
        return None
    return f"{destination} reaches into a zone through {sorted(targets)}, not the approved path"


class RouteIntoZoneOnlyOnApprovedPath(BaseResourceCheck):
    """CKV_PAY_2."""

    def __init__(self) -> None:
        super().__init__(
            name="Routes into the CDE or non-CDE address space use only the approved path",
            id="CKV_PAY_2",
            categories=[CheckCategories.NETWORKING],
            supported_resources=["aws_route", "aws_route_table"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        routes = [conf] if "route_table_id" in conf else []
        for block in conf.get("route", []) or []:
            for item in block if isinstance(block, list) else [block]:
                if isinstance(item, dict):
                    routes.append(item)
        for route in routes:
            problem = route_problem(route)
            if problem is not None:
                self.details.append(problem)
                return CheckResult.FAILED
        return CheckResult.PASSED


check = RouteIntoZoneOnlyOnApprovedPath()
