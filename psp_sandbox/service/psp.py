"""psp_sandbox: the Stripe-compatible PSP's use cases (PaymentMethods, PaymentIntents, Charges,
Refunds, Checkout Sessions, Events, balance transactions, settlement rows).

Outside both zones. A card number never goes past `domain.read_card`.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from psp_sandbox.domain import (
    DECLINES,
    EVENT_TYPES,
    CardFacts,
    FeeModel,
    PaymentIntentStatus,
    SessionStatus,
    SettlementRow,
    StripeError,
    invalid,
    missing,
    new_id,
    not_found,
    parse_amount,
    parse_currency,
    read_card,
    test_mode_id,
    unexpected_state,
    utc_day_bounds,
)
from psp_sandbox.ports import (
    Clock,
    SandboxStore,
    SettlementSink,
    StoredObject,
    WebhookEndpoint,
)
from psp_sandbox.service import params as p
from psp_sandbox.service.faults import FaultInjector

Params = Mapping[str, Any]
Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """The API request being served, for `event.request` (Stripe's shape)."""

    id: str | None = None
    idempotency_key: str | None = None


CURRENT_REQUEST: ContextVar[RequestInfo | None] = ContextVar("sandbox_request", default=None)


@dataclass(frozen=True, slots=True)
class SandboxOptions:
    public_url: str
    api_version: str
    fingerprint_key: bytes
    fee: FeeModel = field(default_factory=FeeModel)
    min_session_ttl_s: int = 1800
    default_session_ttl_s: int = 86400
    max_session_ttl_s: int = 86400
    idempotency_ttl_s: int = 86400


_PI_CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
_PI_CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
_ZERO_DECIMAL = frozenset({"jpy", "krw"})
_SEARCH_CLAUSE = re.compile(
    r"""\s*(?:(metadata)\[['"]([^'"\]]{1,40})['"]\]|(status|currency|amount))\s*:\s*"""
    r"""(?:['"]([^'"]{0,500})['"]|([0-9]{1,12}))\s*"""
)


def format_amount(amount: int, currency: str) -> str:
    if currency in _ZERO_DECIMAL:
        return f"{amount} {currency.upper()}"
    return f"{amount // 100}.{amount % 100:02d} {currency.upper()}"


class Sandbox:
    """The Stripe-compatible PSP. Every public method is one atomic use case; objects come
    back as Stripe-shaped JSON dicts; errors are `StripeError`s."""

    def __init__(
        self,
        store: SandboxStore,
        clock: Clock,
        sink: SettlementSink,
        options: SandboxOptions,
        faults: FaultInjector,
        on_enqueued: Callable[[], None] = lambda: None,
        real_time: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.clock = clock
        self.sink = sink
        self.options = options
        self.faults = faults
        self.on_enqueued = on_enqueued
        self.real_time = real_time
        self._endpoints: list[WebhookEndpoint] | None = None

    # -------------------------------------------------------------- helpers

    def now(self) -> int:
        return int(self.clock.now())

    def today(self) -> date:
        return datetime.fromtimestamp(self.clock.now(), UTC).date()

    def _load(self, obj_id: str, obj_type: str, kind: str, param: str = "id") -> StoredObject:
        stored = self.store.get(obj_id) if isinstance(obj_id, str) else None
        if stored is None or stored.type != obj_type:
            raise not_found(kind, obj_id if isinstance(obj_id, str) else "", param)
        return stored

    @staticmethod
    def expand_paths(raw: object) -> list[str]:
        """The `expand[]` parameter, checked before anything executes (so a bad path can never
        fail a request after it changed state)."""
        if raw is None or raw == "":
            return []
        items = raw if isinstance(raw, list) else [raw]
        for item in items:
            if not isinstance(item, str) or not re.fullmatch(
                r"[a-z_]{1,40}(\.[a-z_]{1,40})*", item
            ):
                raise invalid("Invalid expand path.", param="expand")
        return [str(item) for item in items]

    def expand(self, obj: Json, paths: Sequence[str]) -> Json:
        """Replace id fields named in `expand[]` by their objects (one level; other paths are
        left as they are)."""
        result = dict(obj)
        for path in paths:
            name = path.split(".", 1)[0]
            value = result.get(name)
            if isinstance(value, str):
                stored = self.store.get(value)
                if stored is not None:
                    result[name] = stored.data
        return result

    # -------------------------------------------------------------- events

    def _emit(self, event_type: str, obj: Json, previous: Json | None = None) -> str:
        assert event_type in EVENT_TYPES, event_type
        request = CURRENT_REQUEST.get() or RequestInfo()
        event_id = new_id("evt", 24)
        if self._endpoints is None:
            self._endpoints = self.store.endpoints()
        endpoints = [e for e in self._endpoints if e.wants(event_type)]
        data: Json = {"object": obj}
        if previous:
            data["previous_attributes"] = previous
        event: Json = {
            "id": event_id,
            "object": "event",
            "api_version": self.options.api_version,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": len(endpoints),
            "request": {"id": request.id, "idempotency_key": request.idempotency_key},
            "type": event_type,
        }
        self.store.insert("event", event_id, event["created"], event, attrs={"type": event_type})
        if endpoints:
            payload = json.dumps(event, indent=2).encode()
            action, fault = self.faults.for_webhook()
            now = self.real_time()
            for endpoint in endpoints:
                if action == "drop":
                    self.store.enqueue_delivery(event_id, endpoint, payload, now, "dropped", now)
                    continue
                if action == "hold":
                    assert fault is not None
                    delivery = self.store.enqueue_delivery(
                        event_id, endpoint, payload, now, "held", now
                    )
                    group = self.faults.hold(fault, [delivery])
                    if group is not None:
                        # Release newest first, spaced so that even concurrent delivery
                        # reaches the endpoint in reverse order.
                        spacing = fault.spacing_ms / 1000.0
                        for index, held_id in enumerate(reversed(group)):
                            self.store.set_delivery(
                                held_id, state="pending", next_attempt_at=now + index * spacing
                            )
                    continue
                copies = 2 if action == "duplicate" else 1
                for _ in range(copies):
                    self.store.enqueue_delivery(event_id, endpoint, payload, now, "pending", now)
            self.on_enqueued()
        return event_id

    # -------------------------------------------------------------- payment methods

    def create_payment_method(self, params: Params) -> Json:
        p.check_unknown(params, {"type", "card", "billing_details", "metadata"})
        p.text(params, "type", required=True, choices=("card",))
        card = p.obj(params, "card")
        if not card:
            raise missing("card")
        p.check_unknown(card, {"number", "exp_month", "exp_year", "cvc"}, "card")
        facts = read_card(
            card.get("number"),
            card.get("exp_month"),
            card.get("exp_year"),
            card.get("cvc"),
            today=self.today(),
            fingerprint_key=self.options.fingerprint_key,
        )
        billing = p.obj(params, "billing_details")
        p.check_unknown(billing, {"name", "email", "phone", "address"}, "billing_details")
        name = p.text(billing, "name", max_len=200, param="billing_details[name]")
        email = p.text(billing, "email", max_len=200, param="billing_details[email]")
        p.no_card_data(name, "billing_details[name]")
        p.no_card_data(email, "billing_details[email]")
        return self._store_payment_method(facts, name, email, p.metadata(params))

    def _store_payment_method(
        self, facts: CardFacts, name: str | None, email: str | None, metadata: dict[str, str]
    ) -> Json:
        pm_id = new_id("pm", 24)
        created = self.now()
        brand = facts.brand.value
        pm: Json = {
            "id": pm_id,
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": {
                "address": {
                    "city": None,
                    "country": None,
                    "line1": None,
                    "line2": None,
                    "postal_code": None,
                    "state": None,
                },
                "email": email,
                "name": name,
                "phone": None,
            },
            "card": {
                "brand": brand,
                "checks": {
                    "address_line1_check": None,
                    "address_postal_code_check": None,
                    "cvc_check": "unchecked" if facts.cvc_provided else None,
                },
                "country": facts.country,
                "display_brand": brand,
                "exp_month": facts.exp_month,
                "exp_year": facts.exp_year,
                "fingerprint": facts.fingerprint,
                "funding": facts.funding,
                "generated_from": None,
                "last4": facts.last4,
                "networks": {"available": [brand], "preferred": None},
                "regulated_status": "unregulated",
                "three_d_secure_usage": {"supported": True},
                "wallet": None,
            },
            "created": created,
            "customer": None,
            "livemode": False,
            "metadata": metadata,
            "type": "card",
        }
        card = asdict(facts)
        card["brand"] = brand
        self.store.insert("payment_method", pm_id, created, pm, private={"card": card})
        return pm

    def retrieve_payment_method(self, pm_id: str) -> Json:
        return self._load(pm_id, "payment_method", "PaymentMethod").data

    # -------------------------------------------------------------- payment intents

    @staticmethod
    def _pi_attrs(pi: Json) -> dict[str, str]:
        attrs = {
            "status": pi["status"],
            "currency": pi["currency"],
            "amount": str(pi["amount"]),
        }
        for key, value in pi["metadata"].items():
            attrs[f"metadata.{key}"] = value
        return attrs

    def create_payment_intent(self, params: Params) -> Json:
        p.check_unknown(
            params,
            {
                "amount",
                "currency",
                "payment_method",
                "confirm",
                "capture_method",
                "metadata",
                "description",
                "payment_method_types",
                "statement_descriptor",
                "statement_descriptor_suffix",
                "receipt_email",
                "return_url",
                "off_session",
                "automatic_payment_methods",
                "confirmation_method",
                "error_on_requires_action",
                "use_stripe_sdk",
            },
        )
        amount = parse_amount(params.get("amount"))
        currency = parse_currency(params.get("currency"))
        capture_method = (
            p.text(params, "capture_method", choices=("automatic", "automatic_async", "manual"))
            or "automatic_async"
        )
        description = p.text(params, "description", max_len=1000)
        p.no_card_data(description, "description")
        types = params.get("payment_method_types")
        if types not in (None, "", ["card"], {"0": "card"}):
            raise invalid(
                "The sandbox supports only payment_method_types=[card].",
                param="payment_method_types",
            )
        confirm = p.boolean(params, "confirm")
        if not confirm and params.get("return_url"):
            raise invalid("You can only specify return_url when confirm=true.", param="return_url")
        pm_id = p.text(params, "payment_method", max_len=100)
        pm = (
            self._load(pm_id, "payment_method", "PaymentMethod", "payment_method")
            if pm_id
            else None
        )
        if confirm and pm is None:
            raise self._missing_pm()
        pi_id = new_id("pi", 24)
        created = self.now()
        pi: Json = {
            "id": pi_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": 0,
            "application": None,
            "application_fee_amount": None,
            "automatic_payment_methods": None,
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": capture_method,
            "client_secret": f"{pi_id}_secret_{secrets.token_urlsafe(18).replace('-', 'x')}",
            "confirmation_method": "automatic",
            "created": created,
            "currency": currency,
            "customer": None,
            "description": description,
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": p.metadata(params),
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": pm_id,
            "payment_method_configuration_details": None,
            "payment_method_options": {
                "card": {
                    "installments": None,
                    "mandate_options": None,
                    "network": None,
                    "request_three_d_secure": "automatic",
                }
            },
            "payment_method_types": ["card"],
            "processing": None,
            "receipt_email": p.text(params, "receipt_email", max_len=200),
            "review": None,
            "setup_future_usage": None,
            "shipping": None,
            "source": None,
            "statement_descriptor": p.text(params, "statement_descriptor", max_len=22),
            "statement_descriptor_suffix": p.text(
                params, "statement_descriptor_suffix", max_len=22
            ),
            "status": "requires_confirmation" if pm_id else "requires_payment_method",
            "transfer_data": None,
            "transfer_group": None,
        }
        with self.store.transaction():
            self.store.insert("payment_intent", pi_id, created, pi, {}, self._pi_attrs(pi))
            self._emit("payment_intent.created", pi)
        if confirm:
            assert pm is not None
            return self._confirm(pi_id, pm)
        return pi

    @staticmethod
    def _missing_pm() -> StripeError:
        return invalid(
            "You cannot confirm this PaymentIntent because it's missing a payment method. "
            "Specify a payment method with `payment_method`.",
            code="payment_intent_unexpected_state",
        )

    def retrieve_payment_intent(self, pi_id: str) -> Json:
        return self._load(pi_id, "payment_intent", "payment_intent").data

    def confirm_payment_intent(self, pi_id: str, params: Params) -> Json:
        p.check_unknown(
            params,
            {
                "payment_method",
                "return_url",
                "off_session",
                "receipt_email",
                "error_on_requires_action",
                "use_stripe_sdk",
                "capture_method",
            },
        )
        stored = self._load(pi_id, "payment_intent", "payment_intent")
        pi = stored.data
        if pi["status"] not in _PI_CONFIRMABLE:
            raise unexpected_state("PaymentIntent", "confirmed", pi["status"], _PI_CONFIRMABLE)
        pm_id = p.text(params, "payment_method", max_len=100) or pi["payment_method"]
        if not pm_id:
            raise self._missing_pm()
        pm = self._load(pm_id, "payment_method", "PaymentMethod", "payment_method")
        capture_method = p.text(
            params, "capture_method", choices=("automatic", "automatic_async", "manual")
        )
        if capture_method:
            pi["capture_method"] = capture_method
            self.store.update(pi_id, pi)
        return self._confirm(pi_id, pm)

    def _confirm(self, pi_id: str, pm: StoredObject) -> Json:
        """Authorize (and capture unless manual) with the card's test behaviour. A decline is
        committed (charge, PaymentIntent state, events) before its 402 is raised."""
        with self.store.transaction():
            outcome = self._authorize(pi_id, pm)
        if isinstance(outcome, StripeError):
            raise outcome
        return outcome

    def _authorize(self, pi_id: str, pm: StoredObject) -> Json | StripeError:
        with self.store.transaction():
            stored = self._load(pi_id, "payment_intent", "payment_intent")
            pi = stored.data
            if pm.private.get("used_by") not in (None, pi_id):
                raise invalid(
                    "The provided PaymentMethod was previously used with a PaymentIntent "
                    "without Customer attachment. It may not be used again.",
                    param="payment_method",
                    code="payment_method_unexpected_state",
                )
            private = dict(pm.private)
            private["used_by"] = pi_id
            self.store.update(pm.id, pm.data, private)
            card = pm.private["card"]
            decline = DECLINES.get(card["outcome"])
            now = self.now()
            charge_id = new_id("ch", 24)
            manual = pi["capture_method"] == "manual"
            checks = dict(pm.data["card"]["checks"])
            if card["cvc_provided"]:
                checks["cvc_check"] = (
                    "fail" if decline and decline.code == "incorrect_cvc" else "pass"
                )
            charge: Json = {
                "id": charge_id,
                "object": "charge",
                "amount": pi["amount"],
                "amount_captured": 0,
                "amount_refunded": 0,
                "balance_transaction": None,
                "billing_details": pm.data["billing_details"],
                "captured": False,
                "created": now,
                "currency": pi["currency"],
                "description": pi["description"],
                "disputed": False,
                "failure_code": None,
                "failure_message": None,
                "livemode": False,
                "metadata": dict(pi["metadata"]),
                "outcome": None,
                "paid": False,
                "payment_intent": pi_id,
                "payment_method": pm.id,
                "payment_method_details": {
                    "card": {
                        "amount_authorized": None,
                        "brand": card["brand"],
                        "checks": checks,
                        "country": card["country"],
                        "exp_month": card["exp_month"],
                        "exp_year": card["exp_year"],
                        "fingerprint": card["fingerprint"],
                        "funding": card["funding"],
                        "last4": card["last4"],
                        "network": card["brand"],
                        "three_d_secure": None,
                        "wallet": None,
                    },
                    "type": "card",
                },
                "receipt_email": pi["receipt_email"],
                "refunded": False,
                "status": "pending",
            }
            pi["latest_charge"] = charge_id
            if decline is not None:
                charge.update(
                    failure_code=decline.code,
                    failure_message=decline.message,
                    status="failed",
                    outcome={
                        "network_status": decline.network_status,
                        "reason": decline.decline_code,
                        "risk_level": "normal",
                        "seller_message": "The bank did not return any further details with "
                        "this decline.",
                        "type": decline.outcome_type,
                    },
                )
                error_body: Json = {
                    "charge": charge_id,
                    "code": decline.code,
                    "decline_code": decline.decline_code,
                    "doc_url": "https://stripe.com/docs/error-codes/"
                    + decline.code.replace("_", "-"),
                    "message": decline.message,
                    "payment_method": pm.data,
                    "type": "card_error",
                }
                if decline.param:
                    error_body["param"] = decline.param
                pi.update(
                    status="requires_payment_method",
                    payment_method=None,
                    last_payment_error=error_body,
                )
                self.store.insert("charge", charge_id, now, charge, {}, {"payment_intent": pi_id})
                self.store.update(pi_id, pi, stored.private, self._pi_attrs(pi))
                self._emit("charge.failed", charge)
                self._emit("payment_intent.payment_failed", pi)
                error = StripeError(
                    402,
                    decline.message,
                    type="card_error",
                    code=decline.code,
                    param=decline.param,
                    decline_code=decline.decline_code,
                    extra={"charge": charge_id, "payment_intent": pi, "payment_method": pm.data},
                )
                error.executed = True
                return error
            charge.update(
                paid=True,
                status="succeeded",
                outcome={
                    "network_status": "approved_by_network",
                    "reason": None,
                    "risk_level": "normal",
                    "seller_message": "Payment complete.",
                    "type": "authorized",
                },
            )
            charge["payment_method_details"]["card"]["amount_authorized"] = pi["amount"]
            pi.update(payment_method=pm.id, last_payment_error=None)
            if manual:
                pi.update(status="requires_capture", amount_capturable=pi["amount"])
                self.store.insert("charge", charge_id, now, charge, {}, {"payment_intent": pi_id})
                self.store.update(pi_id, pi, stored.private, self._pi_attrs(pi))
                self._emit("charge.succeeded", charge)
                self._emit("payment_intent.amount_capturable_updated", pi)
                return pi
            charge.update(captured=True, amount_captured=pi["amount"])
            charge["balance_transaction"] = self._balance_transaction(
                charge_id, "charge", pi["amount"], pi["currency"], pi_id, pi["metadata"]
            )
            pi.update(status="succeeded", amount_received=pi["amount"])
            self.store.insert("charge", charge_id, now, charge, {}, {"payment_intent": pi_id})
            self.store.update(pi_id, pi, stored.private, self._pi_attrs(pi))
            self._emit("charge.succeeded", charge)
            self._emit("payment_intent.succeeded", pi)
            return pi

    def _balance_transaction(
        self,
        source: str,
        kind: str,
        amount: int,
        currency: str,
        pi_id: str,
        metadata: Mapping[str, str],
    ) -> str:
        txn_id = new_id("txn", 24)
        now = self.now()
        fee = self.options.fee.fee(amount) if kind == "charge" else 0
        signed = amount if kind == "charge" else -amount
        txn: Json = {
            "id": txn_id,
            "object": "balance_transaction",
            "amount": signed,
            "available_on": now + 2 * 86400,
            "created": now,
            "currency": currency,
            "description": None,
            "exchange_rate": None,
            "fee": fee,
            "fee_details": (
                [
                    {
                        "amount": fee,
                        "application": None,
                        "currency": currency,
                        "description": "Sandbox processing fees",
                        "type": "stripe_fee",
                    }
                ]
                if fee
                else []
            ),
            "net": signed - fee,
            "reporting_category": kind,
            "source": source,
            "status": "pending",
            "type": kind,
        }
        self.store.insert(
            "balance_transaction",
            txn_id,
            now,
            txn,
            {"payment_intent": pi_id, "reference": metadata.get("reference", "")},
            {"type": kind, "source": source},
        )
        return txn_id

    def capture_payment_intent(self, pi_id: str, params: Params) -> Json:
        p.check_unknown(params, {"amount_to_capture", "metadata", "final_capture"})
        with self.store.transaction():
            stored = self._load(pi_id, "payment_intent", "payment_intent")
            pi = stored.data
            if pi["status"] != PaymentIntentStatus.requires_capture:
                raise unexpected_state(
                    "PaymentIntent", "captured", pi["status"], ("requires_capture",)
                )
            amount = (
                parse_amount(params.get("amount_to_capture"), "amount_to_capture", required=False)
                or pi["amount_capturable"]
            )
            if amount > pi["amount_capturable"]:
                raise invalid(
                    "The amount_to_capture must be less than or equal to the amount_capturable "
                    f"of the PaymentIntent ({pi['amount_capturable']}).",
                    param="amount_to_capture",
                    code="amount_too_large",
                )
            metadata = p.metadata(params)
            if metadata:
                pi["metadata"] = {**pi["metadata"], **metadata}
            charge_stored = self._load(pi["latest_charge"], "charge", "charge")
            charge = charge_stored.data
            charge.update(
                captured=True,
                amount_captured=amount,
                # The uncaptured rest is released; Stripe reports it as refunded on the charge.
                amount_refunded=pi["amount"] - amount,
            )
            charge["balance_transaction"] = self._balance_transaction(
                charge["id"], "charge", amount, pi["currency"], pi_id, pi["metadata"]
            )
            pi.update(status="succeeded", amount_received=amount, amount_capturable=0)
            self.store.update(charge["id"], charge)
            self.store.update(pi_id, pi, stored.private, self._pi_attrs(pi))
            self._emit("charge.captured", charge)
            self._emit("payment_intent.succeeded", pi)
            return pi

    def cancel_payment_intent(self, pi_id: str, params: Params) -> Json:
        p.check_unknown(params, {"cancellation_reason"})
        reason = p.text(
            params,
            "cancellation_reason",
            choices=("duplicate", "fraudulent", "requested_by_customer", "abandoned"),
        )
        with self.store.transaction():
            stored = self._load(pi_id, "payment_intent", "payment_intent")
            pi = stored.data
            if pi["status"] not in _PI_CANCELABLE:
                raise unexpected_state("PaymentIntent", "canceled", pi["status"], _PI_CANCELABLE)
            self._cancel(stored, reason)
            return pi

    def _cancel(self, stored: StoredObject, reason: str | None) -> None:
        pi = stored.data
        if pi["status"] == PaymentIntentStatus.requires_capture and pi["latest_charge"]:
            charge = self._load(pi["latest_charge"], "charge", "charge").data
            charge.update(amount_refunded=charge["amount"], refunded=True)
            self.store.update(charge["id"], charge)
        pi.update(
            status="canceled",
            canceled_at=self.now(),
            cancellation_reason=reason,
            amount_capturable=0,
        )
        self.store.update(pi["id"], pi, stored.private, self._pi_attrs(pi))
        self._emit("payment_intent.canceled", pi)

    def list_payment_intents(self, params: Params) -> Json:
        p.check_unknown(params, {"limit", "starting_after", "ending_before", "created", "customer"})
        if params.get("customer"):
            return p.list_response("/v1/payment_intents", [], False)
        return self._list("payment_intent", "/v1/payment_intents", params, {})

    def search_payment_intents(self, params: Params) -> Json:
        """Stripe's search query language, the subset FinCore needs: clauses
        `metadata['key']:'value'`, `status:'…'`, `currency:'…'`, `amount:123`, joined by AND."""
        p.check_unknown(params, {"query", "limit", "page"})
        query = p.text(params, "query", required=True, max_len=1000)
        assert query is not None
        attrs: dict[str, str] = {}
        for clause in re.split(r"\s+AND\s+", query.strip()):
            match = _SEARCH_CLAUSE.fullmatch(clause)
            if match is None:
                raise invalid(
                    "The sandbox supports search clauses metadata['key']:'value', "
                    "status:'value', currency:'value' and amount:number, joined by AND.",
                    param="query",
                )
            meta, key, field_name, text, number = match.groups()
            value = text if text is not None else number
            attrs[f"metadata.{key}" if meta else field_name] = value
        limit = p.integer(params, "limit", 1, 100, 10)
        assert limit is not None
        page = p.text(params, "page", max_len=100)
        items, has_more = self.store.list_objects(
            "payment_intent", limit=limit, starting_after=page, attrs=attrs
        )
        return {
            "object": "search_result",
            "data": [item.data for item in items],
            "has_more": has_more,
            "next_page": items[-1].id if has_more and items else None,
            "url": "/v1/payment_intents/search",
        }

    def _list(self, obj_type: str, url: str, params: Params, attrs: Mapping[str, str]) -> Json:
        limit = p.integer(params, "limit", 1, 100, 10)
        assert limit is not None
        starting_after = p.text(params, "starting_after", max_len=100)
        ending_before = p.text(params, "ending_before", max_len=100)
        if starting_after and ending_before:
            raise invalid("starting_after and ending_before are exclusive.", param="ending_before")
        for cursor in (starting_after, ending_before):
            if cursor is not None:
                self._load(cursor, obj_type, obj_type.replace("_", " "), "starting_after")
        items, has_more = self.store.list_objects(
            obj_type,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
            created=p.created_filter(params),
            attrs=attrs,
        )
        return p.list_response(url, [item.data for item in items], has_more)

    # -------------------------------------------------------------- charges, balance

    def retrieve_charge(self, charge_id: str) -> Json:
        return self._load(charge_id, "charge", "charge").data

    def list_charges(self, params: Params) -> Json:
        p.check_unknown(
            params, {"limit", "starting_after", "ending_before", "created", "payment_intent"}
        )
        attrs = {}
        if params.get("payment_intent"):
            attrs["payment_intent"] = str(params["payment_intent"])
        return self._list("charge", "/v1/charges", params, attrs)

    def retrieve_balance_transaction(self, txn_id: str) -> Json:
        return self._load(txn_id, "balance_transaction", "balance transaction").data

    def list_balance_transactions(self, params: Params) -> Json:
        p.check_unknown(
            params, {"limit", "starting_after", "ending_before", "created", "type", "source"}
        )
        attrs = {name: str(params[name]) for name in ("type", "source") if params.get(name)}
        return self._list("balance_transaction", "/v1/balance_transactions", params, attrs)

    # -------------------------------------------------------------- refunds

    def create_refund(self, params: Params) -> Json:
        p.check_unknown(params, {"payment_intent", "charge", "amount", "reason", "metadata"})
        pi_id = p.text(params, "payment_intent", max_len=100)
        charge_id = p.text(params, "charge", max_len=100)
        if not pi_id and not charge_id:
            raise missing("payment_intent")
        reason = p.text(
            params, "reason", choices=("duplicate", "fraudulent", "requested_by_customer")
        )
        metadata = p.metadata(params)
        amount = parse_amount(params.get("amount"), required=False)
        with self.store.transaction():
            if charge_id:
                charge_stored = self._load(charge_id, "charge", "charge", "charge")
                pi_id = pi_id or charge_stored.data["payment_intent"]
            stored = self._load(pi_id or "", "payment_intent", "payment_intent", "payment_intent")
            pi = stored.data
            if pi["status"] != PaymentIntentStatus.succeeded or not pi["latest_charge"]:
                raise invalid(
                    f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                    param="payment_intent",
                    code="charge_not_refundable",
                )
            charge = self._load(pi["latest_charge"], "charge", "charge").data
            if charge_id and charge_id != charge["id"]:
                raise invalid("The charge does not belong to this PaymentIntent.", param="charge")
            refunded = int(self._charge_private(charge["id"]).get("refunds_total", 0))
            remaining = charge["amount_captured"] - refunded
            if remaining <= 0:
                raise invalid(
                    f"Charge {charge['id']} has already been refunded.",
                    param="amount" if amount else None,
                    code="charge_already_refunded",
                )
            amount = remaining if amount is None else amount
            if amount > remaining:
                raise invalid(
                    f"Refund amount ({format_amount(amount, charge['currency'])}) is greater "
                    "than unrefunded amount on charge "
                    f"({format_amount(remaining, charge['currency'])})",
                    param="amount",
                    code="amount_too_large",
                )
            refund_id = new_id("re", 24)
            now = self.now()
            refund: Json = {
                "id": refund_id,
                "object": "refund",
                "amount": amount,
                "balance_transaction": self._balance_transaction(
                    refund_id, "refund", amount, charge["currency"], pi["id"], pi["metadata"]
                ),
                "charge": charge["id"],
                "created": now,
                "currency": charge["currency"],
                "destination_details": {"card": {"type": "refund"}, "type": "card"},
                "metadata": metadata,
                "payment_intent": pi["id"],
                "reason": reason,
                "receipt_number": None,
                "source_transfer_reversal": None,
                "status": "succeeded",
                "transfer_reversal": None,
            }
            self.store.insert(
                "refund",
                refund_id,
                now,
                refund,
                {},
                {"payment_intent": pi["id"], "charge": charge["id"]},
            )
            previous = {
                "amount_refunded": charge["amount_refunded"],
                "refunded": charge["refunded"],
            }
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
            self.store.update(charge["id"], charge, {"refunds_total": refunded + amount})
            self._emit("refund.created", refund)
            self._emit("charge.refunded", charge, previous)
            return refund

    def _charge_private(self, charge_id: str) -> dict[str, Any]:
        stored = self.store.get(charge_id)
        return dict(stored.private) if stored else {}

    def retrieve_refund(self, refund_id: str) -> Json:
        return self._load(refund_id, "refund", "refund").data

    def list_refunds(self, params: Params) -> Json:
        p.check_unknown(
            params,
            {"limit", "starting_after", "ending_before", "created", "payment_intent", "charge"},
        )
        attrs = {
            name: str(params[name]) for name in ("payment_intent", "charge") if params.get(name)
        }
        return self._list("refund", "/v1/refunds", params, attrs)

    # -------------------------------------------------------------- checkout sessions

    def create_checkout_session(self, params: Params) -> Json:
        p.check_unknown(
            params,
            {
                "mode",
                "line_items",
                "success_url",
                "cancel_url",
                "client_reference_id",
                "customer_email",
                "metadata",
                "payment_intent_data",
                "expires_at",
                "payment_method_types",
                "locale",
                "submit_type",
                "ui_mode",
            },
        )
        mode = p.text(params, "mode", required=True, choices=("payment", "setup", "subscription"))
        if mode != "payment":
            raise invalid("The sandbox supports only mode=payment.", param="mode")
        ui_mode = p.text(params, "ui_mode", choices=("hosted",)) or "hosted"
        success_url = p.url(params, "success_url", required=True)
        cancel_url = p.url(params, "cancel_url", required=False)
        raw_items = params.get("line_items")
        if isinstance(raw_items, Mapping):  # {"0": {...}} when keys were not consecutive
            raw_items = list(raw_items.values())
        if not raw_items or not isinstance(raw_items, list):
            raise missing("line_items")
        if len(raw_items) > 100:
            raise invalid("At most 100 line items.", param="line_items")
        items: list[Json] = []
        currency: str | None = None
        total = 0
        for index, raw in enumerate(raw_items):
            label = f"line_items[{index}]"
            if not isinstance(raw, Mapping):
                raise invalid(f"Invalid object: {label}", param=label)
            p.check_unknown(raw, {"price_data", "quantity", "price"}, label)
            if raw.get("price"):
                raise invalid("The sandbox has no Prices: use price_data.", param=f"{label}[price]")
            price = p.obj(raw, "price_data")
            if not price:
                raise missing(f"{label}[price_data]")
            p.check_unknown(
                price, {"currency", "unit_amount", "product_data"}, f"{label}[price_data]"
            )
            item_currency = parse_currency(price.get("currency"), f"{label}[price_data][currency]")
            if currency is not None and item_currency != currency:
                raise invalid("All line items must have the same currency.", param=label)
            currency = item_currency
            unit = parse_amount(price.get("unit_amount"), f"{label}[price_data][unit_amount]")
            assert unit is not None
            quantity = p.integer(raw, "quantity", 1, 10_000, None)
            if quantity is None:
                raise missing(f"{label}[quantity]")
            product = p.obj(price, "product_data")
            name = p.text(
                product,
                "name",
                required=True,
                max_len=250,
                param=f"{label}[price_data][product_data][name]",
            )
            p.no_card_data(name, f"{label}[price_data][product_data][name]")
            items.append(
                {"name": name, "unit_amount": unit, "quantity": quantity, "amount": unit * quantity}
            )
            total += unit * quantity
        if total > 99_999_999:
            raise invalid(
                "The total amount is too large.", param="line_items", code="amount_too_large"
            )
        assert currency is not None
        now = self.now()
        expires_at = p.integer(params, "expires_at", 0, 2**40)
        if expires_at is None:
            expires_at = now + self.options.default_session_ttl_s
        elif not (
            now + self.options.min_session_ttl_s
            <= expires_at
            <= now + self.options.max_session_ttl_s
        ):
            raise invalid(
                "The `expires_at` timestamp must be between "
                f"{self.options.min_session_ttl_s // 60} minutes and "
                f"{self.options.max_session_ttl_s // 3600} hours from the Checkout Session "
                "creation.",
                param="expires_at",
            )
        pi_data = p.obj(params, "payment_intent_data")
        p.check_unknown(
            pi_data, {"metadata", "capture_method", "description"}, "payment_intent_data"
        )
        capture_method = (
            p.text(
                pi_data,
                "capture_method",
                choices=("automatic", "automatic_async", "manual"),
                param="payment_intent_data[capture_method]",
            )
            or "automatic_async"
        )
        pi_description = p.text(pi_data, "description", max_len=1000)
        p.no_card_data(pi_description, "payment_intent_data[description]")
        client_reference_id = p.text(params, "client_reference_id", max_len=200)
        p.no_card_data(client_reference_id, "client_reference_id")
        session_id = test_mode_id("cs")
        session: Json = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": total,
            "amount_total": total,
            "cancel_url": cancel_url,
            "client_reference_id": client_reference_id,
            "created": now,
            "currency": currency,
            "customer": None,
            "customer_email": p.text(params, "customer_email", max_len=200),
            "expires_at": expires_at,
            "livemode": False,
            "locale": p.text(params, "locale", max_len=10),
            "metadata": p.metadata(params),
            "mode": "payment",
            "payment_intent": None,
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "status": "open",
            "success_url": success_url,
            "ui_mode": ui_mode,
            "url": f"{self.options.public_url}/c/pay/{session_id}",
        }
        private = {
            "line_items": items,
            "pi_metadata": p.metadata(pi_data),
            "capture_method": capture_method,
            "pi_description": pi_description,
        }
        self.store.insert("checkout_session", session_id, now, session, private, {"status": "open"})
        return session

    def retrieve_checkout_session(self, session_id: str) -> Json:
        return self._fresh_session(session_id).data

    def list_checkout_sessions(self, params: Params) -> Json:
        p.check_unknown(
            params,
            {"limit", "starting_after", "ending_before", "created", "payment_intent", "status"},
        )
        attrs = {
            name: str(params[name]) for name in ("payment_intent", "status") if params.get(name)
        }
        return self._list("checkout_session", "/v1/checkout/sessions", params, attrs)

    def _fresh_session(self, session_id: str) -> StoredObject:
        """The session, expired first if its time has passed (so no caller sees it open)."""
        stored = self._load(session_id, "checkout_session", "checkout session", "session")
        if stored.data["status"] == SessionStatus.open and stored.data["expires_at"] <= self.now():
            self._expire(stored)
            stored = self._load(session_id, "checkout_session", "checkout session", "session")
        return stored

    def _expire(self, stored: StoredObject) -> Json:
        with self.store.transaction():
            session = stored.data
            session["status"] = "expired"
            pi_id = session.get("payment_intent")
            if pi_id:
                pi = self._load(pi_id, "payment_intent", "payment_intent")
                if pi.data["status"] in _PI_CANCELABLE:
                    self._cancel(pi, "abandoned")
            self.store.update(session["id"], session, stored.private, self._session_attrs(session))
            self._emit("checkout.session.expired", session)
            return session

    @staticmethod
    def _session_attrs(session: Json) -> dict[str, str]:
        attrs = {"status": session["status"]}
        if session.get("payment_intent"):
            attrs["payment_intent"] = session["payment_intent"]
        return attrs

    def expire_checkout_session(self, session_id: str) -> Json:
        with self.store.transaction():
            stored = self._fresh_session(session_id)
            if stored.data["status"] != SessionStatus.open:
                raise invalid(
                    f'Only Checkout Sessions with a status in ["open"] can be expired. '
                    f'This session has a status of "{stored.data["status"]}".',
                    code="checkout_session_unexpected_state",
                )
            return self._expire(stored)

    def expire_due_sessions(self) -> int:
        """Expire every open session whose `expires_at` has passed; returns how many."""
        due: list[StoredObject] = []
        cursor: str | None = None
        while True:
            page, has_more = self.store.list_objects(
                "checkout_session", limit=100, starting_after=cursor, attrs={"status": "open"}
            )
            due.extend(s for s in page if s.data["expires_at"] <= self.now())
            if not has_more or not page:
                break
            cursor = page[-1].id
        for stored in due:
            self._expire(stored)
        return len(due)

    def checkout_page(self, session_id: str) -> tuple[Json, dict[str, Any]]:
        """The session and its line items for the hosted page."""
        stored = self._fresh_session(session_id)
        return stored.data, stored.private

    def pay_checkout_session(self, session_id: str, form: Params) -> str:
        """Pay an open session from the hosted page's card form; returns the URL to redirect
        to. Raises `SessionClosed` when it is complete or expired, `StripeError` on a bad card or
        a decline (the session stays open for another try)."""
        with self.store.transaction():
            stored = self._fresh_session(session_id)
            session, private = stored.data, stored.private
            if session["status"] != SessionStatus.open:
                raise SessionClosed(session["status"])
            month, _, year = str(form.get("exp") or "").replace(" ", "").partition("/")
            facts = read_card(
                form.get("number"),
                month,
                year,
                form.get("cvc"),
                today=self.today(),
                fingerprint_key=self.options.fingerprint_key,
                param_prefix="",
            )
            name = p.text(form, "name", max_len=200)
            email = p.text(form, "email", max_len=200) or session["customer_email"]
            p.no_card_data(name, "name")
            p.no_card_data(email, "email")
            pm = self._store_payment_method(facts, name, email, {})
            pm_stored = self._load(pm["id"], "payment_method", "PaymentMethod")
            pi_id = session["payment_intent"]
            if pi_id is None:
                metadata = dict(private["pi_metadata"])
                params: dict[str, Any] = {
                    "amount": str(session["amount_total"]),
                    "currency": session["currency"],
                    "capture_method": private["capture_method"],
                    "metadata": metadata,
                }
                if private.get("pi_description"):
                    params["description"] = private["pi_description"]
                pi = self.create_payment_intent(params)
                pi_id = pi["id"]
                session["payment_intent"] = pi_id
                self.store.update(session_id, session, private, self._session_attrs(session))
        # The decline (if any) is committed with the session's link to its PaymentIntent.
        pi = self._confirm(pi_id, pm_stored)
        with self.store.transaction():
            stored = self._load(session_id, "checkout_session", "checkout session")
            session = stored.data
            session.update(
                status="complete",
                payment_status="paid" if pi["status"] == "succeeded" else "unpaid",
                customer_email=email,
            )
            self.store.update(session_id, session, stored.private, self._session_attrs(session))
            self._emit("checkout.session.completed", session)
        return str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session_id)

    # -------------------------------------------------------------- events

    def retrieve_event(self, event_id: str) -> Json:
        return self._load(event_id, "event", "event").data

    def list_events(self, params: Params) -> Json:
        p.check_unknown(
            params, {"limit", "starting_after", "ending_before", "created", "type", "types"}
        )
        attrs = {"type": str(params["type"])} if params.get("type") else {}
        return self._list("event", "/v1/events", params, attrs)

    # -------------------------------------------------------------- settlement

    def settlement_rows(self, day: date) -> list[SettlementRow]:
        start, end = utc_day_bounds(day)
        rows = []
        for txn in self.store.objects_between("balance_transaction", start, end):
            data = txn.data
            rows.append(
                SettlementRow(
                    psp_reference=(
                        txn.private["payment_intent"]
                        if data["type"] == "charge"
                        else data["source"]
                    ),
                    type=data["type"],
                    amount=data["amount"],
                    fee=data["fee"],
                    net=data["net"],
                    currency=data["currency"],
                    date=day,
                    payment_intent=txn.private["payment_intent"],
                    balance_transaction=data["id"],
                    reference=txn.private.get("reference", ""),
                )
            )
        return rows

    def write_settlement(self, day: date) -> tuple[str, int]:
        rows = self.settlement_rows(day)
        return self.sink.write(day, rows), len(rows)

    def write_missing_settlements(self, days_back: int = 7) -> list[str]:
        """The daily job: files for the last `days_back` finished UTC days that lack one."""
        written = []
        today = self.today()
        for offset in range(days_back, 0, -1):
            day = today - timedelta(days=offset)
            if not self.sink.exists(day):
                start, end = utc_day_bounds(day)
                if self.store.objects_between("balance_transaction", start, end):
                    written.append(self.write_settlement(day)[0])
        return written

    # -------------------------------------------------------------- webhooks admin

    def set_endpoints(self, source: str, endpoints: Sequence[WebhookEndpoint]) -> None:
        self.store.replace_endpoints(source, endpoints)
        self._endpoints = None

    def resend_event(self, event_id: str) -> int:
        event = self._load(event_id, "event", "event")
        now = self.real_time()
        payload = json.dumps(event.data, indent=2).encode()
        count = 0
        for endpoint in self.store.endpoints():
            if endpoint.wants(event.data["type"]):
                self.store.enqueue_delivery(event_id, endpoint, payload, now, "pending", now)
                count += 1
        self.on_enqueued()
        return count

    def advance_clock(self, seconds: float) -> float:
        advance = getattr(self.clock, "advance", None)
        if advance is None:
            raise invalid("This clock cannot be moved.")
        advance(seconds)
        return self.clock.now()


class SessionClosed(Exception):
    """The checkout session is complete or expired: it cannot be paid (one-time use)."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status
