"""cde.gateway (CDE): the process entry point and the gateway's internal HTTP API.

`python -m cde.gateway.app` serves the API (TLS, a service identity allow-list per endpoint;
docs/gateway.md); `python -m cde.gateway.app outbox [--requeue-dead]` shows the relay outbox.
The webhook endpoint takes no service token: the PSP's signature is its authentication.
"""

# No `from __future__ import annotations` here: FastAPI must evaluate the endpoint annotations
# (`Annotated[..., Depends(guard)]` names closure variables) when the routes are defined.
import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import Gauge

from audit.domain import AuditUnavailable
from cde.gateway.bootstrap import GatewayRuntime, build_gateway, build_store
from cde.gateway.config import GatewaySettings
from cde.gateway.domain import (
    MAX_UNIX_TIME,
    CardDataRefused,
    CardRejected,
    GatewayError,
    InvalidRequest,
    MethodType,
    PaymentOutcome,
    PaymentRecord,
    PaymentStatus,
    PspAuthenticationError,
    PspError,
    PspIdempotencyError,
    PspRateLimited,
    PspRequestError,
    PspUnavailable,
    RefundRecord,
    SessionRecord,
    WebhookVerificationError,
    check_amount,
    check_currency,
    check_payment_method,
    check_psp_reference,
    check_reference,
)
from cde.gateway.service import Audited, Caller
from fincore.cards import find_card_data, mask_card_numbers
from fincore.identity import ServiceIdentity, ServiceTokenVerifier
from fincore.logs import get_logger
from fincore.process import start_process
from fincore.web import ApiError, create_service_app, error_response, require_service, serve

# Who may call what (interfaces.md "Gateway"; PCI DSS 7.2.5: least privilege per endpoint).
PAYMENT_CALLERS = ("worker",)
CHECKOUT_CALLERS = ("api",)
STATUS_CALLERS = ("worker", "api")
SIGNATURE_HEADER = "stripe-signature"
_log = get_logger("cde.gateway")
Guard = Callable[[Request], Awaitable[ServiceIdentity]]


# ---------------------------------------------------------------- errors


def api_error(exc: Exception) -> ApiError:
    """The Stripe-style error for a gateway, PSP or audit failure (never a submitted value)."""
    if isinstance(exc, GatewayError):
        return ApiError(exc.status, exc.message, type=exc.type, code=exc.code, param=exc.param)
    if isinstance(exc, AuditUnavailable):
        return ApiError(
            503,
            "The audit log is unavailable; the request was not carried out.",
            type="api_error",
            code="audit_unavailable",
        )
    if isinstance(exc, WebhookVerificationError):
        return ApiError(400, "The webhook could not be verified.", code="webhook_signature_invalid")
    if isinstance(exc, PspIdempotencyError):
        return ApiError(409, exc.message, type="idempotency_error", code="idempotency_error")
    if isinstance(exc, CardRejected):
        return ApiError(402, exc.message, type="card_error", code=exc.code)
    if isinstance(exc, PspRequestError):
        status = exc.http_status if exc.http_status and 400 <= exc.http_status < 500 else 400
        if status in (401, 402, 403):
            status = 400
        return ApiError(
            status, exc.message, code=exc.code or "psp_request_refused", param=exc.param
        )
    if isinstance(exc, PspAuthenticationError):
        return ApiError(
            502, "The PSP refused the gateway's credentials.", type="api_error", code="psp_auth"
        )
    if isinstance(exc, PspRateLimited):
        return ApiError(
            429,
            "The PSP asked us to slow down; retry shortly.",
            type="rate_limit_error",
            code="psp_rate_limited",
            headers={"Retry-After": "1"},
        )
    if isinstance(exc, PspUnavailable | PspError):
        return ApiError(
            503,
            "The PSP gave no usable answer; retry with the same reference.",
            type="api_error",
            code="psp_unavailable",
        )
    return ApiError(500, "An internal error occurred.", type="api_error", code="internal_error")


def _install_error_handlers(app: FastAPI) -> None:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        error = api_error(exc)
        if error.status >= 500:
            _log.error("gateway_request_failed", error=type(exc).__name__, code=error.code)
        return error_response(error, getattr(request.state, "request_id", None))

    for kind in (GatewayError, PspError, AuditUnavailable):
        app.add_exception_handler(kind, handler)


# ---------------------------------------------------------------- views


