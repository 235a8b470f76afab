"""Infrastructure tests: FinCore's PCI policy rules, evaluated over a `tfmodel.Model`.

Every check returns a list of violations (readable strings naming the resource); an empty list
means the root complies. The tests run each check over the real roots (expecting none) and over
`fixtures/known_bad` (expecting a specific violation), so no check can pass vacuously.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.infra.tfmodel import Model, Ref, Resource, Unresolved, parse_dir

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "infra" / "terraform"
PCI_ZONES = ("cde", "connected", "out-of-scope")


def _import(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


flowsfile = _import("flowsfile", TERRAFORM / "tools" / "flowsfile.py")
render_flows = _import("render_flows", TERRAFORM / "tools" / "render_flows.py")

UNTAGGABLE = frozenset(
    line.split("#")[0].strip()
    for line in (TERRAFORM / "policies" / "untaggable-resource-types.txt").read_text().splitlines()
    if line.split("#")[0].strip()
)

Check = Callable[[Model, Any], list[str]]
CHECKS: dict[str, Check] = {}


def check(function: Check) -> Check:
    """Register a policy check under its function name."""
    CHECKS[function.__name__] = function
    return function


# ---------------------------------------------------------------- helpers


def _truthy(value: Any) -> bool:
    return value is True or value == "true"


def _first_block(resource: Resource, name: str) -> dict[str, Any]:
    blocks = resource.blocks(name)
    return blocks[0] if blocks else {}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _network(value: Any) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(str(value), strict=False)
    except ValueError:
        return None


def _endpoint(model: Model, value: Any) -> str:
    """The flow endpoint (tag flow_endpoint) of the security group a value points at."""
    groups = [
        r
        for r in model.lookup(value)
        if r.type in ("aws_security_group", "aws_default_security_group")
    ]
    if not groups:
        return f"?{value}"
    tag = groups[0].tags().get("flow_endpoint")
    return str(tag) if isinstance(tag, str) else f"?{groups[0].address}"


def _prefix_list(model: Model, value: Any) -> str:
    endpoints = [r for r in model.lookup(value) if r.type == "aws_vpc_endpoint"]
    if not endpoints:
        return f"prefix_list:?{value}"
    return "prefix_list:" + endpoints[0].name.replace("_", ".", 1)


@dataclass(frozen=True)
class RuleEnd:
    """One allowed direction of one security-group rule, normalized for comparison."""

    direction: str  # ingress | egress
    owner: str  # flow endpoint of the group the rule belongs to
    peer: str  # flow endpoint, cidr:<cidr> or prefix_list:<name>
    low: int | str
    high: int | str
    protocol: str

    def __str__(self) -> str:
        arrow = "<-" if self.direction == "ingress" else "->"
        ports = f"{self.protocol}/{self.low}-{self.high}"
        return f"{self.direction} {self.owner} {arrow} {self.peer} {ports}"


def _protocol(value: Any) -> tuple[str, bool]:
    text = str(value)
    if text in ("-1", "all"):
        return "all", True
    return {"6": "tcp", "17": "udp"}.get(text, text), False


def _rule_ends(model: Model) -> list[tuple[RuleEnd, str]]:
    """Every rule end in the model, from all four ways Terraform can express one."""
    found: list[tuple[RuleEnd, str]] = []

    def add(
        direction: str, owner: str, peers: list[str], low: Any, high: Any, protocol: Any, label: str
    ) -> None:
        name, everything = _protocol(protocol)
        ports = (0, 65535) if everything else (low, high)
        for peer in peers:
            found.append((RuleEnd(direction, owner, peer, ports[0], ports[1], name), label))

    for rule in model.of_type(
        "aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule"
    ):
        direction = "ingress" if rule.type.endswith("ingress_rule") else "egress"
        peers = []
        if "referenced_security_group_id" in rule.body:
            peers.append(_endpoint(model, rule.get("referenced_security_group_id")))
        for key in ("cidr_ipv4", "cidr_ipv6"):
            if key in rule.body:
                peers.append(f"cidr:{rule.get(key)}")
        if "prefix_list_id" in rule.body:
            peers.append(_prefix_list(model, rule.get("prefix_list_id")))
        add(
            direction,
            _endpoint(model, rule.get("security_group_id")),
            peers or ["?none"],
            rule.get("from_port"),
            rule.get("to_port"),
            rule.get("ip_protocol"),
            rule.label,
        )

    for rule in model.of_type("aws_security_group_rule"):
        peers = [
            f"cidr:{c}"
            for c in _as_list(rule.get("cidr_blocks")) + _as_list(rule.get("ipv6_cidr_blocks"))
        ]
        peers += [_prefix_list(model, p) for p in _as_list(rule.get("prefix_list_ids"))]
        if "source_security_group_id" in rule.body:
            peers.append(_endpoint(model, rule.get("source_security_group_id")))
        owner = _endpoint(model, rule.get("security_group_id"))
        if _truthy(rule.get("self")):
            peers.append(owner)
        add(
            str(rule.get("type")),
            owner,
            peers or ["?none"],
            rule.get("from_port"),
            rule.get("to_port"),
            rule.get("protocol"),
            rule.label,
        )

    for group in model.of_type("aws_security_group", "aws_default_security_group"):
        owner = str(group.tags().get("flow_endpoint", f"?{group.address}"))
        for direction in ("ingress", "egress"):
            for block in group.blocks(direction):
                peers = [
                    f"cidr:{c}"
                    for c in _as_list(block.get("cidr_blocks"))
                    + _as_list(block.get("ipv6_cidr_blocks"))
                ]
                peers += [_prefix_list(model, p) for p in _as_list(block.get("prefix_list_ids"))]
                peers += [_endpoint(model, g) for g in _as_list(block.get("security_groups"))]
                if _truthy(block.get("self")):
                    peers.append(owner)
                add(
                    direction,
                    owner,
                    peers or ["?none"],
                    block.get("from_port"),
                    block.get("to_port"),
                    block.get("protocol"),
                    f"{group.label} inline {direction}",
                )
    return found


def _peer_name(flows: Any, name: str) -> str:
    if flows.is_endpoint(name):
        return name
    external = flows.externals[name]
    return (
        f"prefix_list:{external.prefix_list}" if external.prefix_list else f"cidr:{external.cidr}"
    )


def expected_rule_ends(flows: Any) -> set[RuleEnd]:
    """Rule ends the flows file allows: ingress at SG destinations, egress at SG sources."""
    ends: set[RuleEnd] = set()
    for flow in flows.flows:
        if flows.is_endpoint(flow.destination):
            ends.add(
                RuleEnd(
                    "ingress",
                    flow.destination,
                    _peer_name(flows, flow.source),
                    flow.port,
                    flow.port,
                    flow.protocol,
                )
            )
        if flows.is_endpoint(flow.source):
            ends.add(
                RuleEnd(
                    "egress",
                    flow.source,
                    _peer_name(flows, flow.destination),
                    flow.port,
                    flow.port,
                    flow.protocol,
                )
            )
    return ends


def _route_table(model: Model, route: Resource) -> Resource | None:
    tables = [r for r in model.lookup(route.get("route_table_id")) if r.type == "aws_route_table"]
    return tables[0] if tables else None


_ROUTE_TARGETS = (
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


@dataclass
class RouteView:
    """One route, wherever it is declared, with its table's tier."""

    label: str
    tier: str | None
    destination: Any
    targets: dict[str, Any]


