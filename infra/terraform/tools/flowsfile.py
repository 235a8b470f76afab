"""Infrastructure (both zones): load and validate the approved-flows file (the network's source).

Used by the renderer (`render_flows.py`), the custom checkov policies and the pytest policy tests,
so all three read the file the same way. Only the standard library and PyYAML: it runs in the
project venv and in checkov's own venv.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FLOWS_FILE = Path(__file__).resolve().parents[1] / "approved-flows.yaml"
PCI_ZONES = ("cde", "connected", "out-of-scope")
PROTOCOLS = ("tcp", "udp")
_ID = re.compile(r"^FLOW-\d{3}$")
_NAME = re.compile(r"^[a-z][a-z0-9]*\.[a-z][a-z0-9_]*$")


class FlowsFileError(ValueError):
    """The approved-flows file is malformed or inconsistent; the message says where."""


@dataclass(frozen=True)
class Zone:
    """A VPC's address space and its tiers (each tier a block of per-AZ subnets)."""

    name: str
    cidr: ipaddress.IPv4Network
    tiers: dict[str, ipaddress.IPv4Network]


@dataclass(frozen=True)
class Endpoint:
    """A security group: the only thing a flow may start or end at inside a VPC."""

    name: str
    vpc: str
    zone: str
    description: str

    @property
    def resource_name(self) -> str:
        """The Terraform name of its security group (`cde.vault` -> `cde_vault`)."""
        return self.name.replace(".", "_")


@dataclass(frozen=True)
class External:
    """Something outside the security groups: a CIDR, a gateway endpoint's prefix list."""

    name: str
    cidr: str | None
    prefix_list: str | None
    domains: tuple[str, ...]


@dataclass(frozen=True)
class Flow:
    """One approved flow: source -> destination on one port and protocol, with its reason."""

    id: str
    source: str
    destination: str
    port: int
    protocol: str
    purpose: str
    approval: str

    @property
    def resource_name(self) -> str:
        """The Terraform name of its rules (`FLOW-007` -> `flow_007`)."""
        return self.id.lower().replace("-", "_")


@dataclass(frozen=True)
class Route:
    """An approved route: the source tier's route tables reach the destination tier's block."""

    source_tier: str
    destination_tier: str


@dataclass(frozen=True)
class ApprovedFlows:
    """The whole file, validated."""

    zones: dict[str, Zone]
    cross_zone_routes: tuple[Route, ...]
    inspection_routes: tuple[Route, ...]
    endpoints: dict[str, Endpoint]
    externals: dict[str, External]
    flows: tuple[Flow, ...]

    def tier_block(self, qualified_tier: str) -> ipaddress.IPv4Network:
        """`cde.app` -> its address block."""
        zone, _, tier = qualified_tier.partition(".")
        return self.zones[zone].tiers[tier]

    def is_endpoint(self, name: str) -> bool:
        """Whether `name` is a security group (as opposed to an external)."""
        return name in self.endpoints

    def egress_domains(self, vpc: str) -> tuple[str, ...]:
        """Host names flows from this VPC's security groups may reach (its firewall allow-list)."""
        domains: set[str] = set()
        for flow in self.flows:
            source = self.endpoints.get(flow.source)
            external = self.externals.get(flow.destination)
            if source is not None and source.vpc == vpc and external is not None:
                domains.update(external.domains)
        return tuple(sorted(domains))

    def tier_zone(self, qualified_tier: str) -> str:
        """The pci_zone of a tier: the CDE's are cde; a non-CDE tier on the path is connected."""
        zone = qualified_tier.partition(".")[0]
        if zone == "cde":
            return "cde"
        on_path = {r.source_tier for r in self.cross_zone_routes} | {
            r.destination_tier for r in self.cross_zone_routes
        }
        return "connected" if qualified_tier in on_path else "out-of-scope"


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise FlowsFileError(message)


