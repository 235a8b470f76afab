"""psp_sandbox: checks Stripe-style request parameters (names in errors, never values).

Outside both zones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from fincore.cards import contains_card_number
from psp_sandbox.domain import (
    invalid,
    missing,
)

Params = Mapping[str, Any]
Json = dict[str, Any]


_METADATA_KEY = re.compile(r"^[^\[\]]{1,40}$")


def check_unknown(params: Params, allowed: set[str], prefix: str = "") -> None:
    for name in params:
        if name not in allowed and name != "expand":
            full = f"{prefix}[{name}]" if prefix else name
            safe = full if re.fullmatch(r"[A-Za-z0-9_\[\]]{1,80}", full) else "(invalid name)"
            raise invalid(
                f"Received unknown parameter: {safe}", param=safe, code="parameter_unknown"
            )


def obj(params: Params, name: str) -> Params:
    value = params.get(name)
    if value is None or value == "":
        return {}
    if not isinstance(value, Mapping):
        raise invalid(f"Invalid object: {name}", param=name, code="parameter_invalid_object")
    return value


def text(
    params: Params,
    name: str,
    *,
    required: bool = False,
    choices: Sequence[str] | None = None,
    max_len: int = 5000,
    param: str | None = None,
) -> str | None:
    label = param or name
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise missing(label)
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise invalid(f"Invalid string: {label}", param=label, code="parameter_invalid_string")
    if choices is not None and value not in choices:
        raise invalid(
            f"Invalid {label}: must be one of {', '.join(choices)}",
            param=label,
            code="parameter_invalid_string",
        )
    return value


def boolean(params: Params, name: str, default: bool = False) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return default
    if value in ("true", True):
        return True
    if value in ("false", False):
        return False
    raise invalid(f"Invalid boolean: {name}", param=name, code="parameter_invalid_boolean")


def integer(
    params: Params, name: str, low: int, high: int, default: int | None = None
) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str | int) or not re.fullmatch(r"-?[0-9]{1,12}", str(value)):
        raise invalid(f"Invalid integer: {name}", param=name, code="parameter_invalid_integer")
    number = int(value)
    if not low <= number <= high:
        raise invalid(
            f"Invalid {name}: must be between {low} and {high}",
            param=name,
            code="parameter_invalid_integer",
        )
    return number


def no_card_data(value: str | None, param: str) -> None:
    # The sandbox is a PSP that does not want card numbers in free-text fields, and FinCore's
    # references must never carry them (PCI DSS 3.3.1 / 3.4.1).
    if value and contains_card_number(value):
        raise invalid(f"{param} must not contain a card number.", param=param)


def metadata(params: Params, name: str = "metadata") -> dict[str, str]:
    raw = params.get(name)
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, Mapping):
        raise invalid(f"Invalid object: {name}", param=name, code="parameter_invalid_object")
    if len(raw) > 50:
        raise invalid("Metadata can have at most 50 keys.", param=name)
    result: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not _METADATA_KEY.match(key):
            raise invalid("Metadata keys are 1-40 characters.", param=name)
        if not isinstance(value, str) or len(value) > 500:
            raise invalid(f"Invalid metadata value for {key}.", param=f"{name}[{key}]")
        no_card_data(key, name)
        no_card_data(value, f"{name}[{key}]")
        if value != "":
            result[key] = value
    return result


def url(params: Params, name: str, *, required: bool) -> str | None:
    value = text(params, name, required=required, max_len=5000)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid(f"Not a valid URL: {name}", param=name, code="url_invalid")
    no_card_data(value, name)
    return value


def list_response(url: str, data: list[Json], has_more: bool) -> Json:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def created_filter(params: Params) -> dict[str, int] | None:
    raw = params.get("created")
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        exact = integer(params, "created", 0, 2**40)
        assert exact is not None
        return {"gte": exact, "lte": exact}
    if not isinstance(raw, Mapping):
        raise invalid("Invalid created filter.", param="created")
    result: dict[str, int] = {}
    for op, value in raw.items():
        if op not in ("gt", "gte", "lt", "lte"):
            raise invalid("Invalid created filter.", param="created")
        number = integer({op: value}, op, 0, 2**40)
        assert number is not None
        result[op] = number
    return result