def _routes(model: Model) -> list[RouteView]:
    views = []
    for route in model.of_type("aws_route"):
        table = _route_table(model, route)
        tier = table.tags().get("tier") if table else None
        targets = {k: route.get(k) for k in _ROUTE_TARGETS if k in route.body}
        views.append(
            RouteView(
                route.label,
                tier if isinstance(tier, str) else None,
                route.get("destination_cidr_block"),
                targets,
            )
        )
    for table in model.of_type("aws_route_table"):
        tier = table.tags().get("tier")
        for block in table.blocks("route"):
            targets = {
                k: v for k, v in block.items() if k in _ROUTE_TARGETS and v not in (None, "")
            }
            views.append(
                RouteView(
                    f"{table.label} inline route",
                    tier if isinstance(tier, str) else None,
                    block.get("cidr_block"),
                    targets,
                )
            )
    return views


def _is_firewall_endpoint(model: Model, value: Any) -> bool:
    return _refers_to(model, value, "aws_networkfirewall_firewall")


def _refers_to(model: Model, value: Any, resource_type: str) -> bool:
    """Whether a value points at a resource of this type (addresses end in <type>.<name>)."""
    return any(ref.split(".")[-2] == resource_type for ref in model.refs_in(value))


def _policy_statements(
    model: Model, value: Any, seen: set[str] | None = None
) -> list[dict[str, Any]]:
    """Statements of the aws_iam_policy_document(s) a policy value points at (with sources)."""
    seen = seen if seen is not None else set()
    statements: list[dict[str, Any]] = []
    for document in model.lookup(value):
        if document.type != "aws_iam_policy_document" or document.label in seen:
            continue
        seen.add(document.label)
        for source in _as_list(document.get("source_policy_documents")):
            statements += _policy_statements(model, source, seen)
        statements += document.blocks("statement")
    if not model.lookup(value) and value not in (None, ""):
        statements.append({"unresolved": str(value)})
    return statements


_DECRYPT = re.compile(
    r"^(\*|kms:\*|kms:Decrypt|kms:ReEncrypt\*|kms:ReEncryptFrom|kms:CreateGrant)$"
)


