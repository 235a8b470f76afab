"""noncde.api (non-CDE): the staff commands the admin dashboard calls (`/internal/v1/staff/*`).

Only the `dashboard` service identity may call them (PCI DSS 7.2.1); the dashboard has already
checked the staff member's role, second factor and (for refunds) the second person, and names
the staff member in `actor`, which the directory audits as the acting user (8.2.1, 10.2.1.2,
10.2.1.5). Refunds go through the same use case as the merchant's own `POST /v1/refunds`
(same checks against the charge stream, same job), with the dashboard's refund request id as
Idempotency-Key. Nothing here returns a secret except the one new API key of a rotation,
which the dashboard shows once. These routes are internal and not in the public OpenAPI.

Added by the dashboard's issue (#10) as a separate module; `routes.create_app` installs it.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures, whose
# dependency aliases are local to `install_staff_routes`.
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from audit.domain import Actor, ActorType, EventType, Outcome
from fincore.identity import ServiceIdentity
from noncde.api.bootstrap import ApiRuntime
from noncde.api.domain.commands import CreateRefund
from noncde.api.domain.errors import InvalidRequest
from noncde.api.domain.merchants import KeyKind, MerchantAuth, RawCardCapability
from noncde.api.service import Caller

_ACTOR = re.compile(r"^[a-z][a-z0-9._@-]{1,63}$")
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:\-]{1,255}$")
Actor_ = Annotated[str, StringConstraints(min_length=2, max_length=64)]
Reason = Annotated[str, StringConstraints(max_length=200)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RotateBody(_Body):
    actor: Actor_
    overlap_hours: float = Field(default=24.0, ge=0, le=720)


class RevokeBody(_Body):
    actor: Actor_
    reason: Reason | None = None


class RawCardBody(_Body):
    actor: Actor_
    granted: bool
    attestation_expires_on: date | None = None
    reason: Reason


class StaffRefundBody(_Body):
    actor: Actor_  # the approver
    requested_by: Actor_
    merchant_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    charge: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    amount: int = Field(ge=1, le=99_999_999)
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None = None


def _actor(name: str) -> str:
    if not _ACTOR.match(name):
        raise InvalidRequest("actor must be a staff user name.", param="actor")
    return name


def _capability(capability: RawCardCapability, today: date) -> dict[str, Any]:
    expires = capability.attestation_expires_on
    return {
        "granted": capability.granted,
        "attestation_expires_on": expires.isoformat() if expires else None,
        "active_today": capability.active_on(today),
    }


def install_staff_routes(
    app: FastAPI,
    runtime: ApiRuntime,
    service_guard: Callable[[set[str]], Callable[..., Any]],
) -> None:
    """Add the dashboard's staff commands to the API app."""
    directory = runtime.directory
    dashboard_only = Depends(service_guard({"dashboard"}))
    Caller_ = Annotated[ServiceIdentity, dashboard_only]
    Id = Annotated[str, Path(max_length=100)]

    def today() -> date:
        return directory.clock().date()

    @app.get("/internal/v1/staff/merchants", include_in_schema=False)
    async def staff_merchants(identity: Caller_) -> JSONResponse:
        found = await run_in_threadpool(directory.merchants)
        return JSONResponse({"object": "list", "data": [m.to_dict() for m in found]})

    @app.get("/internal/v1/staff/merchants/{merchant_id}", include_in_schema=False)
    async def staff_merchant(merchant_id: Id, identity: Caller_) -> JSONResponse:
        def read() -> dict[str, Any]:
            merchant = directory.merchant(merchant_id)
            return {
                "merchant": merchant.to_dict(),
                "keys": [k.to_dict() for k in directory.keys(merchant.id)],
                "raw_card_data": _capability(directory.raw_card(merchant.id), today()),
                "webhook_endpoints": [
                    e.to_dict() for e, _ in directory.webhook_endpoints(merchant.id)
                ],
            }

        return JSONResponse(await run_in_threadpool(read))

    @app.post("/internal/v1/staff/keys/{key_id}/rotate", include_in_schema=False)
    async def staff_rotate(key_id: Id, body: RotateBody, identity: Caller_) -> JSONResponse:
        def rotate() -> dict[str, Any]:
            issued, old = directory.rotate_key(
                key_id, overlap=timedelta(hours=body.overlap_hours), actor=_actor(body.actor)
            )
            return {
                "new_key": {**issued.key.to_dict(), "value": issued.value, "shown_once": True},
                "old_key": old.to_dict(),
            }

        return JSONResponse(await run_in_threadpool(rotate), status_code=201)

    @app.post("/internal/v1/staff/keys/{key_id}/revoke", include_in_schema=False)
    async def staff_revoke(key_id: Id, body: RevokeBody, identity: Caller_) -> JSONResponse:
        def revoke() -> dict[str, Any]:
            return directory.revoke_key(
                key_id, actor=_actor(body.actor), reason=body.reason
            ).to_dict()

        return JSONResponse(await run_in_threadpool(revoke))

    @app.post("/internal/v1/staff/merchants/{merchant_id}/raw_card", include_in_schema=False)
    async def staff_raw_card(merchant_id: Id, body: RawCardBody, identity: Caller_) -> JSONResponse:
        def change() -> dict[str, Any]:
            actor = _actor(body.actor)
            if body.granted:
                if body.attestation_expires_on is None:
                    raise InvalidRequest(
                        "Granting raw_card_data needs attestation_expires_on.",
                        param="attestation_expires_on",
                    )
                capability = directory.grant_raw_card(
                    merchant_id,
                    attestation_expires_on=body.attestation_expires_on,
                    actor=actor,
                    reason=body.reason,
                )
            else:
                capability = directory.revoke_raw_card(merchant_id, actor=actor, reason=body.reason)
            return _capability(capability, today())

        return JSONResponse(await run_in_threadpool(change))

    @app.post("/internal/v1/staff/refunds", include_in_schema=False)
    async def staff_refund(
        body: StaffRefundBody,
        request: Request,
        identity: Caller_,
        idempotency_key: Annotated[str, Header(alias="Idempotency-Key")],
    ) -> JSONResponse:
        if not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise InvalidRequest("Idempotency-Key is invalid.", param="Idempotency-Key")
        approver, requester = _actor(body.actor), _actor(body.requested_by)
        if approver == requester:
            raise InvalidRequest(
                "A staff refund needs two people: the approver asked for it.", param="actor"
            )
        request_id = getattr(request.state, "request_id", None)

        def refund() -> tuple[int, dict[str, Any]]:
            merchant = directory.merchant(body.merchant_id)
            caller = Caller(
                merchant=MerchantAuth(
                    merchant_id=merchant.id,
                    key_id=f"staff:{approver}",
                    kind=KeyKind.SECRET,
                    livemode=merchant.livemode,
                    raw_card=directory.raw_card(merchant.id),
                ),
                request_id=request_id,
                idempotency_key=idempotency_key,
            )
            reply = runtime.payments.create_refund(
                caller, CreateRefund(body.charge, body.amount, body.reason)
            )
            if reply.status < 300 and not reply.replayed:
                runtime.audit.record(
                    EventType.ADMIN_REFUND,
                    actor=Actor(approver, ActorType.USER, on_behalf_of=merchant.id),
                    outcome=Outcome.SUCCESS,
                    target=body.charge,
                    resource="api:staff_refund",
                    details={
                        "refund_id": reply.body.get("id"),
                        "amount": body.amount,
                        "requested_by": requester,
                        "approved_by": approver,
                        "via": identity.name,
                    },
                    request_id=request_id,
                )
            return reply.status, reply.body

        status, payload = await run_in_threadpool(refund)
        return JSONResponse(payload, status_code=status)
