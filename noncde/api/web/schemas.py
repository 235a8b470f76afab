"""noncde.api (non-CDE): the request and response schemas of the HTTP API (the OpenAPI document).

Requests are validated here (unknown parameters are refused, like Stripe); responses are built
by the domain's `to_api()` and documented by the models below, which the schemathesis test
holds them to. Every model carries an example.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from noncde.api.domain.money import CURRENCIES, MAX_AMOUNT


def _integral(value: object) -> object:
    """JSON Schema counts 1.0 as an integer: accept it as 1, but never "1" or true."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Integer fields take JSON integers (and integral floats) only, never strings or booleans.
# (Field before BeforeValidator: the other order loses minimum/maximum in the JSON schema.)
ExpMonth = Annotated[int, Field(strict=True, ge=1, le=12), BeforeValidator(_integral)]
ExpYear = Annotated[int, Field(strict=True, ge=2000, le=2100), BeforeValidator(_integral)]
ExpiresIn = Annotated[int, Field(strict=True, ge=1800, le=86_400), BeforeValidator(_integral)]


Amount = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=MAX_AMOUNT,
        description="A positive integer in the currency's smallest unit (cents for usd).",
        examples=[2000],
    ),
    BeforeValidator(_integral),
]
Currency = Annotated[
    str,
    Field(
        pattern=r"^[a-z]{3}$",
        description="Three-letter ISO-4217 currency code, lowercase.",
        examples=["usd"],
        json_schema_extra={"enum": sorted(CURRENCIES)},
    ),
]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=40)]
MetadataValue = Annotated[str, StringConstraints(max_length=500)]
Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    Field(
        max_length=50,
        description="Up to 50 key-value pairs of your own (keys up to 40, values up to 500 "
        "characters). Never put card data here: it is refused.",
        examples=[{"order_id": "A-1001"}],
    ),
]
Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2000)]


def _check_currency(value: str) -> str:
    if value not in CURRENCIES:
        raise ValueError("unsupported currency")
    return value


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- payment methods


class CardDisplayIn(BaseModel):
    """Display data of a tokenized card, as the card ingress forwards it (no card number)."""

    model_config = ConfigDict(extra="ignore")

    brand: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    last4: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
    exp_month: ExpMonth
    exp_year: ExpYear
    fingerprint: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,128}$")] | None = None
    bin: Annotated[str, StringConstraints(pattern=r"^[0-9]{6,8}$")] | None = None


class PspTokenMethod(_Request):
    """A payment method tokenized in the buyer's browser by the PSP's SDK (SDK flow)."""

    type: Literal["psp_token"]
    token: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{3,255}$")] = Field(
        examples=["pm_card_visa"]
    )


class VaultTokenMethod(_Request):
    """A card tokenized by the FinCore vault; accepted only when the card ingress relays it."""

    type: Literal["vault_token"]
    token: Annotated[str, StringConstraints(pattern=r"^tok_[A-Za-z0-9_]{8,128}$")]
    card: CardDisplayIn | None = None


PaymentMethodIn = Annotated[PspTokenMethod | VaultTokenMethod, Field(discriminator="type")]


# ---------------------------------------------------------------- requests


class CreateChargeRequest(_Request):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "amount": 2000,
                    "currency": "usd",
                    "payment_method": {"type": "psp_token", "token": "pm_card_visa"},
                    "capture": True,
                    "description": "Order A-1001",
                    "metadata": {"order_id": "A-1001"},
                }
            ]
        },
    )

    amount: Amount
    currency: Currency
    payment_method: PaymentMethodIn
    capture: Annotated[bool, Field(strict=True)] = True
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    metadata: Metadata = Field(default_factory=dict)

    _currency = field_validator("currency")(_check_currency)


class CaptureChargeRequest(_Request):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"amount": 1500}]})

    amount: Amount | None = Field(
        default=None, description="Capture less than authorized (the rest is released)."
    )


class CreateRefundRequest(_Request):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"charge": "ch_3Fh2kQ9xLr5TnB8vWc1mZa7P", "amount": 500, "reason": "duplicate"}
            ]
        },
    )

    charge: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    amount: Amount | None = Field(default=None, description="Default: all that remains.")
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None = None


class CreatePaymentSessionRequest(_Request):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "amount": 4200,
                    "currency": "eur",
                    "success_url": "https://shop.example/paid",
                    "cancel_url": "https://shop.example/cart",
                    "expires_in": 1800,
                    "metadata": {"cart": "c-77"},
                }
            ]
        },
    )

    amount: Amount
    currency: Currency
    success_url: Url
    cancel_url: Url
    expires_in: ExpiresIn | None = Field(
        default=None,
        description=(
            "Seconds until the session expires: 1800 (30 minutes, the PSP's minimum) "
            "to 86400 (the default, 24 h)."
        ),
    )
    metadata: Metadata = Field(default_factory=dict)

    _currency = field_validator("currency")(_check_currency)