def _grants_decrypt(statement: dict[str, Any]) -> bool:
    if statement.get("effect", "Allow") == "Deny":
        return False
    actions = [str(a) for a in _as_list(statement.get("actions"))]
    decrypting = [a for a in actions if _DECRYPT.match(a)]
    if decrypting == ["kms:CreateGrant"]:
        conditions = statement.get("condition", [])
        return not any(
            c.get("variable") == "kms:GrantIsForAWSResource"
            and _as_list(c.get("values")) == ["true"]
            for c in conditions
        )
    return bool(decrypting) or any(
        isinstance(a, Unresolved) for a in _as_list(statement.get("actions"))
    )


def _zone_of_principal(model: Model, principal: Any) -> str:
    roles = [r for r in model.lookup(principal) if r.type == "aws_iam_role"]
    if roles:
        return str(roles[0].tags().get("pci_zone"))
    return "unknown"


# ---------------------------------------------------------------- segmentation


@check
def flows_match_approved_file(model: Model, flows: Any) -> list[str]:
    """Every security-group rule is an approved flow, and every approved flow has its rules."""
    computed = _rule_ends(model)
    expected = expected_rule_ends(flows)
    have = {end for end, _ in computed}
    problems = [
        f"unapproved flow: {end} ({label})" for end, label in computed if end not in expected
    ]
    problems += [
        f"approved flow missing from the code: {end}" for end in sorted(expected - have, key=str)
    ]
    return problems


@check
def cde_cidr_sources_only_approved(model: Model, flows: Any) -> list[str]:
    """A CDE group admits a CIDR or prefix-list source only where an approved flow says so."""
    cde = {name for name, endpoint in flows.endpoints.items() if endpoint.zone == "cde"}
    groups = {
        str(g.tags().get("flow_endpoint"))
        for g in model.of_type("aws_security_group")
        if g.tags().get("pci_zone") == "cde"
    }
    approved = {end for end in expected_rule_ends(flows) if end.direction == "ingress"}
    problems = []
    for end, label in _rule_ends(model):
        if end.direction != "ingress" or end.owner not in cde | groups:
            continue
        outside = end.peer.startswith(("cidr:", "prefix_list:", "?")) and end.peer != "?none"
        if outside and end not in approved:
            problems.append(
                f"CDE group {end.owner} admits {end.peer} on "
                f"{end.protocol}/{end.low}-{end.high} ({label})"
            )
    return problems


@check
def security_groups_are_flow_endpoints(model: Model, flows: Any) -> list[str]:
    """Every group is a flow endpoint of the file (zone, exposure); VPC defaults allow nothing."""
    problems = []
    internet = render_flows._internet_facing(flows)
    for group in model.of_type("aws_security_group"):
        tags = group.tags()
        name = tags.get("flow_endpoint")
        if name not in flows.endpoints:
            problems.append(f"{group.label}: flow_endpoint {name!r} is not in approved-flows.yaml")
            continue
        if tags.get("pci_zone") != flows.endpoints[name].zone:
            problems.append(
                f"{group.label}: pci_zone {tags.get('pci_zone')!r}, "
                f"the file says {flows.endpoints[name].zone!r}"
            )
        if (tags.get("pci_exposure") == "internet") != (name in internet):
            problems.append(
                f"{group.label}: pci_exposure tag disagrees with the file's internet flows"
            )
        for direction in ("ingress", "egress"):
            if group.blocks(direction):
                problems.append(
                    f"{group.label}: inline {direction} rules (rules must be generated resources)"
                )
    for group in model.of_type("aws_default_security_group"):
        for direction in ("ingress", "egress"):
            if group.blocks(direction):
                problems.append(f"{group.label}: the default security group has {direction} rules")
    vpcs = model.of_type("aws_vpc")
    defaults = {
        ref
        for group in model.of_type("aws_default_security_group")
        for ref in model.refs_in(group.get("vpc_id"))
    }
    for vpc in vpcs:
        if vpc.address not in defaults:
            problems.append(f"{vpc.label}: its default security group is not managed (locked down)")
    return problems


_ATTACHMENTS = {
    "aws_ecs_service": ("network_configuration", "security_groups"),
    "aws_lb": (None, "security_groups"),
    "aws_db_instance": (None, "vpc_security_group_ids"),
    "aws_elasticache_replication_group": (None, "security_group_ids"),
    "aws_vpc_endpoint": (None, "security_group_ids"),
    "aws_lambda_function": ("vpc_config", "security_group_ids"),
    "aws_instance": (None, "vpc_security_group_ids"),
}


@check
def security_groups_attached(model: Model, flows: Any) -> list[str]:
    """Every security group is attached to a task, load balancer, database, cache or endpoint."""
    attached: set[str] = set()
    for rtype, (block, key) in _ATTACHMENTS.items():
        for resource in model.of_type(rtype):
            holders = resource.blocks(block) if block else [{key: resource.get(key)}]
            for holder in holders:
                attached.update(model.refs_in(holder.get(key)))
    return [
        f"{group.label} ({group.tags().get('flow_endpoint')}) is attached to nothing"
        for group in model.of_type("aws_security_group")
        if group.address not in attached
    ]


