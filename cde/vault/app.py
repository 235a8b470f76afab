"""cde.vault (CDE): the process entry point and the HTTP apps of the vault and the card ingress.

`python -m cde.vault.app vault` serves the internal vault API (TLS, service identity per
endpoint); `python -m cde.vault.app ingress` serves the merchant-facing card ingress;
`python -m cde.vault.app admin …` is the operator CLI (`cde/vault/cli.py`).
"""

# No `from __future__ import annotations` here: FastAPI must evaluate the endpoint annotations
# (`Annotated[..., Depends(guard)]` names closure variables) when the routes are defined.
import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from audit.domain import AuditUnavailable, EventType
from cde.vault.bootstrap import (
    IngressRuntime,
    VaultRuntime,
    build_ingress,
    build_vault,
    record_refusal,
)
from cde.vault.config import IngressSettings, VaultSettings
from cde.vault.domain import (
    InvalidCard,
    InvalidRequest,
    KeyStateError,
    KeyUnavailable,
    MerchantUnauthenticated,
    NotPermitted,
    RateLimited,
    RecordIntegrityError,
    TokenDestroyed,
    TokenNotFound,
    UpstreamUnavailable,
    VaultError,
)
from cde.vault.service import Caller
from fincore.cards import mask_card_numbers
from fincore.identity import ServiceIdentity, ServiceTokenVerifier
from fincore.logs import configure_logging, get_logger
from fincore.process import ProcessSettings, start_process
from fincore.web import (
    ApiError,
    create_service_app,
    direct_route,
    error_response,
    freeze_startup_heap,
    require_service,
    serve,
)

ROLES = ("vault", "ingress")
USAGE = "usage: python -m cde.vault.app {vault|ingress|admin …}"
_CARD_FIELDS = frozenset({"number", "exp_month", "exp_year", "cvc", "name"})
_SIMPLE_KEY = re.compile(r"^[a-z_]{1,32}$")
_log = get_logger("cde.vault")


# ---------------------------------------------------------------- errors


def api_error(exc: VaultError | AuditUnavailable) -> ApiError:
    """The Stripe-style error for a vault error. Messages never hold submitted values."""
    if isinstance(exc, AuditUnavailable):
        return ApiError(
            503,
            "The audit log is unavailable; the request was not carried out.",
            type="api_error",
            code="audit_unavailable",
        )
    code, param = exc.code, exc.param
    if isinstance(exc, InvalidCard):
        return ApiError(422, exc.message, type="card_error", code=code, param=param)
    if isinstance(exc, InvalidRequest):
        return ApiError(400, exc.message, code=code, param=param)
    if isinstance(exc, TokenNotFound):
        return ApiError(404, exc.message, code=code, param=param)
    if isinstance(exc, TokenDestroyed):
        return ApiError(410, exc.message, code=code)
    if isinstance(exc, MerchantUnauthenticated):
        return ApiError(401, exc.message, type="authentication_error", code=code)
    if isinstance(exc, NotPermitted):
        return ApiError(403, exc.message, type="permission_error", code=code)
    if isinstance(exc, RateLimited):
        retry = max(1, round(exc.retry_after_s + 0.5))
        return ApiError(
            429,
            exc.message,
            type="rate_limit_error",
            code=code,
            headers={"Retry-After": str(retry)},
        )
    if isinstance(exc, RecordIntegrityError):
        return ApiError(
            500, "The stored card failed its integrity check.", type="api_error", code=code
        )
    if isinstance(exc, KeyStateError):
        return ApiError(409, exc.message, code=code)
    if isinstance(exc, KeyUnavailable | UpstreamUnavailable):
        return ApiError(503, exc.message, type="api_error", code=code)
    return ApiError(500, "The vault could not carry out the request.", type="api_error", code=code)


def _install_error_handlers(app: FastAPI) -> None:
    async def vault_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, VaultError | AuditUnavailable)
        if isinstance(exc, AuditUnavailable | RecordIntegrityError | KeyUnavailable):
            _log.error("vault_request_failed", error=type(exc).__name__)
        return error_response(api_error(exc), getattr(request.state, "request_id", None))

    app.add_exception_handler(VaultError, vault_error)
    app.add_exception_handler(AuditUnavailable, vault_error)


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("The request body is not valid JSON.", code="body_invalid") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="body_invalid")
    return body


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")).encode("utf-8"),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _caller(request: Request, identity: ServiceIdentity | None, name: str | None = None) -> Caller:
    client = request.client
    return Caller(
        name=name or (identity.name if identity else "unknown"),
        request_id=getattr(request.state, "request_id", None),
        origin_ip=client.host if client else None,
    )