class MerchantAuthRequest(_Request):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"api_key": "sk_test_4eC39HqLyjWDarjtT1zdp7dcXy9Qw2Zr"}]},
    )

    api_key: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class PspCardIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    brand: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "unknown"
    last4: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")] | None = None
    exp_month: ExpMonth | None = None
    exp_year: ExpYear | None = None


class PspPaymentMethodIn(_Request):
    type: Literal["psp_token"]
    token: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{3,255}$")]
    card: PspCardIn | None = None


SessionId = Annotated[str, StringConstraints(pattern=r"^ps_[A-Za-z0-9]{8,64}$")]
ChargeId = Annotated[str, StringConstraints(pattern=r"^ch_[A-Za-z0-9]{8,64}$")]
RefundId = Annotated[str, StringConstraints(pattern=r"^re_[A-Za-z0-9]{8,64}$")]


PspReference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,255}$")]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,64}$")]
MinorUnits = Annotated[int, Field(strict=True, ge=0, le=MAX_AMOUNT), BeforeValidator(_integral)]


class _PspEvent(_Request):
    """Fields of the gateway's relayed event (docs/gateway.md "Webhooks and the relay
    outbox"); the informational ones are accepted and not stored."""

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,128}$")]
    psp_reference: PspReference | None = None
    amount: Amount | None = None
    currency: Currency | None = None
    decline_code: Code | None = None
    message: Annotated[str, StringConstraints(max_length=500)] | None = None
    psp_event_id: PspReference | None = None
    created: Annotated[int, Field(strict=True, ge=0), BeforeValidator(_integral)] | None = None
    amount_received: MinorUnits | None = None
    amount_capturable: MinorUnits | None = None
    psp_payment_reference: PspReference | None = None
    failure_code: Code | None = None
    payment_status: Code | None = None


class CheckoutSessionEvent(_PspEvent):
    """A hosted session was paid (`payment_method` is the PSP's token) or expired."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "pspevt_1QxY7Z2eZvKYlo2C",
                    "type": "checkout_session.completed",
                    "session_id": "ps_9sQm3LkPz7YwXr2tBv4cNd1F",
                    "psp_reference": "pi_3QxY7Z2eZvKYlo2C1",
                    "amount": 4200,
                    "currency": "eur",
                    "payment_method": {
                        "type": "psp_token",
                        "token": "pm_1QxY7Z2eZvKYlo2C",
                        "card": {
                            "brand": "visa",
                            "last4": "4242",
                            "exp_month": 12,
                            "exp_year": 2030,
                        },
                    },
                }
            ]
        },
    )

    type: Literal["checkout_session.completed", "checkout_session.expired"]
    session_id: SessionId
    payment_method: PspPaymentMethodIn | None = None


class PaymentEvent(_PspEvent):
    """The PSP's outcome for a charge (asynchronous, or a resolution of an unknown one)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "pspevt_2RzA8B3fAwLZmp3D",
                    "type": "payment.failed",
                    "charge_id": "ch_3Fh2kQ9xLr5TnB8vWc1mZa7P",
                    "psp_reference": "pi_3RzA8B3fAwLZmp3D1",
                    "decline_code": "insufficient_funds",
                    "message": "Your card has insufficient funds.",
                }
            ],
            # One of them names the payment (checked by `_names_the_payment` too).
            "anyOf": [
                {"required": ["charge_id"], "properties": {"charge_id": {"type": "string"}}},
                {"required": ["session_id"], "properties": {"session_id": {"type": "string"}}},
            ],
        },
    )

    type: Literal[
        "payment.authorized",
        "payment.succeeded",
        "payment.captured",
        "payment.failed",
        "payment.canceled",
    ]
    charge_id: ChargeId | None = None
    # A hosted session's payment names the session instead: its completion event records it.
    session_id: SessionId | None = None

    @model_validator(mode="after")
    def _names_the_payment(self) -> PaymentEvent:
        if self.charge_id is None and self.session_id is None:
            raise ValueError("charge_id or session_id is required")
        return self