@check
def routes_only_approved_path(model: Model, flows: Any) -> list[str]:
    """No route reaches into a zone except the approved peering and firewall inspection routes."""
    cross = {(r.source_tier, flows.tier_block(r.destination_tier)) for r in flows.cross_zone_routes}
    inspected = {
        (r.source_tier, flows.tier_block(r.destination_tier)) for r in flows.inspection_routes
    }
    problems = []
    for route in _routes(model):
        destination = _network(route.destination)
        if destination is None:
            if route.destination not in (None, ""):
                problems.append(
                    f"{route.label}: destination {route.destination} is not a literal CIDR"
                )
            continue
        if destination.prefixlen == 0:
            allowed = {"gateway_id", "nat_gateway_id", "vpc_endpoint_id"}
            if not route.targets or not set(route.targets) <= allowed:
                problems.append(
                    f"{route.label}: default route through {sorted(route.targets)} "
                    "could reach the other zone"
                )
            continue
        zones = [z for z in flows.zones.values() if destination.overlaps(z.cidr)]
        if not zones:
            continue
        peering = route.targets.get("vpc_peering_connection_id")
        if (
            set(route.targets) == {"vpc_peering_connection_id"}
            and (route.tier, destination) in cross
            and _refers_to(model, peering, "aws_vpc_peering_connection")
        ):
            continue
        if (
            set(route.targets) == {"vpc_endpoint_id"}
            and (route.tier, destination) in inspected
            and _is_firewall_endpoint(model, route.targets["vpc_endpoint_id"])
        ):
            continue
        problems.append(
            f"{route.label}: route from tier {route.tier} to {destination} ({zones[0].name} zone) "
            f"through {sorted(route.targets)} is not on the approved path"
        )
    return problems


@check
def approved_routes_present(model: Model, flows: Any) -> list[str]:
    """Every route of the approved path exists (the flows file and the code agree both ways)."""
    have = {(route.tier, str(_network(route.destination))) for route in _routes(model)}
    problems = []
    for route in (*flows.cross_zone_routes, *flows.inspection_routes):
        key = (route.source_tier, str(flows.tier_block(route.destination_tier)))
        if key not in have:
            problems.append(
                "approved route missing: "
                f"{route.source_tier} -> {route.destination_tier} ({key[1]})"
            )
    return problems


@check
def one_private_path(model: Model, flows: Any) -> list[str]:
    """One peering connection joins the zones; no transit gateway, VPN or second peering exists."""
    problems = []
    peerings = model.of_type("aws_vpc_peering_connection")
    if len(peerings) != 1:
        problems.append(
            f"{len(peerings)} peering connections, expected exactly 1: "
            f"{[p.label for p in peerings]}"
        )
    for resource in model.resources:
        if resource.type.startswith(
            ("aws_ec2_transit_gateway", "aws_vpn_", "aws_customer_gateway", "aws_dx_")
        ):
            problems.append(f"{resource.label}: another path between networks ({resource.type})")
    return problems


_MAY_LEAVE_VPC = {"cde.edge", "cde.nat", "cde.firewall", "cde.app", "noncde.edge", "noncde.app"}


@check
def isolated_tiers_stay_inside(model: Model, flows: Any) -> list[str]:
    """Only edge, NAT, firewall and app tiers leave the VPC; the CDE app tier via the firewall."""
    problems = []
    for route in _routes(model):
        destination = _network(route.destination)
        if destination is None or destination.prefixlen != 0:
            continue
        if route.tier not in _MAY_LEAVE_VPC:
            problems.append(
                f"{route.label}: tier {route.tier} has a default route (must stay inside its VPC)"
            )
        elif route.tier == "cde.app" and not _is_firewall_endpoint(
            model, route.targets.get("vpc_endpoint_id")
        ):
            problems.append(
                f"{route.label}: the CDE app tier's default route bypasses the Network Firewall"
            )
    return problems


@check
def egress_allow_list_matches(model: Model, flows: Any) -> list[str]:
    """The CDE firewall allows exactly the file's domains, drops the rest; the PSP URL is listed."""
    expected = set(flows.egress_domains("cde"))
    problems = []
    groups = model.of_type("aws_networkfirewall_rule_group")
    if not groups:
        problems.append("no Network Firewall rule group: CDE egress is not filtered by domain")
    for group in groups:
        for rule_group in group.blocks("rule_group"):
            for source in rule_group.get("rules_source", []):
                for domains in source.get("rules_source_list", []):
                    targets = domains.get("targets")
                    if domains.get("generated_rules_type") != "ALLOWLIST":
                        problems.append(f"{group.label}: domain list is not an ALLOWLIST")
                    if not isinstance(targets, list) or set(targets) != expected:
                        problems.append(
                            f"{group.label}: allows {targets}, the file approves {sorted(expected)}"
                        )
    for policy in model.of_type("aws_networkfirewall_firewall_policy"):
        defaults = _as_list(_first_block(policy, "firewall_policy").get("stateful_default_actions"))
        if "aws:drop_established" not in defaults and "aws:drop_strict" not in defaults:
            problems.append(f"{policy.label}: traffic no rule allows is not dropped ({defaults})")
    for instance in model.root.instances():
        if "psp_api_url" in instance.source.variables and instance.prefix:
            url = instance.var("psp_api_url")
            host = re.sub(r"^https://([^/:]+).*$", r"\1", str(url))
            if host not in expected:
                problems.append(
                    f"{instance.prefix}var.psp_api_url {url} is not on the egress allow-list"
                )
    return problems