def payment_view(outcome: PaymentOutcome, charge_id: str) -> dict[str, Any]:
    """The answer about one charge (interfaces.md: status, psp_reference, decline_code…)."""
    view: dict[str, Any] = {
        "object": "payment",
        "charge_id": charge_id,
        "status": outcome.status.value,
    }
    optional = {
        "psp_reference": outcome.psp_reference,
        "amount": outcome.amount,
        "currency": outcome.currency,
        "amount_capturable": outcome.amount_capturable,
        "amount_received": outcome.amount_received,
        "amount_refunded": outcome.amount_refunded,
    }
    if outcome.status is PaymentStatus.failed:
        optional.update(
            decline_code=outcome.decline_code,
            failure_code=outcome.failure_code,
            message=outcome.failure_message,
        )
    elif outcome.status is PaymentStatus.unknown:
        optional.update(
            message="The PSP's answer was lost; GET /v1/payments/{charge_id} resolves it."
        )
    view.update({k: v for k, v in optional.items() if v is not None})
    return view


def refund_view(record: RefundRecord) -> dict[str, Any]:
    view: dict[str, Any] = {
        "object": "refund",
        "refund_id": record.refund_id,
        "charge_id": record.charge_id,
        "status": record.status.value,
    }
    optional = {
        "psp_reference": record.psp_reference,
        "amount": record.amount_refunded if record.amount_refunded is not None else record.amount,
        "currency": record.currency,
        "failure_code": record.failure_code,
        "message": record.failure_message,
    }
    view.update({k: v for k, v in optional.items() if v is not None})
    return view


def session_view(record: SessionRecord) -> dict[str, Any]:
    return {
        "object": "checkout_session",
        "session_id": record.session_id,
        "psp_session_id": record.psp_session_id,
        "url": record.url,
        "status": record.status.value,
        "expires_at": int(record.expires_at) if record.expires_at else None,
    }


# ---------------------------------------------------------------- request bodies


async def _body(
    request: Request, allowed: Iterable[str], caller: Caller, audit: Audited
) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("The request body is not valid JSON.", code="body_invalid") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="body_invalid")
    if find_card_data(body):
        # PCI DSS 3.2.1 (checklist A2): the gateway takes tokens only; a card-like value in
        # any field is refused before anything else, audited, and never logged.
        raise await audit.refusal(
            caller,
            CardDataRefused(
                "Card data is not accepted here: send a vault or PSP token.",
                code="card_data_not_accepted",
            ),
            target=None,
        )
    allow = set(allowed)
    unknown = sorted(str(k) for k in body if k not in allow)
    if unknown:
        param = unknown[0] if unknown[0].isidentifier() and len(unknown[0]) <= 40 else None
        raise InvalidRequest("Received unknown parameter.", code="parameter_unknown", param=param)
    return body


def _optional_str(body: dict[str, Any], name: str, limit: int = 500) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidRequest(f"Invalid value for {name}.", code="parameter_invalid", param=name)
    return value