# ---------------------------------------------------------------- the vault


Guard = Callable[[Request], Awaitable[ServiceIdentity]]


def create_vault_app(
    runtime: VaultRuntime, verifier: ServiceTokenVerifier, *, manage_runtime: bool = True
) -> FastAPI:
    """The internal vault API (docs/vault.md "Vault API")."""
    settings = runtime.settings
    service = runtime.service

    def refused(event: EventType) -> Callable[[Request, str, ServiceIdentity | None], None]:
        def on_refused(request: Request, reason: str, identity: ServiceIdentity | None) -> None:
            # PCI DSS 10.2.1.4: every refused call is an audit record (caller, reason, target).
            # The path is the unverified caller's: a card-like run in it is masked, or the
            # audit log would refuse the record and the refusal go unaudited (a 500 before).
            token = request.path_params.get("token")
            record_refusal(
                runtime.audit,
                event=event,
                caller=identity.name if identity else None,
                reason=reason,
                target=mask_card_numbers(token) if token else None,
                request_id=getattr(request.state, "request_id", None),
                origin_ip=request.client.host if request.client else None,
            )

        return on_refused

    def guard(allowed: Iterable[str], event: EventType) -> Guard:
        return require_service(verifier, allowed, on_refused=refused(event))

    tokenize_guard = guard(settings.tokenize_callers, EventType.SERVICE_IDENTITY_REFUSED)
    read_guard = guard(settings.read_callers, EventType.SERVICE_IDENTITY_REFUSED)
    detokenize_guard = guard(settings.detokenize_callers, EventType.DETOKENIZE_DENIED)
    attestation_guard = guard(("ingress",), EventType.SERVICE_IDENTITY_REFUSED)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            await runtime.start()
        try:
            yield
        finally:
            if manage_runtime:
                await runtime.close()

    async def cvc_ready() -> bool:
        return await runtime.cvc_store.ping()

    app = create_service_app(
        "vault",
        readiness={
            "keys": runtime.keys_ready,
            "store": runtime.store.ping,
            "cvc_store": cvc_ready,
            "audit": lambda: runtime.audit.available,
        },
        max_body=settings.max_body,
        lifespan=lifespan,
    )
    _install_error_handlers(app)

    # The two hot endpoints are direct routes (fincore.web.direct_route): the same guard (the
    # require_service check and its audited refusal) is awaited first, without FastAPI's
    # per-request dependency, parameter and routing machinery (docs/vault.md "Performance").
    async def tokenize(request: Request) -> Response:
        identity = await tokenize_guard(request)
        body = await _json_object(request)
        card = body.get("card")
        if not isinstance(card, dict):
            raise InvalidCard(
                "Missing required param: card.", code="parameter_missing", param="card"
            )
        unknown = [k for k in card if k not in _CARD_FIELDS]
        if unknown:
            key = unknown[0]
            param = f"card[{key}]" if _SIMPLE_KEY.match(str(key)) else "card"
            raise InvalidRequest(
                "Received unknown parameter.", code="parameter_unknown", param=param
            )
        result = await service.tokenize(
            merchant_id=body.get("merchant_id"), card=card, caller=_caller(request, identity)
        )
        return _json(201, {"token": result.token, "card": result.card.as_dict()})

    async def detokenize(request: Request) -> Response:
        identity = await detokenize_guard(request)
        token = request.path_params["token"]
        body = await _json_object(request)
        result = await service.detokenize(
            token=token, merchant_id=body.get("merchant_id"), caller=_caller(request, identity)
        )
        card: dict[str, Any] = {
            "number": result.card.pan.reveal(),
            "exp_month": result.card.exp_month,
            "exp_year": result.card.exp_year,
        }
        if result.card.name:
            card["name"] = result.card.name
        cvc = result.cvc.reveal() if result.cvc is not None else None
        return _json(200, {"card": card, "cvc": cvc}, {"Cache-Control": "no-store"})

    direct_route(app, "/v1/tokens", tokenize, methods=["POST"])
    direct_route(app, "/v1/tokens/{token}/detokenize", detokenize, methods=["POST"])

    @app.get("/v1/tokens/{token}")
    async def metadata(
        request: Request,
        token: str,
        identity: Annotated[ServiceIdentity, Depends(read_guard)],
        merchant_id: str | None = None,
    ) -> JSONResponse:
        shown = await service.metadata(
            token=token, merchant_id=merchant_id, caller=_caller(request, identity)
        )
        return JSONResponse({"token": token, "card": shown.as_dict()})

    @app.delete("/v1/tokens/{token}")
    async def delete_token(
        request: Request,
        token: str,
        identity: Annotated[ServiceIdentity, Depends(read_guard)],
        merchant_id: str | None = None,
    ) -> JSONResponse:
        await service.delete(
            token=token, merchant_id=merchant_id, caller=_caller(request, identity)
        )
        return JSONResponse({"token": token, "deleted": True})

    @app.get("/v1/attestations/{merchant_id}")
    async def attestation(
        merchant_id: str, _identity: Annotated[ServiceIdentity, Depends(attestation_guard)]
    ) -> JSONResponse:
        entry = await service.attestation(merchant_id)
        if entry is None:
            raise TokenNotFound("No attestation is registered for this merchant.")
        return JSONResponse(
            {
                "merchant_id": entry.merchant_id,
                "expires_on": entry.expires_on.isoformat(),
                "recorded_at": entry.recorded_at.isoformat(),
            }
        )

    app.state.runtime = runtime
    return app