@check
def no_public_ips(model: Model, flows: Any) -> list[str]:
    """No subnet, task or database has a public IP; only approved entry points face the internet."""
    problems = []
    for subnet in model.of_type("aws_subnet"):
        if subnet.get("map_public_ip_on_launch") is not False:
            problems.append(
                f"{subnet.label} ({subnet.tags().get('tier')}): "
                "map_public_ip_on_launch is not false"
            )
    for service in model.of_type("aws_ecs_service"):
        for block in service.blocks("network_configuration"):
            if block.get("assign_public_ip") not in (False, None):
                problems.append(f"{service.label}: assign_public_ip")
    for database in model.of_type("aws_db_instance", "aws_rds_cluster_instance"):
        if database.get("publicly_accessible") is not False:
            problems.append(f"{database.label}: publicly_accessible is not false")
    for instance in model.of_type("aws_instance"):
        if instance.get("associate_public_ip_address") is not False:
            problems.append(f"{instance.label}: associate_public_ip_address is not false")
    for balancer in model.of_type("aws_lb"):
        if balancer.get("internal") is True:
            continue
        exposures = {
            g.tags().get("pci_exposure")
            for ref in model.refs_in(balancer.get("security_groups"))
            for g in model.lookup(Ref(ref))
            if g.type == "aws_security_group"
        }
        if exposures != {"internet"}:
            problems.append(
                f"{balancer.label}: internet-facing without an approved internet security group"
            )
    return problems


# ---------------------------------------------------------------- encryption and keys


def _named_key(value: Any) -> bool:
    return value not in (None, "") and not str(value).startswith("alias/aws/")


@check
def encrypted_at_rest_with_customer_keys(model: Model, flows: Any) -> list[str]:
    """Databases, caches, queues, streams, tables, topics, secrets, logs, buckets: customer keys."""
    problems = []
    for db in model.of_type("aws_db_instance", "aws_rds_cluster"):
        if db.get("storage_encrypted") is not True or not _named_key(db.get("kms_key_id")):
            problems.append(f"{db.label}: storage not encrypted with a customer key")
    for cache in model.of_type("aws_elasticache_replication_group"):
        for flag in ("at_rest_encryption_enabled", "transit_encryption_enabled"):
            if cache.get(flag) is not True:
                problems.append(f"{cache.label}: {flag} is not true")
        if not _named_key(cache.get("kms_key_id")):
            problems.append(f"{cache.label}: no customer key")
    for rtype, key in (
        ("aws_sqs_queue", "kms_master_key_id"),
        ("aws_sns_topic", "kms_master_key_id"),
        ("aws_kinesis_stream", "kms_key_id"),
        ("aws_secretsmanager_secret", "kms_key_id"),
        ("aws_cloudwatch_log_group", "kms_key_id"),
        ("aws_cloudtrail", "kms_key_id"),
    ):
        for resource in model.of_type(rtype):
            if not _named_key(resource.get(key)):
                problems.append(f"{resource.label}: {key} does not name a customer key")
    for table in model.of_type("aws_dynamodb_table"):
        sse = _first_block(table, "server_side_encryption")
        if sse.get("enabled") is not True or not _named_key(sse.get("kms_key_arn")):
            problems.append(f"{table.label}: not encrypted with a customer key")
    encrypted = {
        ref
        for config in model.of_type("aws_s3_bucket_server_side_encryption_configuration")
        for ref in model.refs_in(config.get("bucket"))
    }
    for bucket in model.of_type("aws_s3_bucket"):
        if bucket.address not in encrypted:
            problems.append(f"{bucket.label}: no server-side encryption configuration")
    return problems


@check
def keys_rotate(model: Model, flows: Any) -> list[str]:
    """Symmetric keys rotate yearly; HMAC keys (KMS cannot rotate them) declare <= 365 days."""
    problems = []
    for key in model.of_type("aws_kms_key"):
        spec = str(key.get("customer_master_key_spec", "SYMMETRIC_DEFAULT"))
        if spec.startswith("HMAC_"):
            period = key.tags().get("cryptoperiod_days")
            if not (isinstance(period, str) and period.isdigit() and int(period) <= 365):
                problems.append(
                    f"{key.label}: HMAC key without a cryptoperiod_days tag of at most 365"
                )
            continue
        if key.get("enable_key_rotation") is not True:
            problems.append(f"{key.label}: enable_key_rotation is not true")
        period = key.get("rotation_period_in_days", 365)
        if not isinstance(period, int) or period > 365:
            problems.append(f"{key.label}: rotation period {period} exceeds 365 days")
    return problems