def _url(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = _optional_str(body, name, 2048)
    if value is None:
        if required:
            raise InvalidRequest(
                f"Missing required param: {name}.", code="parameter_missing", param=name
            )
        return None
    if not value.startswith(("https://", "http://")):
        raise InvalidRequest(f"{name} must be an http(s) URL.", code="url_invalid", param=name)
    return value


def _timestamp(value: object) -> float | None:
    """`expires_at` as a unix timestamp (int) or an ISO-8601 time with a zone."""
    if value is None:
        return None
    # Bounded to what a datetime holds: a larger number used to end in a 500 when the session
    # was opened at the PSP (found by tests/security fuzzing).
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_UNIX_TIME:
        return float(value)
    if isinstance(value, str):
        from datetime import datetime

        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None and moment.timestamp() > 0:
            return moment.timestamp()
    raise InvalidRequest(
        "expires_at must be a unix timestamp or an ISO-8601 time with a zone.",
        code="parameter_invalid",
        param="expires_at",
    )


# ---------------------------------------------------------------- the app


def create_gateway_app(
    runtime: GatewayRuntime, verifier: ServiceTokenVerifier, *, manage_runtime: bool = True
) -> FastAPI:
    """The gateway's internal API (docs/gateway.md)."""
    service = runtime.service
    audited = service.audited

    def caller_of(request: Request, identity: ServiceIdentity | None) -> Caller:
        client = request.client
        return Caller(
            name=identity.name if identity else "unknown",
            request_id=getattr(request.state, "request_id", None),
            origin_ip=client.host if client else None,
        )

    async def on_refused(request: Request, reason: str, identity: ServiceIdentity | None) -> None:
        # PCI DSS 10.2.1.4: every refused caller is an audit record.
        # The path is the unverified caller's: a card-like run in it is masked, or the audit
        # log would refuse the record and the refusal go unaudited (tests/security).
        target = next(iter(request.path_params.values()), None)
        masked = mask_card_numbers(target) if target else None
        await service.refused_caller(caller_of(request, identity), reason, masked)

    def guard(allowed: Iterable[str]) -> Guard:
        return require_service(verifier, allowed, on_refused=on_refused)

    payment_guard = guard(PAYMENT_CALLERS)
    checkout_guard = guard(CHECKOUT_CALLERS)
    status_guard = guard(STATUS_CALLERS)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            await runtime.start()
        try:
            yield
        finally:
            if manage_runtime:
                await runtime.close()

    app = create_service_app(
        "gateway",
        readiness={
            "store": runtime.store.ping,
            "audit": lambda: runtime.audit.available,
            "relay": runtime.relay_running,
        },
        max_body=runtime.settings.max_body,
        lifespan=lifespan,
    )
    _install_error_handlers(app)
    registry = app.state.metrics_registry
    pending = Gauge(
        "gateway_relay_outbox_pending", "Relay events not yet stored by the API.", registry=registry
    )
    pending.set_function(lambda: runtime.relay.counts.get("pending", 0))
    dead = Gauge(
        "gateway_relay_outbox_dead", "Relay events given up on (see docs).", registry=registry
    )
    dead.set_function(lambda: runtime.relay.counts.get("dead", 0))

    @app.post("/v1/authorizations")
    async def authorizations(
        request: Request, identity: Annotated[ServiceIdentity, Depends(payment_guard)]
    ) -> JSONResponse:
        caller = caller_of(request, identity)
        body = await _body(
            request,
            (
                "charge_id",
                "merchant_id",
                "amount",
                "currency",
                "capture",
                "payment_method",
                "description",
            ),
            caller,
            audited,
        )
        capture = body.get("capture", True)
        if not isinstance(capture, bool):
            raise InvalidRequest(
                "capture must be true or false.", code="parameter_invalid", param="capture"
            )
        method_type, token = check_payment_method(body.get("payment_method"))
        now = time.time()
        amount = check_amount(body.get("amount"))
        assert amount is not None
        record = PaymentRecord(
            charge_id=check_reference("charge_id", body.get("charge_id")),
            merchant_id=check_reference("merchant_id", body.get("merchant_id")),
            amount=amount,
            currency=check_currency(body.get("currency")),
            capture=capture,
            method_type=MethodType(method_type),
            method_token=token,
            description=_optional_str(body, "description"),
            created_at=now,
            updated_at=now,
        )
        outcome = await service.authorize(record, caller)
        return JSONResponse(payment_view(outcome, record.charge_id))

    @app.post("/v1/captures")
    async def captures(
        request: Request, identity: Annotated[ServiceIdentity, Depends(payment_guard)]
    ) -> JSONResponse:
        caller = caller_of(request, identity)
        body = await _body(request, ("charge_id", "amount", "psp_reference"), caller, audited)
        charge_id = check_reference("charge_id", body.get("charge_id"))
        amount = check_amount(body.get("amount"), required=False)
        pi = check_psp_reference(body.get("psp_reference"), "pi_")
        outcome = await service.capture(charge_id, amount, pi, caller)
        return JSONResponse(payment_view(outcome, charge_id))

    @app.post("/v1/cancellations")
    async def cancellations(
        request: Request, identity: Annotated[ServiceIdentity, Depends(payment_guard)]
    ) -> JSONResponse:
        caller = caller_of(request, identity)
        body = await _body(request, ("charge_id", "psp_reference"), caller, audited)
        charge_id = check_reference("charge_id", body.get("charge_id"))
        pi = check_psp_reference(body.get("psp_reference"), "pi_")
        outcome = await service.cancel(charge_id, pi, caller)
        return JSONResponse(payment_view(outcome, charge_id))

    @app.post("/v1/refunds")
    async def refunds(
        request: Request, identity: Annotated[ServiceIdentity, Depends(payment_guard)]
    ) -> JSONResponse:
        caller = caller_of(request, identity)
        body = await _body(
            request, ("refund_id", "charge_id", "amount", "psp_reference"), caller, audited
        )
        now = time.time()
        record = RefundRecord(
            refund_id=check_reference("refund_id", body.get("refund_id")),
            charge_id=check_reference("charge_id", body.get("charge_id")),
            amount=check_amount(body.get("amount"), required=False),
            created_at=now,
            updated_at=now,
        )
        pi = check_psp_reference(body.get("psp_reference"), "pi_")
        stored = await service.refund(record, pi, caller)
        return JSONResponse(refund_view(stored))

    @app.post("/v1/checkout_sessions")
    async def checkout_sessions(
        request: Request, identity: Annotated[ServiceIdentity, Depends(checkout_guard)]
    ) -> JSONResponse:
        caller = caller_of(request, identity)
        body = await _body(
            request,
            (
                "session_id",
                "merchant_id",
                "amount",
                "currency",
                "success_url",
                "cancel_url",
                "expires_at",
            ),
            caller,
            audited,
        )
        now = time.time()
        amount = check_amount(body.get("amount"))
        assert amount is not None
        success_url = _url(body, "success_url", required=True)
        assert success_url is not None
        record = SessionRecord(
            session_id=check_reference("session_id", body.get("session_id")),
            merchant_id=check_reference("merchant_id", body.get("merchant_id")),
            amount=amount,
            currency=check_currency(body.get("currency")),
            success_url=success_url,
            cancel_url=_url(body, "cancel_url", required=False),
            expires_at=_timestamp(body.get("expires_at")),
            created_at=now,
            updated_at=now,
        )
        stored = await service.create_checkout_session(record, caller)
        return JSONResponse(session_view(stored))

    @app.post("/v1/checkout_sessions/{session_id}/expire")
    async def expire_checkout_session(
        request: Request,
        session_id: str,
        identity: Annotated[ServiceIdentity, Depends(checkout_guard)],
    ) -> JSONResponse:
        caller = caller_of(request, identity)
        stored = await service.expire_checkout_session(
            check_reference("session_id", session_id), caller
        )
        return JSONResponse(session_view(stored))

    @app.get("/v1/payments/{charge_id}")
    async def payment(
        request: Request,
        charge_id: str,
        identity: Annotated[ServiceIdentity, Depends(status_guard)],
    ) -> JSONResponse:
        caller = caller_of(request, identity)
        checked = check_reference("charge_id", charge_id)
        outcome = await service.payment_status(checked, caller)
        return JSONResponse(payment_view(outcome, checked))

    @app.post("/v1/psp/webhooks")
    async def psp_webhooks(request: Request) -> JSONResponse:
        client = request.client
        receipt = await runtime.intake.receive(
            await request.body(),
            request.headers.get(SIGNATURE_HEADER),
            client.host if client else None,
            getattr(request.state, "request_id", None),
        )
        return JSONResponse(
            {
                "received": True,
                "duplicate": receipt.duplicate,
                "relayed": receipt.relayed,
            }
        )

    app.state.runtime = runtime
    return app


# ---------------------------------------------------------------- process


def run_server() -> None:
    process = start_process("gateway", "cde", 8102)
    settings = GatewaySettings.from_env()
    runtime = build_gateway(
        settings,
        credentials=process.credentials(),
        ca_file=process.ca_file,
        component=process.component,
    )
    app = create_gateway_app(runtime, process.verifier("gateway"))
    serve(app, host=process.host, port=process.port, tls=process.tls())


async def _outbox(requeue: bool) -> dict[str, Any]:
    settings = GatewaySettings.from_env()
    store = build_store(settings.db_url)
    try:
        result: dict[str, Any] = {}
        if requeue:
            result["requeued"] = await store.requeue_dead(time.time())
        result.update(await store.outbox_counts())
        return result
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        run_server()
        return
    parser = argparse.ArgumentParser(prog="python -m cde.gateway.app")
    sub = parser.add_subparsers(dest="command", required=True)
    outbox = sub.add_parser("outbox", help="relay outbox counts (pending, delivered, dead)")
    outbox.add_argument(
        "--requeue-dead", action="store_true", help="retry every dead item from now on"
    )
    parsed = parser.parse_args(args)
    if parsed.command == "outbox":
        print(json.dumps(asyncio.run(_outbox(parsed.requeue_dead)), sort_keys=True))


if __name__ == "__main__":
    main()
