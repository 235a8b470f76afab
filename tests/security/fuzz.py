"""schemathesis against the running processes, with a card-data response check.

Each operation of an OpenAPI document gets a bounded, derandomized Hypothesis run of
schema-valid and schema-invalid requests (`GenerationMode.POSITIVE` and `NEGATIVE`), some of
them with a canary PAN or CVC planted in a string field, the query or a header. Every
response goes through schemathesis's own checks (no 5xx, documented status codes, content
types, headers and bodies, positive data accepted, negative data refused, auth not ignored)
and through `card_data_in_response`: no card number (Luhn + issuer prefix, any encoding the
PAN sweep knows), no canary and no number the request itself carried may come back, in the
body or in a header. The one answer that legitimately holds a PAN — the vault's detokenize
for the gateway — has exactly its `card.number`, `card.name` and `cvc` fields exempted.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from fincore.cards import contains_card_number, find_card_data, find_card_numbers
from fincore.pan_sweep import sweep_bytes

# A schema-valid request may still meet a business refusal: an unknown object (404), a card
# that is expired or wrong (402/422), a token of another merchant (403), a state that does
# not allow the action (409/422), a crypto-shredded token (410). 400 is not in the list: a
# schema-valid request that gets 400 means the committed document is looser than the app.
POSITIVE_STATUSES = ["2xx", "401", "402", "403", "404", "409", "410", "422", "429"]


REAL = "<aimed at real objects>"


def load_schema(document: Path, *, positive: list[str] | None = None) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "checks": {
                "positive_data_acceptance": {"expected-statuses": positive or POSITIVE_STATUSES}
            }
        }
    )
    return schemathesis.openapi.from_dict(json.loads(document.read_text()), config=config)


def operations(schema: Any) -> list[Any]:
    return [cast(Any, result).ok() for result in schema.get_all_operations()]


# ---------------------------------------------------------------- the card-data check


def _request_numbers(kwargs: Mapping[str, Any]) -> list[str]:
    """Card-like numbers the request carried anywhere (they must not come back)."""
    data = kwargs.get("data")
    sent = json.dumps(
        {
            "url": kwargs.get("url"),
            "params": kwargs.get("params"),
            "headers": kwargs.get("headers"),
            "json": kwargs.get("json"),
            "data": data.decode("latin-1") if isinstance(data, bytes) else data,
        },
        default=str,
    )
    return sorted({match.digits for match in find_card_numbers(sent)})


def _without(body: Any, exempt: tuple[tuple[str, ...], ...]) -> Any:
    copied = json.loads(json.dumps(body))
    for path in exempt:
        target = copied
        for part in path[:-1]:
            target = target.get(part) if isinstance(target, dict) else None
        if isinstance(target, dict):
            target.pop(path[-1], None)
    return copied


def card_data_in_response(
    status: int,
    headers: Mapping[str, Any],
    content: bytes,
    canaries: list[str],
    sent_numbers: list[str],
    exempt: tuple[tuple[str, ...], ...] = (),
) -> list[str]:
    """Why this response leaks card data (empty when it does not).

    The body and every header are swept like a store (raw, JSON-escaped, URL-encoded, base64,
    hex, UTF-16) for card numbers, for the run's canaries and for the numbers the request
    carried; a JSON body is also searched for card field names (`number`, `cvc`, `pan`…).
    """
    problems: list[str] = []
    body = content
    parsed: Any = None
    if content:
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
    if parsed is not None and exempt:
        body = json.dumps(_without(parsed, exempt)).encode()
        parsed = _without(parsed, exempt)
    header_lines = []
    for name, values in headers.items():
        for value in values if isinstance(values, list) else [values]:
            header_lines.append(f"{name}: {value}")
    watched = [*canaries, *sent_numbers]
    for label, data in (("body", body), ("headers", "\n".join(header_lines).encode())):
        if contains_card_number(data.decode("utf-8", "replace")):
            problems.append(f"{status}: {label} holds a card number")
        for finding in sweep_bytes(data, watched, label=label):
            problems.append(f"{status}: {label} holds {finding.kind} {finding.masked}")
    if parsed is not None:
        for path in find_card_data(parsed):
            problems.append(f"{status}: body field {path} is card data")
    return problems


# ---------------------------------------------------------------- running one operation


@dataclass
class Outcome:
    """What one operation's run did."""

    label: str
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


