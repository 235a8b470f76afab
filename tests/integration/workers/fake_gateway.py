"""A recording TLS server that plays the CDE gateway (interfaces.md) for the job worker's tests.

It speaks the gateway's HTTP contract (service identity `worker` required), keeps a PSP-like
state per charge and refund, and injects faults: `unknown` answers after the payment was made,
answers slower than the worker's timeout, 503s before or after acting, failing status
lookups, pending refunds. It is deliberately *less* forgiving than the real gateway: an
authorization sent again for a charge whose last answer was lost (unknown or timed out),
without a status lookup in between, creates a second PSP payment and is recorded as a
violation, so "no retry can pay twice" is proven by the worker, not by this server.

Run: python -m tests.integration.workers.fake_gateway (settings in FAKE_* variables).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
from pathlib import Path
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from fincore.identity import ServiceIdentity, ServiceTokenVerifier
from fincore.web import TLSFiles, create_service_app, require_service, serve

DEFAULT_FAULTS = {
    "unknown": 0.0,  # answer `unknown` although the payment was made
    "slow": 0.0,  # make the payment, answer after the client's timeout
    "error_before": 0.0,  # 503 without doing anything
    "error_after": 0.0,  # do it, then answer 503
    "lookup_error": 0.0,  # GET /v1/payments answers 503
    "refund_pending": 0.0,  # a refund answers `pending` the first time
}


class FakePsp:
    def __init__(self, faults: dict[str, float], seed: int, slow_s: float) -> None:
        self.faults = dict(DEFAULT_FAULTS, **faults)
        self.rng = random.Random(seed)
        self.slow_s = slow_s
        self.payments: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.lost: set[str] = set()  # charges whose last authorization answer was lost
        self.violations: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = asyncio.Lock()

    def roll(self, name: str) -> bool:
        return self.rng.random() < self.faults.get(name, 0.0)

    def view(self, charge_id: str) -> dict[str, Any]:
        payment = self.payments[charge_id]
        view = {
            "object": "payment",
            "charge_id": charge_id,
            "status": payment["status"],
            "psp_reference": payment["psp_reference"],
            "amount": payment["amount"],
            "currency": payment["currency"],
        }
        if payment["status"] == "requires_capture":
            view["amount_capturable"] = payment["amount"]
        if payment["status"] == "succeeded":
            view["amount_received"] = payment["amount_received"]
        if payment["status"] == "failed":
            view.update(
                decline_code="generic_decline",
                failure_code="card_declined",
                message="Your card was declined.",
            )
        return view


def _error(status: int, code: str, message: str) -> JSONResponse:
    kind = "api_error" if status >= 500 else "invalid_request_error"
    return JSONResponse({"error": {"type": kind, "code": code, "message": message}}, status)


def build(psp: FakePsp, verifier: ServiceTokenVerifier) -> Any:
    app = create_service_app("gateway")
    guard = require_service(verifier, {"worker"})

    async def body_of(request: Request) -> dict[str, Any]:
        return dict(json.loads(await request.body()))

    async def lost_answer(charge_id: str) -> JSONResponse | None:
        """After acting: maybe lose the answer (unknown, too slow, 503)."""
        if psp.roll("unknown"):
            psp.lost.add(charge_id)
            return JSONResponse({"object": "payment", "charge_id": charge_id, "status": "unknown"})
        if psp.roll("slow"):
            psp.lost.add(charge_id)
            await asyncio.sleep(psp.slow_s)
            return JSONResponse(psp.view(charge_id))
        if psp.roll("error_after"):
            psp.lost.add(charge_id)
            return _error(503, "psp_unavailable", "The PSP gave no usable answer.")
        return None

    @app.post("/v1/authorizations")
    async def authorize(
        request: Request,
        identity: ServiceIdentity = Depends(guard),  # noqa: B008 - FastAPI idiom
    ) -> JSONResponse:
        body = await body_of(request)
        charge_id = body["charge_id"]
        async with psp.lock:
            psp.requests.append({"op": "authorize", "charge_id": charge_id})
            token = body["payment_method"]["token"]
            if token.startswith("tok_dead"):
                return _error(503, "psp_unavailable", "The PSP is down for this card.")
            if psp.roll("error_before"):
                return _error(503, "psp_unavailable", "The PSP gave no usable answer.")
            existing = psp.payments.get(charge_id)
            if existing is not None and charge_id not in psp.lost:
                return JSONResponse(psp.view(charge_id))
            if existing is not None:
                # Retried after a lost answer without asking first: a naive PSP pays twice.
                psp.violations.append({"charge_id": charge_id, "why": "retry without lookup"})
                existing["payments_created"] += 1
                return JSONResponse(psp.view(charge_id))
            declined = body["amount"] % 13 == 0
            status = (
                "failed" if declined else ("succeeded" if body["capture"] else "requires_capture")
            )
            psp.payments[charge_id] = {
                "status": status,
                "psp_reference": "pi_"
                + secrets.token_urlsafe(12).replace("-", "a").replace("_", "b"),
                "amount": body["amount"],
                "currency": body["currency"],
                "capture": body["capture"],
                "amount_received": body["amount"] if status == "succeeded" else 0,
                "amount_refunded": 0,
                "payments_created": 1,
                "merchant_id": body["merchant_id"],
            }
            lost = await lost_answer(charge_id) if not declined else None
        return lost or JSONResponse(psp.view(charge_id))

    @app.get("/v1/payments/{charge_id}")
    async def payment(
        charge_id: str,
        identity: ServiceIdentity = Depends(guard),  # noqa: B008 - FastAPI idiom
    ) -> JSONResponse:
        async with psp.lock:
            psp.requests.append({"op": "status", "charge_id": charge_id})
            if psp.roll("lookup_error"):
                return _error(503, "psp_unavailable", "The PSP gave no usable answer.")
            psp.lost.discard(charge_id)
            if charge_id not in psp.payments:
                return _error(404, "payment_not_found", "The PSP has no payment for this charge.")
            return JSONResponse(psp.view(charge_id))

    @app.post("/v1/captures")
    async def capture(
        request: Request,
        identity: ServiceIdentity = Depends(guard),  # noqa: B008 - FastAPI idiom
    ) -> JSONResponse:
        body = await body_of(request)
        charge_id = body["charge_id"]
        async with psp.lock:
            psp.requests.append({"op": "capture", "charge_id": charge_id})
            if psp.roll("error_before"):
                return _error(503, "psp_unavailable", "The PSP gave no usable answer.")
            payment = psp.payments.get(charge_id)
            if payment is None:
                return _error(404, "payment_not_found", "No payment is known for this charge.")
            if payment["status"] == "requires_capture":
                amount = body.get("amount") or payment["amount"]
                payment.update(status="succeeded", amount_received=amount)
            lost = await lost_answer(charge_id)
        return lost or JSONResponse(psp.view(charge_id))

    @app.post("/v1/cancellations")
    async def cancel(
        request: Request,
        identity: ServiceIdentity = Depends(guard),  # noqa: B008 - FastAPI idiom
    ) -> JSONResponse:
        body = await body_of(request)
        charge_id = body["charge_id"]
        async with psp.lock:
            psp.requests.append({"op": "cancel", "charge_id": charge_id})
            payment = psp.payments.get(charge_id)
            if payment is None:
                return _error(404, "payment_not_found", "No payment is known for this charge.")
            if payment["status"] == "requires_capture":
                payment["status"] = "canceled"
            lost = await lost_answer(charge_id)
        return lost or JSONResponse(psp.view(charge_id))

    @app.post("/v1/refunds")
    async def refund(
        request: Request,
        identity: ServiceIdentity = Depends(guard),  # noqa: B008 - FastAPI idiom
    ) -> JSONResponse:
        body = await body_of(request)
        refund_id, charge_id = body["refund_id"], body["charge_id"]
        async with psp.lock:
            psp.requests.append({"op": "refund", "charge_id": charge_id, "refund_id": refund_id})
            if psp.roll("error_before"):
                return _error(503, "psp_unavailable", "The PSP gave no usable answer.")
            existing = psp.refunds.get(refund_id)
            if existing is None:
                payment = psp.payments.get(charge_id)
                if payment is None or payment["status"] != "succeeded":
                    return _error(400, "charge_not_refundable", "The charge was not captured.")
                amount = body.get("amount") or payment["amount_received"]
                if payment["amount_refunded"] + amount > payment["amount_received"]:
                    return _error(400, "amount_too_large", "The refund exceeds the charge.")
                payment["amount_refunded"] += amount
                pending = psp.roll("refund_pending")
                existing = psp.refunds[refund_id] = {
                    "refund_id": refund_id,
                    "charge_id": charge_id,
                    "amount": amount,
                    "status": "pending" if pending else "succeeded",
                    "psp_reference": "pre_"
                    + secrets.token_urlsafe(12).replace("-", "a").replace("_", "b"),
                    "currency": payment["currency"],
                }
            elif existing["status"] == "pending":
                existing["status"] = "succeeded"
            view = {
                "object": "refund",
                **{
                    k: existing[k]
                    for k in (
                        "refund_id",
                        "charge_id",
                        "amount",
                        "status",
                        "psp_reference",
                        "currency",
                    )
                },
            }
            if psp.roll("error_after"):
                return _error(503, "psp_unavailable", "The PSP gave no usable answer.")
        return JSONResponse(view)

    @app.get("/_fake/state")
    async def state() -> JSONResponse:
        async with psp.lock:
            return JSONResponse(
                {
                    "payments": psp.payments,
                    "refunds": psp.refunds,
                    "violations": psp.violations,
                    "requests": len(psp.requests),
                    "ops": _ops(psp.requests),
                }
            )

    @app.post("/_fake/faults")
    async def faults(request: Request) -> JSONResponse:
        body = await body_of(request)
        async with psp.lock:
            psp.faults = dict(DEFAULT_FAULTS, **body)
        return JSONResponse(psp.faults)

    @app.get("/_fake/requests")
    async def requests_log() -> JSONResponse:
        async with psp.lock:
            return JSONResponse(psp.requests)

    return app


def _ops(requests: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in requests:
        counts[item["op"]] = counts.get(item["op"], 0) + 1
    return counts


def main() -> None:
    ca = Path(os.environ["FINCORE_CA_FILE"])
    psp = FakePsp(
        json.loads(os.environ.get("FAKE_FAULTS", "{}")),
        int(os.environ.get("FAKE_SEED", "1")),
        float(os.environ.get("FAKE_SLOW_S", "2.5")),
    )
    app = build(psp, ServiceTokenVerifier.from_file(ca, "gateway"))
    tls = TLSFiles(
        cert=Path(os.environ["FINCORE_SERVICE_CERT_FILE"]),
        key=Path(os.environ["FINCORE_SERVICE_KEY_FILE"]),
        ca=ca,
    )
    serve(app, host="127.0.0.1", port=int(os.environ["FINCORE_PORT"]), tls=tls)


if __name__ == "__main__":
    main()