def _network(value: Any, where: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(str(value))
    except ValueError as exc:
        raise FlowsFileError(f"{where}: {value!r} is not an IPv4 network ({exc})") from exc


def _zones(raw: dict[str, Any]) -> dict[str, Zone]:
    zones: dict[str, Zone] = {}
    for name, body in raw.items():
        cidr = _network(body["cidr"], f"zones.{name}.cidr")
        tiers = {
            tier: _network(block, f"zones.{name}.tiers.{tier}")
            for tier, block in body["tiers"].items()
        }
        for tier, block in tiers.items():
            _require(block.subnet_of(cidr), f"zones.{name}.tiers.{tier}: {block} is outside {cidr}")
        blocks = sorted(tiers.items(), key=lambda item: item[1])
        for (tier_a, a), (tier_b, b) in itertools.pairwise(blocks):
            _require(not a.overlaps(b), f"zones.{name}: tiers {tier_a} and {tier_b} overlap")
        zones[name] = Zone(name, cidr, tiers)
    names = list(zones)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            _require(not zones[a].cidr.overlaps(zones[b].cidr), f"zones {a} and {b} overlap")
    return zones


def _routes(raw: list[dict[str, str]], zones: dict[str, Zone], where: str) -> tuple[Route, ...]:
    routes = []
    for item in raw:
        route = Route(item["from"], item["to"])
        for tier in (route.source_tier, route.destination_tier):
            zone, _, name = tier.partition(".")
            _require(zone in zones and name in zones[zone].tiers, f"{where}: unknown tier {tier!r}")
        routes.append(route)
    return tuple(routes)


def parse(data: dict[str, Any]) -> ApprovedFlows:
    """Validate the decoded YAML document and return it as typed values."""
    _require(data.get("version") == 1, "version: expected 1")
    zones = _zones(data["zones"])
    path = data["cross_zone_path"]
    _require(path.get("kind") == "vpc-peering", "cross_zone_path.kind: only vpc-peering is built")
    cross = _routes(path["routes"], zones, "cross_zone_path")
    for route in cross:
        _require(
            route.source_tier.split(".")[0] != route.destination_tier.split(".")[0],
            f"cross_zone_path: {route} stays inside one zone",
        )
    inspection = _routes(data.get("inspection_routes", []), zones, "inspection_routes")
    for route in inspection:
        _require(
            route.source_tier.split(".")[0] == route.destination_tier.split(".")[0],
            f"inspection_routes: {route} crosses zones",
        )

    endpoints: dict[str, Endpoint] = {}
    for name, body in data["endpoints"].items():
        _require(bool(_NAME.match(name)), f"endpoints.{name}: expected <vpc>.<name>")
        _require(body["vpc"] in zones, f"endpoints.{name}: unknown vpc {body['vpc']!r}")
        _require(body["zone"] in PCI_ZONES, f"endpoints.{name}: zone must be one of {PCI_ZONES}")
        _require(
            body["vpc"] != "cde" or body["zone"] == "cde",
            f"endpoints.{name}: everything in the CDE VPC is pci_zone cde",
        )
        _require(bool(body.get("description")), f"endpoints.{name}: description is required")
        endpoints[name] = Endpoint(name, body["vpc"], body["zone"], str(body["description"]))

    externals: dict[str, External] = {}
    for name, body in data["externals"].items():
        _require(name not in endpoints, f"externals.{name}: also an endpoint")
        cidr, prefix_list = body.get("cidr"), body.get("prefix_list")
        _require((cidr is None) != (prefix_list is None), f"externals.{name}: cidr xor prefix_list")
        if cidr is not None:
            _network(cidr, f"externals.{name}.cidr")
        externals[name] = External(name, cidr, prefix_list, tuple(body.get("domains", ())))

    flows: list[Flow] = []
    seen: set[str] = set()
    for index, body in enumerate(data["flows"]):
        where = f"flows[{index}]"
        unknown = set(body) - {
            "id",
            "source",
            "destination",
            "port",
            "protocol",
            "purpose",
            "approval",
        }
        _require(not unknown, f"{where}: unknown keys {sorted(unknown)} (quote text with commas)")
        flow = Flow(
            id=str(body["id"]),
            source=str(body["source"]),
            destination=str(body["destination"]),
            port=body["port"],
            protocol=str(body["protocol"]),
            purpose=str(body.get("purpose", "")),
            approval=str(body.get("approval", "")),
        )
        _require(bool(_ID.match(flow.id)), f"{where}: id must look like FLOW-001")
        _require(flow.id not in seen, f"{where}: duplicate id {flow.id}")
        seen.add(flow.id)
        _require(isinstance(flow.port, int) and 0 < flow.port < 65536, f"{flow.id}: port 1-65535")
        _require(flow.protocol in PROTOCOLS, f"{flow.id}: protocol must be one of {PROTOCOLS}")
        _require(bool(flow.purpose.strip()), f"{flow.id}: purpose is required")
        _require(bool(flow.approval.strip()), f"{flow.id}: approval id is required")
        for end in (flow.source, flow.destination):
            _require(end in endpoints or end in externals, f"{flow.id}: unknown endpoint {end!r}")
        _require(
            flow.source in endpoints or flow.destination in endpoints,
            f"{flow.id}: at least one end must be a security group",
        )
        source_ext = externals.get(flow.source)
        _require(
            source_ext is None or (source_ext.prefix_list is None and not source_ext.domains),
            f"{flow.id}: a prefix list or domain list cannot be a source",
        )
        flows.append(flow)
    keys = [(f.source, f.destination, f.port, f.protocol) for f in flows]
    _require(
        len(keys) == len(set(keys)), "flows: two flows have the same source, destination, port"
    )
    return ApprovedFlows(zones, cross, inspection, endpoints, externals, tuple(flows))


def load(path: Path = FLOWS_FILE) -> ApprovedFlows:
    """Read and validate the approved-flows file."""
    with path.open(encoding="utf-8") as handle:
        return parse(yaml.safe_load(handle))
