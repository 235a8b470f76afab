"""noncde.api (non-CDE): the merchant API's routes and the app factory.

Every route declares who may call it (PCI DSS 7.2.1 "deny by default"): `/v1/*` a merchant's
secret key (publishable keys are refused), `/internal/v1/*` a service identity from an
allow-list. Blocking work (the databases, the gateway) runs in the thread pool so the event
loop only parses and answers. Errors are Stripe-style objects that never echo a value.
"""

import base64
import binascii
import inspect
import re
import time
from collections.abc import Callable, Iterable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Body, Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter, Gauge
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from audit.domain import Actor, ActorType, AuditUnavailable, EventType, Outcome
from fincore.identity import TOKEN_HEADER, ServiceIdentity, ServiceIdentityError
from fincore.logs import get_logger
from fincore.web import ApiError, create_service_app, require_service
from noncde.api.bootstrap import ApiRuntime
from noncde.api.domain.commands import (
    CancelCharge,
    CaptureCharge,
    CreateCharge,
    CreatePaymentSession,
    CreateRefund,
    ExpirePaymentSession,
    RecordPspEvent,
)
from noncde.api.domain.errors import (
    CardDataNotAllowed,
    DependencyUnavailable,
    InvalidRequest,
    PaymentApiError,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
)
from noncde.api.domain.events import CardDisplay, PaymentMethodRef, PaymentMethodType
from noncde.api.domain.merchants import KeyKind, MerchantAuth
from noncde.api.ports import CreatedRange, PageRequest
from noncde.api.service import Caller, Reply
from noncde.api.web import schemas as s
from noncde.api.web.docs import install_docs
from noncde.api.web.guard import CardDataGuard
from noncde.api.web.staff import install_staff_routes
from noncde.platform.domain import BackendUnavailable, CardDataRefused, InvalidArgument

T = TypeVar("T")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_BEARER = re.compile(r"^Bearer\s+(\S+)$")
_BASIC = re.compile(r"^Basic\s+([A-Za-z0-9+/=]+)$")
MAX_BODY = 64 * 1024
MAX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z: bounds every Unix-time filter