def _cde_keys(model: Model) -> list[Resource]:
    return [k for k in model.of_type("aws_kms_key") if k.tags().get("pci_zone") == "cde"]


@check
def noncde_cannot_decrypt_cde_keys(model: Model, flows: Any) -> list[str]:
    """No non-CDE role is named in a CDE key policy or holds kms:Decrypt on a CDE key (or on *)."""
    problems = []
    cde_keys = {key.address for key in _cde_keys(model)}
    for key in _cde_keys(model):
        for statement in _policy_statements(model, key.get("policy")):
            if "unresolved" in statement:
                problems.append(
                    f"{key.label}: key policy not analysable ({statement['unresolved']})"
                )
                continue
            if not _grants_decrypt(statement):
                continue
            for principals in statement.get("principals", []):
                if principals.get("type") != "AWS":
                    continue
                for principal in _as_list(principals.get("identifiers")):
                    zone = _zone_of_principal(model, principal)
                    if zone != "cde":
                        problems.append(
                            f"{key.label}: statement {statement.get('sid')} "
                            f"lets {principal} ({zone}) decrypt"
                        )
    for attachment in model.of_type("aws_iam_role_policy"):
        roles = [r for r in model.lookup(attachment.get("role")) if r.type == "aws_iam_role"]
        if not roles or roles[0].tags().get("pci_zone") == "cde":
            continue
        for statement in _policy_statements(model, attachment.get("policy")):
            if "unresolved" in statement or not _grants_decrypt(statement):
                continue
            for resource in _as_list(statement.get("resources")):
                if resource is None:
                    continue  # a statement whose resource is null is not rendered
                refs = set(model.refs_in(resource))
                if (
                    resource == "*"
                    or refs & cde_keys
                    or (not refs and "arn:aws:kms" not in str(resource))
                ):
                    problems.append(
                        f"{roles[0].label} ({roles[0].tags().get('pci_zone')}): "
                        f"{statement.get('actions')} on {resource}"
                    )
    for instance in model.root.instances():
        for name, call in instance.source.module_calls.items():
            if not str(call.get("source", "")).rstrip("/").endswith("/noncde"):
                continue
            for argument, value in call.items():
                if "module.cde." in str(value):
                    problems.append(
                        f"{instance.prefix}module.{name}.{argument} takes {value} from the CDE"
                    )
    return problems


_TLS_POLICIES = (
    "ELBSecurityPolicy-TLS13-1-2-",
    "ELBSecurityPolicy-TLS13-1-3-",
    "ELBSecurityPolicy-FS-1-2-",
)


@check
def tls_in_transit(model: Model, flows: Any) -> list[str]:
    """Listeners, targets, databases and the CDN speak TLS 1.2+ only (PCI DSS 4.2.1)."""
    problems = []
    for listener in model.of_type("aws_lb_listener"):
        policy = str(listener.get("ssl_policy"))
        if listener.get("protocol") not in ("HTTPS", "TLS") or not policy.startswith(_TLS_POLICIES):
            problems.append(
                f"{listener.label}: {listener.get('protocol')} listener with policy {policy}"
            )
    for group in model.of_type("aws_lb_target_group"):
        if group.get("protocol") not in ("HTTPS", "TLS"):
            problems.append(f"{group.label}: targets reached over {group.get('protocol')}")
    for parameters in model.of_type("aws_db_parameter_group"):
        forced = {
            str(p.get("name")): str(p.get("value")) for p in parameters.blocks("parameter")
        }.get("rds.force_ssl")
        if str(parameters.get("family", "")).startswith("postgres") and forced != "1":
            problems.append(f"{parameters.label}: rds.force_ssl is not 1")
    for distribution in model.of_type("aws_cloudfront_distribution"):
        minimum = str(
            _first_block(distribution, "viewer_certificate").get("minimum_protocol_version")
        )
        viewer = _first_block(distribution, "default_cache_behavior").get("viewer_protocol_policy")
        if not minimum.startswith(("TLSv1.2", "TLSv1.3")) or viewer not in (
            "redirect-to-https",
            "https-only",
        ):
            problems.append(f"{distribution.label}: viewers allowed {minimum} / {viewer}")
    return problems


@check
def cvc_never_persisted(model: Model, flows: Any) -> list[str]:
    """The CDE's caches (the CVC store) keep no snapshots: a backup would outlive authorization."""
    return [
        f"{cache.label}: snapshot_retention_limit={cache.get('snapshot_retention_limit')}"
        for cache in model.of_type("aws_elasticache_replication_group", "aws_elasticache_cluster")
        if cache.tags().get("pci_zone") == "cde" and cache.get("snapshot_retention_limit") != 0
    ]