class RefundEvent(_PspEvent):
    """The PSP's outcome for a refund."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "pspevt_3SaB9C4gBxMano4E",
                    "type": "refund.succeeded",
                    "charge_id": "ch_3Fh2kQ9xLr5TnB8vWc1mZa7P",
                    "refund_id": "re_7Hq2mVb9Lx4TzK1wPc8nRf3D",
                    "psp_reference": "re_3SaB9C4gBxMano4E",
                }
            ]
        },
    )

    type: Literal["refund.succeeded", "refund.failed", "refund.pending", "refund.canceled"]
    charge_id: ChargeId
    refund_id: RefundId


PspEventRequest = Annotated[
    CheckoutSessionEvent | PaymentEvent | RefundEvent, Field(discriminator="type")
]


# ---------------------------------------------------------------- responses

_CHARGE_ID = "ch_3Fh2kQ9xLr5TnB8vWc1mZa7P"
_REFUND_EXAMPLE = {
    "id": "re_7Hq2mVb9Lx4TzK1wPc8nRf3D",
    "object": "refund",
    "amount": 500,
    "charge": _CHARGE_ID,
    "currency": "usd",
    "status": "pending",
    "reason": "duplicate",
    "created": 1767225600,
    "failure_code": None,
    "failure_message": None,
    "livemode": False,
}
_CHARGE_EXAMPLE: dict[str, Any] = {
    "id": _CHARGE_ID,
    "object": "charge",
    "amount": 2000,
    "amount_capturable": 0,
    "amount_captured": 0,
    "amount_refunded": 0,
    "captured": False,
    "refunded": False,
    "currency": "usd",
    "status": "processing",
    "capture": True,
    "capture_requested": None,
    "cancel_requested": False,
    "created": 1767225600,
    "description": "Order A-1001",
    "metadata": {"order_id": "A-1001"},
    "flow": "sdk",
    "payment_session": None,
    "payment_method": "pm_card_visa",
    "payment_method_details": {"type": "psp_token", "card": None},
    "failure_code": None,
    "failure_message": None,
    "outcome": {
        "type": "pending",
        "risk_decision": "allow",
        "reasons": [],
        "rules_version": 1,
    },
    "dead_lettered": False,
    "refunds": {"object": "list", "data": [], "has_more": False, "total_count": 0},
    "livemode": False,
}
_SESSION_EXAMPLE = {
    "id": "ps_9sQm3LkPz7YwXr2tBv4cNd1F",
    "object": "payment_session",
    "amount": 4200,
    "currency": "eur",
    "status": "open",
    "url": "https://127.0.0.1:8400/checkout/cs_test_a1B2c3",
    "success_url": "https://shop.example/paid",
    "cancel_url": "https://shop.example/cart",
    "expires_at": 1767227400,
    "created": 1767225600,
    "charge": None,
    "metadata": {"cart": "c-77"},
    "livemode": False,
}
_EVENT_EXAMPLE = {
    "id": "evt_2Kd8sLm4Qp7XvB1zNc9wRt5Y",
    "object": "event",
    "type": "charge.requested",
    "created": 1767225600,
    "data": {"object": {"charge_id": _CHARGE_ID, "amount": 2000, "currency": "usd"}},
    "request": {"id": "req_4f1c2a9b8e7d6c5b4a3f2e1d"},
    "livemode": False,
}


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


class CardDetails(BaseModel):
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str | None
    country: str | None


class PaymentMethodDetails(BaseModel):
    type: Literal["vault_token", "psp_token"]
    card: CardDetails | None


class Outcome(BaseModel):
    type: Literal["pending", "authorized", "manual_review", "blocked", "issuer_declined", "invalid"]
    risk_decision: Literal["allow", "review", "block"] | None
    reasons: list[str]
    rules_version: int | None


class RefundObject(BaseModel):
    model_config = _example(_REFUND_EXAMPLE)

    id: str
    object: Literal["refund"]
    amount: int
    charge: str
    currency: str
    status: Literal["pending", "succeeded", "failed"]
    reason: str | None
    created: int
    failure_code: str | None
    failure_message: str | None
    livemode: bool


class EmbeddedRefunds(BaseModel):
    object: Literal["list"]
    data: list[RefundObject]
    has_more: bool
    total_count: int


class ChargeObject(BaseModel):
    model_config = _example(_CHARGE_EXAMPLE)

    id: str
    object: Literal["charge"]
    amount: int
    amount_capturable: int
    amount_captured: int
    amount_refunded: int
    captured: bool
    refunded: bool
    currency: str
    status: Literal["processing", "requires_capture", "succeeded", "failed", "canceled"]
    capture: bool
    capture_requested: int | None
    cancel_requested: bool
    created: int
    description: str | None
    metadata: dict[str, str]
    flow: Literal["s2s", "sdk", "redirect"]
    payment_session: str | None
    payment_method: str
    payment_method_details: PaymentMethodDetails
    failure_code: str | None
    failure_message: str | None
    outcome: Outcome | None
    dead_lettered: bool
    refunds: EmbeddedRefunds
    livemode: bool


class PaymentSessionObject(BaseModel):
    model_config = _example(_SESSION_EXAMPLE)

    id: str
    object: Literal["payment_session"]
    amount: int
    currency: str
    status: Literal["open", "complete", "expired"]
    url: str | None
    success_url: str
    cancel_url: str
    expires_at: int
    created: int
    charge: str | None
    metadata: dict[str, str]
    livemode: bool


class EventData(BaseModel):
    object: dict[str, Any]


class EventRequestInfo(BaseModel):
    id: str | None


class EventObject(BaseModel):
    model_config = _example(_EVENT_EXAMPLE)

    id: str
    object: Literal["event"]
    type: str
    created: int
    data: EventData
    request: EventRequestInfo
    livemode: bool


class _List(BaseModel):
    object: Literal["list"]
    has_more: bool
    url: str


class ChargeList(_List):
    model_config = _example(
        {"object": "list", "data": [_CHARGE_EXAMPLE], "has_more": False, "url": "/v1/charges"}
    )
    data: list[ChargeObject]


class RefundList(_List):
    model_config = _example(
        {"object": "list", "data": [_REFUND_EXAMPLE], "has_more": False, "url": "/v1/refunds"}
    )
    data: list[RefundObject]


class PaymentSessionList(_List):
    model_config = _example(
        {
            "object": "list",
            "data": [_SESSION_EXAMPLE],
            "has_more": False,
            "url": "/v1/payment_sessions",
        }
    )
    data: list[PaymentSessionObject]


class EventList(_List):
    model_config = _example(
        {"object": "list", "data": [_EVENT_EXAMPLE], "has_more": True, "url": "/v1/events"}
    )
    data: list[EventObject]


class ErrorDetail(BaseModel):
    type: Literal[
        "invalid_request_error",
        "idempotency_error",
        "authentication_error",
        "permission_error",
        "card_error",
        "rate_limit_error",
        "api_error",
    ]
    message: str
    code: str | None = None
    param: str | None = None
    request_id: str | None = None
    charge: str | None = Field(default=None, description="The failed charge (card errors).")
    reasons: list[str] | None = Field(default=None, description="Risk reason codes (blocks).")


class ErrorResponse(BaseModel):
    model_config = _example(
        {
            "error": {
                "type": "invalid_request_error",
                "code": "amount_too_large",
                "message": "The refund amount exceeds what remains refundable (1500).",
                "param": "amount",
            }
        }
    )

    error: ErrorDetail


class RawCardCapabilityOut(BaseModel):
    active: bool
    attestation_expires_at: str | None


class CapabilitiesOut(BaseModel):
    raw_card_data: RawCardCapabilityOut


class MerchantAuthResponse(BaseModel):
    model_config = _example(
        {
            "merchant_id": "mer_5Tg7Lq2Xw9Kz1Pb4Nc8vRm3D",
            "livemode": False,
            "capabilities": {
                "raw_card_data": {"active": True, "attestation_expires_at": "2027-03-31"}
            },
        }
    )

    merchant_id: str
    livemode: bool
    capabilities: CapabilitiesOut


class PspEventResponse(BaseModel):
    model_config = _example(
        {
            "id": "pspevt_1QxY7Z2eZvKYlo2C",
            "object": "psp_event",
            "received": True,
            "applied": True,
            "charge": _CHARGE_ID,
        }
    )

    id: str
    object: Literal["psp_event"]
    received: bool
    applied: bool
    reason: str | None = None
    charge: str | None = None


class WebhookEndpointOut(BaseModel):
    id: str
    merchant_id: str
    url: str
    enabled_events: list[str]
    created: str
    disabled_at: str | None
    secret: str


class WebhookEndpointList(BaseModel):
    model_config = _example(
        {
            "object": "list",
            "data": [
                {
                    "id": "we_8Lm2Qx7Vb4Kp1Tz9Nc3wRd5F",
                    "merchant_id": "mer_5Tg7Lq2Xw9Kz1Pb4Nc8vRm3D",
                    "url": "https://shop.example/webhooks/fincore",
                    "enabled_events": ["*"],
                    "created": "2026-01-01T00:00:00Z",
                    "disabled_at": None,
                    "secret": "whsec_5Wq8Zt2Lm7Xv1Kb4Pn9cRd3F6Hj0Ys2A",
                }
            ],
            "has_more": False,
            "url": "/internal/v1/webhook_endpoints",
        }
    )

    object: Literal["list"]
    data: list[WebhookEndpointOut]
    has_more: bool
    url: str