_STATUS_TEXT = {
    400: "Invalid request (a parameter, or card data sent to this API).",
    401: "No valid API key (or service identity).",
    402: "The charge was created and failed (risk block, decline).",
    403: "Authenticated, but not allowed (publishable key, raw card data, service).",
    404: "No such object for this merchant (also an unknown pagination cursor).",
    409: "This Idempotency-Key is being processed, or the object changed concurrently.",
    413: "The request body is too large.",
    422: "The object's state does not allow this (capture, cancel, refund, expire).",
    429: "Too many requests for this API key; retry after Retry-After seconds.",
    503: "A dependency is unavailable; nothing was recorded. Retry later.",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": s.ErrorResponse, "description": _STATUS_TEXT[code]} for code in codes}


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _reply(reply: Reply, request: Request | None = None) -> JSONResponse:
    if reply.replayed:
        return _json(reply.status, reply.body, {"Idempotent-Replayed": "true"})
    body = reply.body
    error = body.get("error")
    if isinstance(error, dict) and request is not None:
        # The stored answer has no request id (a replay is another request); this one does.
        body = {"error": {**error, "request_id": getattr(request.state, "request_id", None)}}
    return _json(reply.status, body)


def _psp_event_amount(body: Any) -> int | None:
    """The amount an outcome moved: the PSP's `amount` is the PaymentIntent's total, so a
    (partial) capture is `amount_received` and an authorization `amount_capturable`."""
    if body.type in {"payment.succeeded", "payment.captured"} and body.amount_received:
        return int(body.amount_received)
    if body.type == "payment.authorized" and body.amount_capturable:
        return int(body.amount_capturable)
    return body.amount if body.amount is None else int(body.amount)


def _psp_event_reference(body: Any) -> str | None:
    """The PSP reference an outcome is settled under: for a paid hosted session that is its
    PaymentIntent (`psp_payment_reference`, the settlement file's key), not the session."""
    if isinstance(body, s.CheckoutSessionEvent) and body.psp_payment_reference:
        return str(body.psp_payment_reference)
    return body.psp_reference if body.psp_reference is None else str(body.psp_reference)


def _key_from(authorization: str | None) -> str | None:
    """The API key from `Bearer <key>` or Stripe-style Basic auth (`-u sk_test_…:`)."""
    if not authorization:
        return None
    bearer = _BEARER.match(authorization)
    if bearer:
        return bearer.group(1)
    basic = _BASIC.match(authorization)
    if basic:
        try:
            decoded = base64.b64decode(basic.group(1), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.split(":", 1)[0]
    return ""


def create_app(runtime: ApiRuntime, *, manage_runtime: bool = True) -> FastAPI:
    """The merchant API app. With `manage_runtime`, the app's lifespan starts the background
    threads (projector, relays) and closes the runtime on shutdown."""
    config = runtime.config
    payments = runtime.payments
    directory = runtime.directory
    log = get_logger("api")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        if manage_runtime:
            runtime.start_background()
        try:
            yield
        finally:
            if manage_runtime:
                await run_in_threadpool(runtime.close)

    app = create_service_app(
        "api",
        title="FinCore merchant API",
        version="1",
        readiness=runtime.readiness,
        max_body=MAX_BODY,
        lifespan=lifespan,
        description=(
            "Charges, refunds, payment sessions and events for merchants, Stripe-style. "
            "Authenticate with `Authorization: Bearer sk_test_…`. Every POST accepts an "
            "`Idempotency-Key`. This API never accepts card data: raw cards go to the card "
            "ingress, buyers' cards to the PSP's SDK or hosted page."
        ),
    )
    registry = app.state.metrics_registry
    refusals = Counter(
        "card_data_refused_total",
        "Requests refused by the card-data guard, by where the card data was.",
        ["location"],
        registry=registry,
    )
    projection_lag = Gauge(
        "api_projection_lag_events",
        "Events in the event store not yet in the API's payment read model.",
        registry=registry,
    )
    projection_lag.set_function(lambda: _safe_lag(runtime))
    guard_log = get_logger("api.guard")

    def on_refusal(where: str) -> None:
        refusals.labels(where).inc()
        # Where only: the request itself is never logged (PCI DSS 3.3.1, 10.3).
        guard_log.warning("card data refused", location=where)

    # Outermost: added last, so it wraps the kit's access log, metrics and request ids.
    app.add_middleware(
        CardDataGuard, ingress_url=config.ingress_url, max_body=MAX_BODY, on_refusal=on_refusal
    )

    # ------------------------------------------------------------ errors

    def _request_id(request: Request) -> str | None:
        return getattr(request.state, "request_id", None)

    @app.exception_handler(PaymentApiError)
    async def payment_error(request: Request, exc: PaymentApiError) -> JSONResponse:
        body = exc.body()
        body["error"]["request_id"] = _request_id(request)
        return _json(exc.status, body, exc.headers)

    @app.exception_handler(BackendUnavailable)
    async def backend_down(request: Request, exc: BackendUnavailable) -> JSONResponse:
        log.error("backend unavailable", error=type(exc).__name__)
        return await payment_error(
            request,
            DependencyUnavailable("A storage backend is unavailable; retry later."),
        )

    @app.exception_handler(AuditUnavailable)
    async def audit_down(request: Request, exc: AuditUnavailable) -> JSONResponse:
        log.error("audit log unavailable: refusing to proceed unaudited")
        return await payment_error(
            request, DependencyUnavailable("The service cannot record this action; retry later.")
        )

    @app.exception_handler(CardDataRefused)
    async def store_refused(request: Request, exc: CardDataRefused) -> JSONResponse:
        # The stores' own guard: the middleware should have refused it already.
        return await payment_error(request, CardDataNotAllowed("Card data is not accepted here."))

    @app.exception_handler(InvalidArgument)
    async def invalid_argument(request: Request, exc: InvalidArgument) -> JSONResponse:
        return await payment_error(request, InvalidRequest("Invalid request."))

    async def credentials_refusal(request: Request) -> JSONResponse | None:
        """The 401/403 of a request without valid credentials whose body could not even be
        parsed: FastAPI parses the body before the routes' authentication runs, and a caller
        without credentials must learn nothing about the API's parameters (PCI DSS 7.2.1;
        found by tests/security fuzzing without credentials). None when the caller is fine."""
        path = request.url.path
        try:
            if path.startswith("/internal/"):
                try:
                    if runtime.verifier is None:
                        raise ServiceIdentityError("service identities are not accepted")
                    runtime.verifier.verify(request.headers.get(TOKEN_HEADER))
                except ServiceIdentityError as exc:
                    on_service_refused(request, exc.reason, None)
                    raise Unauthenticated(
                        "A valid service identity is required.", code="service_identity_invalid"
                    ) from exc
            elif path.startswith("/v1/"):
                key = _key_from(request.headers.get("authorization"))
                await run_in_threadpool(_authenticate, key, request)
        except PaymentApiError as exc:
            return await payment_error(request, exc)
        return None

    kit_http_error = app.exception_handlers[StarletteHTTPException]

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # "There was an error parsing the body"
            refused = await credentials_refusal(request)
            if refused is not None:
                return refused
        answer = kit_http_error(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(error.get("type") == "json_invalid" for error in exc.errors()):
            refused = await credentials_refusal(request)
            if refused is not None:
                return refused
        raw = exc.body if isinstance(exc.body, dict) else {}
        method = raw.get("payment_method") if isinstance(raw, dict) else None
        if isinstance(method, dict) and method.get("type") == "card":
            return await payment_error(
                request,
                CardDataNotAllowed(
                    "Raw card payment methods are not accepted by this API. Send them to the "
                    f"card ingress ({config.ingress_url}/v1/charges) if your account is "
                    "permitted, or use a PSP token or a payment session.",
                    code="raw_card_data_use_ingress",
                    param="payment_method[type]",
                ),
            )
        errors = exc.errors()
        first = errors[0] if errors else {}
        param = _param(first.get("loc", ()))
        kind = str(first.get("type", ""))
        if kind == "missing":
            error = InvalidRequest(
                f"Missing required param: {param}.", code="parameter_missing", param=param
            )
        elif kind == "extra_forbidden":
            error = InvalidRequest(
                f"Received unknown parameter: {param}.", code="parameter_unknown", param=param
            )
        elif kind in {"json_invalid", "model_attributes_type", "dict_type"} and param is None:
            error = InvalidRequest("The request body must be a JSON object.", code="body_invalid")
        else:
            error = InvalidRequest(
                f"Invalid value for {param}." if param else "Invalid request.",
                code="parameter_invalid",
                param=param,
            )
        return await payment_error(request, error)

    # ------------------------------------------------------------ callers

    def audit_refused(event: EventType, reason: str, request: Request, who: str | None) -> None:
        try:
            runtime.audit.record(
                event,
                actor=Actor(who or "unknown", ActorType.SERVICE if who else ActorType.ANONYMOUS),
                outcome=Outcome.FAILURE,
                resource=f"api:{request.url.path[:100]}",
                request_id=_request_id(request),
                origin_ip=request.client.host if request.client else None,
                reason=reason,
            )
        except AuditUnavailable:
            log.error("audit log unavailable while refusing a caller")

    def on_service_refused(request: Request, reason: str, who: ServiceIdentity | None) -> None:
        audit_refused(
            EventType.SERVICE_IDENTITY_REFUSED, reason, request, who.name if who else None
        )

    def service_guard(allowed: Iterable[str]) -> Callable[..., Any]:
        if runtime.verifier is None:

            async def nobody(request: Request) -> ServiceIdentity:
                raise ApiError(
                    401,
                    "A valid service identity is required.",
                    type="authentication_error",
                    code="service_identity_invalid",
                )

            return nobody
        return require_service(runtime.verifier, allowed, on_service_refused)

    def _authenticate(key: str | None, request: Request) -> MerchantAuth:
        if key is None:
            raise Unauthenticated(
                "You did not provide an API key. Use 'Authorization: Bearer sk_test_…'.",
                code="api_key_missing",
            )
        merchant = directory.authenticate(key)
        if merchant is None:
            audit_refused(EventType.API_KEY_INVALID, "unknown_or_revoked_api_key", request, None)
            raise Unauthenticated("Invalid API key provided.")
        if merchant.kind is not KeyKind.SECRET:
            raise PermissionDenied(
                "This API call cannot be made with a publishable API key.",
                code="publishable_key_not_allowed",
            )
        count = runtime.counters.hit(f"key:{merchant.key_id}", 1, time.time())
        if count > config.rate_limit_per_s:
            raise RateLimited(
                "Too many requests for this API key; slow down.", headers={"Retry-After": "1"}
            )
        return merchant

    def _relayed_by_ingress(request: Request) -> bool:
        token = request.headers.get(TOKEN_HEADER)
        if token is None:
            return False
        if runtime.verifier is None:
            raise Unauthenticated(
                "Service identities are not accepted here.", code="service_identity_invalid"
            )
        try:
            identity = runtime.verifier.verify(token)
        except ServiceIdentityError as exc:
            on_service_refused(request, exc.reason, None)
            raise Unauthenticated(
                "A valid service identity is required.", code="service_identity_invalid"
            ) from exc
        if identity.name != "ingress":
            on_service_refused(request, "only the card ingress relays charges", identity)
            raise PermissionDenied(
                "This service may not relay charges.", code="service_not_allowed"
            )
        return True

    async def merchant_caller(request: Request) -> Caller:
        key = _key_from(request.headers.get("authorization"))
        merchant = await run_in_threadpool(_authenticate, key, request)
        return Caller(merchant=merchant, request_id=_request_id(request))

    async def writing_caller(
        request: Request,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                description="Makes the POST safe to retry: the first answer is replayed for "
                "24 h (header `Idempotent-Replayed: true`).",
                examples=["order-A-1001-attempt"],
            ),
        ] = None,
    ) -> Caller:
        caller = await merchant_caller(request)  # authenticate before judging any parameter
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise InvalidRequest(
                "Idempotency-Key must be 1-255 printable ASCII characters.",
                code="idempotency_key_invalid",
                param="Idempotency-Key",
            )
        via_ingress = await run_in_threadpool(_relayed_by_ingress, request)
        return Caller(
            merchant=caller.merchant,
            request_id=caller.request_id,
            idempotency_key=idempotency_key,
            via_ingress=via_ingress,
        )

    Reader = Annotated[Caller, Depends(merchant_caller)]
    Writer = Annotated[Caller, Depends(writing_caller)]
    list_errors = _errors(400, 401, 403, 404, 429, 503)

    def page_of(
        limit: int,
        starting_after: str | None,
        ending_before: str | None,
        created: CreatedRange,
    ) -> PageRequest:
        return PageRequest(limit, starting_after, ending_before, created)

    def created_range(
        created: Annotated[
            int | None, Query(ge=0, le=MAX_TIME, description="Exactly this Unix time.")
        ] = None,
        created_gt: Annotated[int | None, Query(alias="created[gt]", ge=0, le=MAX_TIME)] = None,
        created_gte: Annotated[int | None, Query(alias="created[gte]", ge=0, le=MAX_TIME)] = None,
        created_lt: Annotated[int | None, Query(alias="created[lt]", ge=0, le=MAX_TIME)] = None,
        created_lte: Annotated[int | None, Query(alias="created[lte]", ge=0, le=MAX_TIME)] = None,
    ) -> CreatedRange:
        if created is not None:
            return CreatedRange(gte=created, lte=created)
        return CreatedRange(created_gt, created_gte, created_lt, created_lte)

    Created = Annotated[CreatedRange, Depends(created_range)]
    Limit = Annotated[
        int, Query(ge=1, le=100, description="How many objects (1-100).", examples=[10])
    ]
    After = Annotated[
        str | None,
        Query(max_length=100, description="Cursor: the last object id of the previous page."),
    ]
    Before = Annotated[
        str | None,
        Query(max_length=100, description="Cursor: the first object id of the next page."),
    ]
    Id = Annotated[str, Path(max_length=100, description="The object's id.")]

    async def call(function: Callable[..., T], *args: Any) -> T:
        return await run_in_threadpool(function, *args)

    # ------------------------------------------------------------ charges

    @app.post(
        "/v1/charges",
        status_code=201,
        response_model=s.ChargeObject,
        summary="Create a charge",
        description=(
            "Creates a charge with a PSP token (SDK flow) or, when relayed by the card "
            "ingress, a vault token (S2S flow). Answers 201 with status `processing`; the "
            "outcome follows asynchronously (poll the charge or receive webhooks). A risk "
            "block answers 402 `risk_blocked` with the failed charge's id. Raw card data is "
            "refused with 400."
        ),
        responses=_errors(400, 401, 402, 403, 409, 413, 429, 503),
        tags=["charges"],
    )
    async def create_charge(
        body: s.CreateChargeRequest, caller: Writer, request: Request
    ) -> Response:
        method = body.payment_method
        card = None
        if isinstance(method, s.VaultTokenMethod) and method.card is not None:
            card = CardDisplay(
                brand=method.card.brand,
                last4=method.card.last4,
                exp_month=method.card.exp_month,
                exp_year=method.card.exp_year,
                fingerprint=method.card.fingerprint,
                bin=method.card.bin,
            )
        command = CreateCharge(
            amount=body.amount,
            currency=body.currency,
            payment_method=PaymentMethodRef(PaymentMethodType(method.type), method.token, card),
            capture=body.capture,
            description=body.description,
            metadata=body.metadata,
        )
        return _reply(await call(payments.create_charge, caller, command), request)

    @app.get(
        "/v1/charges/{id}",
        response_model=s.ChargeObject,
        summary="Retrieve a charge",
        description="Always current: folded from the charge's events at request time.",
        responses=_errors(400, 401, 403, 404, 429, 503),
        tags=["charges"],
    )
    async def get_charge(id: Id, caller: Reader) -> Response:
        return _json(200, await call(payments.get_charge, caller.merchant_id, id))

    @app.get(
        "/v1/charges",
        response_model=s.ChargeList,
        summary="List charges",
        description=(
            "Newest first, from the read model (it trails writes by the projection lag, "
            "normally milliseconds)."
        ),
        tags=["charges"],
        responses=list_errors,
    )
    async def list_charges(
        caller: Reader,
        created: Created,
        limit: Limit = 10,
        starting_after: After = None,
        ending_before: Before = None,
        status: Annotated[
            Literal["processing", "requires_capture", "succeeded", "failed", "canceled"] | None,
            Query(description="Only charges in this status."),
        ] = None,
    ) -> Response:
        page = page_of(limit, starting_after, ending_before, created)
        return _json(200, await call(payments.list_charges, caller.merchant_id, page, status))

    @app.post(
        "/v1/charges/{id}/capture",
        response_model=s.ChargeObject,
        summary="Capture a charge",
        description=(
            "Captures an authorized charge (status `requires_capture`), in full or partially "
            "with `amount`. Answers 200 with the charge; `capture_requested` shows the pending "
            "capture until it succeeds."
        ),
        responses=_errors(400, 401, 403, 404, 409, 413, 422, 429, 503),
        tags=["charges"],
    )
    async def capture_charge(
        id: Id,
        caller: Writer,
        request: Request,
        body: Annotated[s.CaptureChargeRequest | None, Body()] = None,
    ) -> Response:
        command = CaptureCharge(id, body.amount if body else None)
        return _reply(await call(payments.capture_charge, caller, command), request)

    @app.post(
        "/v1/charges/{id}/cancel",
        response_model=s.ChargeObject,
        summary="Cancel an uncaptured charge",
        description="Releases an authorization (status `requires_capture`).",
        responses=_errors(400, 401, 403, 404, 409, 413, 422, 429, 503),
        tags=["charges"],
    )
    async def cancel_charge(id: Id, caller: Writer, request: Request) -> Response:
        return _reply(await call(payments.cancel_charge, caller, CancelCharge(id)), request)

    # ------------------------------------------------------------ refunds

    @app.post(
        "/v1/refunds",
        status_code=201,
        response_model=s.RefundObject,
        summary="Create a refund",
        description=(
            "Refunds a succeeded charge, in full or partially. Refunds never exceed the "
            "captured amount minus what is refunded or being refunded (422 `amount_too_large`)."
        ),
        responses=_errors(400, 401, 403, 404, 409, 413, 422, 429, 503),
        tags=["refunds"],
    )
    async def create_refund(
        body: s.CreateRefundRequest, caller: Writer, request: Request
    ) -> Response:
        command = CreateRefund(body.charge, body.amount, body.reason)
        return _reply(await call(payments.create_refund, caller, command), request)

    @app.get(
        "/v1/refunds/{id}",
        response_model=s.RefundObject,
        summary="Retrieve a refund",
        responses=_errors(400, 401, 403, 404, 429, 503),
        tags=["refunds"],
    )
    async def get_refund(id: Id, caller: Reader) -> Response:
        return _json(200, await call(payments.get_refund, caller.merchant_id, id))

    @app.get(
        "/v1/refunds",
        response_model=s.RefundList,
        summary="List refunds",
        description="Newest first, from the read model; `charge` filters by charge.",
        tags=["refunds"],
        responses=list_errors,
    )
    async def list_refunds(
        caller: Reader,
        created: Created,
        limit: Limit = 10,
        starting_after: After = None,
        ending_before: Before = None,
        charge: Annotated[str | None, Query(max_length=100)] = None,
    ) -> Response:
        page = page_of(limit, starting_after, ending_before, created)
        return _json(200, await call(payments.list_refunds, caller.merchant_id, page, charge))

    # ------------------------------------------------------------ payment sessions

    @app.post(
        "/v1/payment_sessions",
        status_code=201,
        response_model=s.PaymentSessionObject,
        summary="Create a payment session",
        description=(
            "Creates a hosted payment page at the PSP. Redirect the buyer to `url`; when the "
            "buyer pays, the session becomes `complete` and its `charge` appears. One-time use."
        ),
        responses=_errors(400, 401, 403, 409, 413, 429, 503),
        tags=["payment sessions"],
    )
    async def create_session(
        body: s.CreatePaymentSessionRequest, caller: Writer, request: Request
    ) -> Response:
        command = CreatePaymentSession(
            amount=body.amount,
            currency=body.currency,
            success_url=body.success_url,
            cancel_url=body.cancel_url,
            expires_in=body.expires_in,
            metadata=body.metadata,
        )
        return _reply(await call(payments.create_session, caller, command), request)

    @app.get(
        "/v1/payment_sessions/{id}",
        response_model=s.PaymentSessionObject,
        summary="Retrieve a payment session",
        responses=_errors(400, 401, 403, 404, 429, 503),
        tags=["payment sessions"],
    )
    async def get_session(id: Id, caller: Reader) -> Response:
        return _json(200, await call(payments.get_session, caller.merchant_id, id))

    @app.post(
        "/v1/payment_sessions/{id}/expire",
        response_model=s.PaymentSessionObject,
        summary="Expire a payment session",
        description="Closes an open session so it can no longer be paid.",
        responses=_errors(400, 401, 403, 404, 409, 413, 422, 429, 503),
        tags=["payment sessions"],
    )
    async def expire_session(id: Id, caller: Writer, request: Request) -> Response:
        command = ExpirePaymentSession(id)
        return _reply(await call(payments.expire_session, caller, command), request)

    @app.get(
        "/v1/payment_sessions",
        response_model=s.PaymentSessionList,
        summary="List payment sessions",
        tags=["payment sessions"],
        responses=list_errors,
    )
    async def list_sessions(
        caller: Reader,
        created: Created,
        limit: Limit = 10,
        starting_after: After = None,
        ending_before: Before = None,
        status: Annotated[Literal["open", "complete", "expired"] | None, Query()] = None,
    ) -> Response:
        page = page_of(limit, starting_after, ending_before, created)
        return _json(200, await call(payments.list_sessions, caller.merchant_id, page, status))

    # ------------------------------------------------------------ events

    @app.get(
        "/v1/events",
        response_model=s.EventList,
        summary="List events",
        description=(
            "The merchant's own events, newest first, from the read model. `type` filters by "
            "type; a trailing `*` matches a prefix (`charge.*`)."
        ),
        tags=["events"],
        responses=list_errors,
    )
    async def list_events(
        caller: Reader,
        created: Created,
        limit: Limit = 10,
        starting_after: After = None,
        ending_before: Before = None,
        type: Annotated[
            str | None,
            Query(pattern=r"^[a-z_]+(\.[a-z_]+)*(\.\*)?$", max_length=100),
        ] = None,
    ) -> Response:
        page = page_of(limit, starting_after, ending_before, created)
        types = (type,) if type else ()
        return _json(200, await call(payments.list_events, caller.merchant_id, page, types))

    @app.get(
        "/v1/events/{id}",
        response_model=s.EventObject,
        summary="Retrieve an event",
        responses=_errors(400, 401, 403, 404, 429, 503),
        tags=["events"],
    )
    async def get_event(id: Id, caller: Reader) -> Response:
        return _json(200, await call(payments.get_event, caller.merchant_id, id))

    # ------------------------------------------------------------ internal (service identity)

    ingress_only = Depends(service_guard({"ingress"}))
    gateway_only = Depends(service_guard({"gateway"}))
    webhooks_only = Depends(service_guard({"webhooks"}))

    @app.post(
        "/internal/v1/merchant-auth",
        response_model=s.MerchantAuthResponse,
        summary="Resolve a merchant's API key (card ingress only)",
        description=(
            "The card ingress authenticates a merchant and reads its raw-card capability "
            "before it reads any card data. 401 for an unknown, revoked or expired key."
        ),
        responses=_errors(400, 401, 403, 413, 503),
        tags=["internal"],
    )
    async def merchant_auth(
        body: s.MerchantAuthRequest,
        request: Request,
        identity: Annotated[ServiceIdentity, ingress_only],
    ) -> Response:
        merchant = await call(directory.authenticate, body.api_key)
        if merchant is None or merchant.kind is not KeyKind.SECRET:
            await call(
                audit_refused,
                EventType.API_KEY_INVALID,
                "unknown_or_revoked_api_key",
                request,
                identity.name,
            )
            raise Unauthenticated("Invalid API key provided.")
        today = directory.clock().date()
        return _json(
            200,
            {
                "merchant_id": merchant.merchant_id,
                "livemode": merchant.livemode,
                "capabilities": merchant.capabilities(today),
            },
        )

    @app.post(
        "/internal/v1/psp-events",
        response_model=s.PspEventResponse,
        summary="Record a PSP event (gateway only)",
        description=(
            "The gateway relays normalized, token-only PSP events from its outbox. Idempotent "
            "by event id: a repeat answers the first answer."
        ),
        responses=_errors(400, 401, 403, 404, 409, 413, 503),
        tags=["internal"],
    )
    async def psp_event(
        body: Annotated[s.PspEventRequest, Body()],
        request: Request,
        identity: Annotated[ServiceIdentity, gateway_only],
    ) -> Response:
        method = None
        if isinstance(body, s.CheckoutSessionEvent) and body.payment_method is not None:
            card = body.payment_method.card
            method = PaymentMethodRef(
                PaymentMethodType.PSP_TOKEN,
                body.payment_method.token,
                CardDisplay(
                    brand=card.brand,
                    last4=card.last4 or "",
                    exp_month=card.exp_month or 0,
                    exp_year=card.exp_year or 0,
                )
                if card is not None
                else None,
            )
        command = RecordPspEvent(
            id=body.id,
            type=body.type,
            charge_id=getattr(body, "charge_id", None),
            session_id=getattr(body, "session_id", None),
            refund_id=getattr(body, "refund_id", None),
            psp_reference=_psp_event_reference(body),
            amount=_psp_event_amount(body),
            currency=body.currency,
            payment_method=method,
            decline_code=body.decline_code,
            message=body.message,
        )
        return _reply(await call(payments.record_psp_event, command, _request_id(request)), request)

    @app.get(
        "/internal/v1/webhook_endpoints",
        response_model=s.WebhookEndpointList,
        summary="Webhook endpoints with their signing secrets (webhooks worker only)",
        responses=_errors(400, 401, 403, 503),
        tags=["internal"],
    )
    async def webhook_endpoints(
        identity: Annotated[ServiceIdentity, webhooks_only],
        merchant_id: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Response:
        found = await call(lambda: directory.webhook_endpoints(merchant_id, with_secrets=True))
        data = [{**endpoint.to_dict(), "secret": secret} for endpoint, secret in found]
        return _json(
            200,
            {
                "object": "list",
                "data": data,
                "has_more": False,
                "url": "/internal/v1/webhook_endpoints",
            },
        )

    install_staff_routes(app, runtime, service_guard)  # the dashboard's commands (#10)
    install_docs(app)
    return app


def _safe_lag(runtime: ApiRuntime) -> float:
    try:
        return float(runtime.projector.lag())
    except Exception:  # noqa: BLE001 - a metric must never fail the scrape
        return -1.0


def _param(loc: Iterable[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    # Drop discriminated-union tags (`psp_token`, `payment.failed`): they are not parameters.
    parts = [p for p in parts if p not in {"psp_token", "vault_token"} and "." not in p]
    if not parts:
        return None
    if parts[0] == "metadata":
        return "metadata"  # never echo a caller's own key names
    name = parts[0]
    for part in parts[1:]:
        name += f"[{part}]"
    return name
