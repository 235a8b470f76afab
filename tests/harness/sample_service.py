"""A tiny service on the FinCore web kit, for testing the kit itself over real TLS.

Run by tests as `python -m tests.harness.sample_service` with the runner's environment.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from pydantic import BaseModel

from fincore.identity import ServiceIdentity
from fincore.process import start_process
from fincore.web import ApiError, create_service_app, require_service, serve


class Echo(BaseModel):
    amount: int
    currency: str


def build(verifier=None) -> FastAPI:  # type: ignore[no-untyped-def]
    app = create_service_app("sample", readiness={"always": lambda: True}, max_body=1024)
    refused: list[str] = []
    app.state.refused = refused

    @app.post("/v1/echo")
    async def echo(body: Echo) -> dict[str, object]:
        return {"amount": body.amount, "currency": body.currency}

    @app.get("/v1/teapot")
    async def teapot() -> None:
        raise ApiError(402, "Your card was declined.", type="card_error", code="card_declined")

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail 4242424242424242")

    if verifier is not None:
        guard = require_service(verifier, {"gateway"}, lambda req, why, who: refused.append(why))

        @app.get("/internal/whoami")
        async def whoami(identity: ServiceIdentity = Depends(guard)) -> dict[str, str]:  # noqa: B008 - FastAPI's dependency idiom
            return {"name": identity.name, "zone": identity.zone}

    return app


def main() -> None:
    settings = start_process("sample", "cde", 0)
    serve(
        build(settings.verifier("sample")),
        host=settings.host,
        port=settings.port,
        tls=settings.tls(),
    )


if __name__ == "__main__":
    main()
