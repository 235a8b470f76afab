"""Infrastructure (both zones): helpers shared by FinCore's custom checkov policies.

checkov executes every .py file in this folder; this one defines no check. Policies read the
approved-flows file through tools/flowsfile.py, the same loader the renderer and tests use.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from pathlib import Path
from typing import Any

_TOOLS = Path(__file__).resolve().parents[2] / "tools"
if str(_TOOLS) not in sys.path:
    sys.path.insert(0, str(_TOOLS))

from flowsfile import PCI_ZONES, ApprovedFlows, load  # noqa: E402

UNTAGGABLE_FILE = Path(__file__).resolve().parent.parent / "untaggable-resource-types.txt"

__all__ = [
    "PCI_ZONES",
    "approved_flows",
    "as_network",
    "first",
    "tags_of",
    "unrendered",
    "untaggable_types",
]

_REFERENCE = re.compile(r"(^|[^\w.])(var|local|module|each)\.[A-Za-z_]")

_cache: dict[str, Any] = {}


def approved_flows() -> ApprovedFlows:
    """The approved-flows file, read once per checkov run."""
    if "flows" not in _cache:
        _cache["flows"] = load()
    return _cache["flows"]


def untaggable_types() -> frozenset[str]:
    """AWS resource types that have no tags argument (one per line in the shared list)."""
    if "untaggable" not in _cache:
        lines = UNTAGGABLE_FILE.read_text(encoding="utf-8").splitlines()
        _cache["untaggable"] = frozenset(
            line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()
        )
    return _cache["untaggable"]


def first(value: Any) -> Any:
    """checkov wraps every attribute value in a one-element list; unwrap it."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def tags_of(conf: dict[str, Any]) -> dict[str, Any]:
    """The resource's tags as a plain dict (empty when missing or unresolvable)."""
    tags = first(conf.get("tags"))
    # checkov sometimes wraps tag values in lists too (e.g. next to dynamic blocks).
    return {key: first(value) for key, value in tags.items()} if isinstance(tags, dict) else {}


def unrendered(value: Any) -> bool:
    """Whether checkov left a Terraform reference unevaluated (it gives up on variables of modules
    whose inputs come from other modules' outputs). Such values are UNKNOWN to these policies; the
    pytest policy tests evaluate the same attributes with the real values."""
    return isinstance(first(value), str) and bool(_REFERENCE.search(first(value)))


def as_network(value: Any) -> ipaddress.IPv4Network | None:
    """An IPv4 network from a rendered attribute, or None when it is not a literal CIDR."""
    try:
        return ipaddress.IPv4Network(str(first(value)), strict=False)
    except ValueError:
        return None