# ---------------------------------------------------------------- audit logging


def _audit_buckets(model: Model) -> list[Resource]:
    return [b for b in model.of_type("aws_s3_bucket") if b.tags().get("pci_data") == "audit-logs"]


@check
def audit_buckets_object_locked(model: Model, flows: Any) -> list[str]:
    """Audit buckets and the trail's bucket: versioned, Object Lock COMPLIANCE for 365+ days."""
    problems = []
    locks = {}
    for lock in model.of_type("aws_s3_bucket_object_lock_configuration"):
        retention = _first_block(lock, "rule").get("default_retention", [{}])[0]
        for ref in model.refs_in(lock.get("bucket")):
            locks[ref] = retention
    versioned = {
        ref
        for v in model.of_type("aws_s3_bucket_versioning")
        if _first_block(v, "versioning_configuration").get("status") == "Enabled"
        for ref in model.refs_in(v.get("bucket"))
    }
    trail_buckets = {
        ref
        for trail in model.of_type("aws_cloudtrail")
        for ref in model.refs_in(trail.get("s3_bucket_name"))
    }
    buckets = {b.address: b for b in _audit_buckets(model)}
    for address in trail_buckets - set(buckets):
        buckets.update({b.address: b for b in model.lookup(Ref(address))})
    for address, bucket in buckets.items():
        retention = locks.get(address)
        if bucket.get("object_lock_enabled") is not True or retention is None:
            problems.append(f"{bucket.label}: audit bucket without Object Lock")
            continue
        days = retention.get("days")
        if days is None and isinstance(retention.get("years"), int):
            days = retention["years"] * 365
        if retention.get("mode") != "COMPLIANCE" or not isinstance(days, int) or days < 365:
            problems.append(
                f"{bucket.label}: Object Lock {retention.get('mode')} for {days} days "
                "(need COMPLIANCE, 365+)"
            )
        if address not in versioned:
            problems.append(f"{bucket.label}: audit bucket not versioned")
    if not buckets:
        problems.append("no audit bucket at all")
    return problems


@check
def audit_buckets_private_and_logged(model: Model, flows: Any) -> list[str]:
    """Audit buckets block public access and log their access (except the access-log bucket)."""
    blocked = {
        ref
        for block in model.of_type("aws_s3_bucket_public_access_block")
        if all(
            block.get(k) is True
            for k in (
                "block_public_acls",
                "block_public_policy",
                "ignore_public_acls",
                "restrict_public_buckets",
            )
        )
        for ref in model.refs_in(block.get("bucket"))
    }
    logged = {
        ref
        for log in model.of_type("aws_s3_bucket_logging")
        for ref in model.refs_in(log.get("bucket"))
    }
    targets = {
        ref
        for log in model.of_type("aws_s3_bucket_logging")
        for ref in model.refs_in(log.get("target_bucket"))
    }
    problems = []
    for bucket in _audit_buckets(model):
        if bucket.address not in blocked:
            problems.append(f"{bucket.label}: public access not fully blocked")
        if bucket.address not in logged and bucket.address not in targets:
            problems.append(f"{bucket.label}: access to the audit bucket is not logged")
    return problems


@check
def log_retention_one_year(model: Model, flows: Any) -> list[str]:
    """Every CloudWatch log group keeps at least 365 days (or never expires)."""
    return [
        f"{group.label}: retention_in_days={group.get('retention_in_days')}"
        for group in model.of_type("aws_cloudwatch_log_group")
        if not (
            isinstance(group.get("retention_in_days"), int)
            and (group.get("retention_in_days") >= 365 or group.get("retention_in_days") == 0)
        )
    ]


@check
def cloudtrail_multi_region_validated(model: Model, flows: Any) -> list[str]:
    """A CloudTrail covers every region and global services, validates files, feeds CloudWatch."""
    trails = model.of_type("aws_cloudtrail")
    problems = [] if trails else ["no CloudTrail"]
    for trail in trails:
        for flag in (
            "is_multi_region_trail",
            "include_global_service_events",
            "enable_log_file_validation",
        ):
            if trail.get(flag, flag == "include_global_service_events") is not True:
                problems.append(f"{trail.label}: {flag} is not true")
        if trail.get("enable_logging", True) is not True:
            problems.append(f"{trail.label}: logging disabled")
        if not trail.get("cloud_watch_logs_group_arn"):
            problems.append(f"{trail.label}: no CloudWatch Logs copy (alarms cannot see it)")
    return problems


SECURITY_METRICS = (
    "CdeSecurityGroupChanges",
    "KmsKeyPolicyChanges",
    "CloudTrailChanges",
    "RootAccountUse",
    "UnauthorizedApiCalls",
)