# ---------------------------------------------------------------- the ingress


def create_ingress_app(runtime: IngressRuntime, *, manage_runtime: bool = True) -> FastAPI:
    """The merchant-facing card ingress (docs/vault.md "Card ingress")."""
    service = runtime.service

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if manage_runtime:
                await runtime.close()

    app = create_service_app(
        "ingress",
        readiness={"vault": runtime.vault.ping, "audit": lambda: runtime.audit.available},
        max_body=runtime.settings.max_body,
        lifespan=lifespan,
    )
    _install_error_handlers(app)

    @app.post("/v1/charges")
    async def charges(request: Request) -> Response:
        caller = _caller(request, None, name="merchant")
        authorization = request.headers.get("authorization")
        # PCI DSS 3.2.1 / 12.8: who may send raw cards is settled from the headers alone; a
        # refused merchant's body (the card) is never read, parsed, stored or logged.
        merchant = await service.authorize(authorization, caller)
        assert authorization is not None
        body = await _json_object(request)
        answer = await service.charge(
            merchant,
            body,
            authorization=authorization,
            idempotency_key=request.headers.get("idempotency-key"),
            caller=caller,
        )
        return Response(
            content=answer.body, status_code=answer.status, media_type=answer.content_type
        )

    app.state.runtime = runtime
    return app


# ---------------------------------------------------------------- process


def run_vault(process: ProcessSettings) -> None:
    settings = VaultSettings.from_env()
    if settings.workers == 1:
        runtime = build_vault(settings, component=process.component)
        app = create_vault_app(runtime, process.verifier("vault"))
        serve(app, host=process.host, port=process.port, tls=process.tls())
        return
    # Several workers (each with its own event loop, SQL writer and audit writer; the CVC store
    # is then Redis, which config enforces). The schema and the KEK registry are settled here,
    # once, before any worker starts.
    runtime = build_vault(settings, component=process.component)
    asyncio.run(_prepare(runtime))
    serve(
        f"{__name__}:worker_app",
        host=process.host,
        port=process.port,
        tls=process.tls(),
        workers=settings.workers,
    )


async def _prepare(runtime: VaultRuntime) -> None:
    try:
        await runtime.start()
    finally:
        await runtime.close()


def _worker_app() -> FastAPI:
    """The vault app of one uvicorn worker process, built from the environment at its start."""
    process = ProcessSettings.from_env("vault", "cde", 8101)
    configure_logging(process.component)
    runtime = build_vault(VaultSettings.from_env(), component=process.component, migrate=False)
    app = create_vault_app(runtime, process.verifier("vault"))
    freeze_startup_heap()
    return app


def __getattr__(name: str) -> Any:
    # uvicorn imports "cde.vault.app:worker_app" in each worker: build it then, not at import.
    if name == "worker_app":
        return _worker_app()
    raise AttributeError(name)


def run_ingress(process: ProcessSettings) -> None:
    settings = IngressSettings.from_env()
    runtime = build_ingress(
        settings,
        credentials=process.credentials(),
        ca_file=process.ca_file,
        component=process.component,
    )
    serve(create_ingress_app(runtime), host=process.host, port=process.port, tls=process.tls())


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    role = args[0] if args else ROLES[0]
    if role == "admin":
        from cde.vault.cli import main as admin_main

        raise SystemExit(admin_main(args[1:]))
    if role not in ROLES:
        raise SystemExit(USAGE)
    process = start_process(role, "cde", 8101 if role == "vault" else 8100)
    if role == "vault":
        run_vault(process)
    else:
        run_ingress(process)


if __name__ == "__main__":
    main()