@dataclass
class Fuzzer:
    """Runs operations of one document against one base URL."""

    base_url: str
    ca_file: Path
    canaries: list[str]
    examples: int = 12
    auth: Callable[[Any], dict[str, str]] = lambda _op: {}
    fixed: Callable[[Any], list[dict[str, Any]]] = lambda _op: []
    exempt: Callable[[Any, int], tuple[tuple[str, ...], ...]] = lambda _op, _status: ()
    session_auth: Any = None  # a requests auth hook (the PSP's webhook signature)
    # Applied to about half of the cases: point them at real objects (an attested merchant,
    # a live token) so the runs reach past the lookups.
    tweak: Callable[[Any, Any], None] | None = None
    # Applied to every positive case (a fresh Idempotency-Key: generated keys repeat across
    # different bodies, which is rightly a 400, and replays have their own tests).
    prepare: Callable[[Any, Any], None] | None = None
    # Checks to skip for an operation (the webhook: its signature is added by `session_auth`,
    # so schemathesis's "missing auth" and "missing header" cases cannot be told apart).
    excluded: Callable[[Any], list[Any]] = lambda _op: []
    inject: list[str] = field(default_factory=list)

    def session(self) -> requests.Session:
        session = requests.Session()
        session.verify = str(self.ca_file)
        if self.session_auth is not None:
            session.auth = self.session_auth
        return session

    def strategy(self, operation: Any) -> Any:
        options = [
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        ]
        for fixed in self.fixed(operation):
            options.append(operation.as_strategy(GenerationMode.POSITIVE, **fixed))
        return st.one_of(*options)

    def run(self, operation: Any, *, authenticated: bool = True) -> Outcome:
        """Fuzz one operation; with `authenticated` False no credentials are sent and every
        answer must be a refusal (401/403; the webhook's 400), never a 5xx."""
        outcome = Outcome(operation.label)
        session = self.session()
        headers = self.auth(operation) if authenticated else {}
        # Each case is sent as generated, aimed at real objects (`tweak`), or with a canary.
        variants: list[str | None] = [None, REAL, REAL]
        if authenticated:
            variants.extend(self.inject)
        verify = str(self.ca_file)
        excluded = self.excluded(operation)

        @given(case=self.strategy(operation), variant=st.sampled_from(variants))
        @settings(
            max_examples=self.examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def exercise(case: Any, variant: str | None) -> None:
            _own_copies(case)
            if self.prepare is not None and _positive(case):
                self.prepare(operation, case)
            if variant == REAL and self.tweak is not None and _positive(case):
                self.tweak(operation, case)
            planted = variant if variant not in (None, REAL) else None
            if planted is not None:
                plant(case, planted)
            # A negative case about the credential itself keeps its own (missing or bad) one.
            sent_headers = {} if _mutates_credentials(case) else headers
            kwargs = case.as_transport_kwargs(base_url=self.base_url, headers=sent_headers)
            sent = _request_numbers(kwargs)
            try:
                if authenticated and planted is None:
                    response = case.call_and_validate(
                        base_url=self.base_url,
                        session=session,
                        headers=sent_headers,
                        excluded_checks=excluded,
                        verify=verify,
                    )
                else:
                    response = case.call(
                        base_url=self.base_url, session=session, headers=sent_headers, verify=verify
                    )
                    case.validate_response(response, checks=[not_a_server_error])
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect every failure
                outcome.failures.append(_describe(exc, case, planted))
                return
            finally:
                outcome.requests += 1
            status = response.status_code
            outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
            if not authenticated and status not in self.refusals(operation):
                outcome.failures.append(
                    f"without credentials: {status} {response.text[:200]} ({_curl(case)})"
                )
            problems = card_data_in_response(
                status,
                response.headers,
                response.content,
                self.canaries,
                sent,
                self.exempt(operation, status),
            )
            for problem in problems:
                outcome.failures.append(f"card data echoed: {problem} ({_curl(case)})")

        exercise()
        session.close()
        return outcome

    def refusals(self, operation: Any) -> set[int]:
        if operation.path == "/v1/psp/webhooks":
            return {400}  # the PSP's signature is the credential: a 400, audited
        return {401, 403}


CREDENTIAL_HEADERS = frozenset({"authorization", "x-fincore-service-token", "stripe-signature"})


def _mutates_credentials(case: Any) -> bool:
    meta = getattr(case, "meta", None)
    data = getattr(getattr(meta, "phase", None), "data", None)
    for mutation in getattr(data, "mutations", ()) or ():
        if str(getattr(mutation, "parameter", "") or "").lower() in CREDENTIAL_HEADERS:
            return True
    return False


def _own_copies(case: Any) -> None:
    """Fixed parts of a strategy are shared between cases: copy before changing them."""
    for name in ("body", "query", "path_parameters", "headers"):
        value = getattr(case, name, None)
        if isinstance(value, dict | list):
            setattr(case, name, copy.deepcopy(value))


def _positive(case: Any) -> bool:
    meta = getattr(case, "meta", None)
    return meta is not None and meta.generation.mode is GenerationMode.POSITIVE


def _curl(case: Any) -> str:
    try:
        return str(case.as_curl_command())[:600]
    except Exception:  # noqa: BLE001 - a description only
        return f"{case.method} {case.formatted_path}"


def _describe(exc: BaseException, case: Any, planted: str | None) -> str:
    where = " (canary planted)" if planted else ""
    return f"{type(exc).__name__}{where}: {str(exc)[:1500]}"


# ---------------------------------------------------------------- canary planting


def _string_slots(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _string_slots(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _string_slots(item, (*path, index))
    elif isinstance(value, str):
        yield path


def plant(case: Any, canary: str) -> None:
    """Put `canary` in the case: a PAN in one string of the JSON body (else a query parameter)
    and in a header the application reads for nothing (`X-Note`); a CVC under a card field
    name (`cvc`), the only way 3-4 digits are recognisable as card data (checklist B1 (a))."""
    if len(canary) < 13:
        if isinstance(case.body, dict):
            case.body["cvc"] = canary
        else:
            case.query = {**(case.query or {}), "cvc": canary}
        case.headers = {**(case.headers or {}), "X-Card-Cvc": canary}
        return
    body = case.body
    slots = list(_string_slots(body)) if isinstance(body, dict | list) else []
    if slots:
        path = slots[len(canary) % len(slots)]
        target = body
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = canary
    elif isinstance(body, dict):
        body["note"] = canary
    else:
        case.query = {**(case.query or {}), "note": canary}
    case.headers = {**(case.headers or {}), "X-Note": canary}


# ---------------------------------------------------------------- the PSP's signature


class StripeSigner(requests.auth.AuthBase):
    """Signs each request body as the PSP signs its webhooks (Stripe-Signature)."""

    def __init__(self, secret: str, *, age_s: int = 0) -> None:
        self.secret = secret.encode()
        self.age_s = age_s

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        payload = body.encode() if isinstance(body, str) else bytes(cast(bytes, body))
        request.headers["Stripe-Signature"] = sign(self.secret, payload, self.age_s)
        return request


def sign(secret: bytes, payload: bytes, age_s: int = 0, at: int | None = None) -> str:
    timestamp = (int(time.time()) if at is None else at) - age_s
    mac = hmac.new(secret, f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"