@check
def security_events_alarm(model: Model, flows: Any) -> list[str]:
    """CDE SG changes, key-policy changes, trail stops, root use, refused calls raise SNS alarms."""
    produced = {
        str(_first_block(f, "metric_transformation").get("name"))
        for f in model.of_type("aws_cloudwatch_log_metric_filter")
    }
    alarmed = set()
    for alarm in model.of_type("aws_cloudwatch_metric_alarm"):
        if _refers_to(model, alarm.get("alarm_actions"), "aws_sns_topic"):
            alarmed.add(str(alarm.get("metric_name")))
    problems = []
    for metric in SECURITY_METRICS:
        if metric not in produced:
            problems.append(f"no metric filter produces {metric}")
        if metric not in alarmed:
            problems.append(f"no alarm to SNS on {metric}")
    return problems


# ---------------------------------------------------------------- identity, inventory, hygiene


@check
def cognito_mfa_required(model: Model, flows: Any) -> list[str]:
    """Every Cognito user pool requires MFA (mfa_configuration = ON)."""
    return [
        f"{pool.label}: mfa_configuration={pool.get('mfa_configuration')!r}"
        for pool in model.of_type("aws_cognito_user_pool")
        if pool.get("mfa_configuration") != "ON"
    ]


@check
def every_resource_tagged(model: Model, flows: Any) -> list[str]:
    """Every taggable resource has pci_zone = cde, connected or out-of-scope."""
    return [
        f"{r.label}: pci_zone={r.tags().get('pci_zone')!r}"
        for r in model.resources
        if r.type not in UNTAGGABLE and r.tags().get("pci_zone") not in PCI_ZONES
    ]


@check
def zone_tags_follow_flows(model: Model, flows: Any) -> list[str]:
    """Groups that talk to a CDE group are cde or connected; everything in the CDE VPC is cde."""
    zone_of = {
        str(g.tags().get("flow_endpoint")): g.tags().get("pci_zone")
        for g in model.of_type("aws_security_group")
    }
    problems = []
    for end, label in _rule_ends(model):
        pair = [end.owner, end.peer]
        if any(zone_of.get(p) == "cde" for p in pair):
            for p in pair:
                if p in zone_of and zone_of[p] not in ("cde", "connected"):
                    problems.append(
                        f"{p} is {zone_of[p]} but exchanges traffic with the CDE ({label})"
                    )
    cde_vpcs = {v.address for v in model.of_type("aws_vpc") if v.tags().get("pci_zone") == "cde"}
    for resource in model.resources:
        if (
            set(model.refs_in(resource.get("vpc_id"))) & cde_vpcs
            and resource.tags().get("pci_zone") != "cde"
        ):
            problems.append(
                f"{resource.label}: in the CDE VPC but pci_zone={resource.tags().get('pci_zone')!r}"
            )
    return sorted(set(problems))


@check
def variables_typed_and_described(model: Model, flows: Any) -> list[str]:
    """Every variable of the root and of every module it uses has a type and a description."""
    problems = []
    for directory in model.source_dirs():
        for name, body in parse_dir(directory).variables.items():
            where = directory.relative_to(TERRAFORM)
            if "type" not in body:
                problems.append(f"{where}: variable {name} has no type")
            if not str(body.get("description", "")).strip():
                problems.append(f"{where}: variable {name} has no description")
    return problems


@check
def outputs_described(model: Model, flows: Any) -> list[str]:
    """Every output of the root and of every module it uses has a description."""
    return [
        f"{directory.relative_to(TERRAFORM)}: output {name} has no description"
        for directory in model.source_dirs()
        for name, body in parse_dir(directory).outputs.items()
        if not str(body.get("description", "")).strip()
    ]


@check
def local_modules_only(model: Model, flows: Any) -> list[str]:
    """Every module call uses a local path (registry modules are invisible offline)."""
    return [
        f"{directory.relative_to(TERRAFORM)}: module {name} comes from {body.get('source')}"
        for directory in model.source_dirs()
        for name, body in parse_dir(directory).module_calls.items()
        if not str(body.get("source", "")).startswith(("./", "../"))
    ]


SKIP = re.compile(r"checkov:skip=([A-Za-z0-9_]+)(?::(.*))?")


def skip_comments(paths: Iterable[Path]) -> list[tuple[Path, int, str, str]]:
    """Every inline checkov skip in these directories: (file, line, check id, justification)."""
    found = []
    for directory in paths:
        for file in sorted(directory.glob("*.tf")):
            for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
                match = SKIP.search(line)
                if match:
                    found.append((file, number, match.group(1), (match.group(2) or "").strip()))
    return found


@check
def skips_justified(model: Model, flows: Any) -> list[str]:
    """Every inline checkov skip names a check and gives a justification of at least a sentence."""
    return [
        f"{file.relative_to(TERRAFORM)}:{line}: skip of {check_id} without a justification"
        for file, line, check_id, why in skip_comments(model.source_dirs())
        if not re.fullmatch(r"CKV2?_[A-Z]+_\d+", check_id) or len(why) < 30
    ]
