"""noncde.api (non-CDE): the process entry point.

`python -m noncde.api.app` serves the merchant API (HTTPS, port 8200 by default);
`python -m noncde.api.app admin …` is the staff CLI (merchants, keys, capabilities, webhook
endpoints, risk rules; every change audited); `python -m noncde.api.app openapi` prints the
OpenAPI document that is committed as `noncde/api/openapi.json`.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fincore.process import ProcessSettings
from noncde.api.config import ApiConfig

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import Receive, Scope, Send

# The web stack (FastAPI, routes) is imported only where an app is built, so the admin CLI
# starts without it.

OPENAPI_FILE = Path(__file__).with_name("openapi.json")


def app_from_env(settings: ProcessSettings) -> FastAPI:
    """The API app wired from this process's environment (runner or deployment)."""
    # httpx logs every request URL at INFO; ours go to the gateway only, but URLs stay out of
    # the logs on principle (PCI DSS 10.3: logs hold no data beyond what they need).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from noncde.api.bootstrap import build_runtime, seed_rules
    from noncde.api.web.routes import create_app

    runtime = build_runtime(
        ApiConfig.from_env(),
        verifier=settings.verifier("api") if settings.ca_file else None,
        credentials=settings.credentials(),
        ca_file=settings.ca_file,
    )
    seed_rules(runtime)
    return create_app(runtime)


class _WorkerApp:
    """ASGI app for `FINCORE_API_WORKERS` > 1: each uvicorn worker process builds its own
    runtime on first use (connections and threads are never shared across a fork)."""

    def __init__(self) -> None:
        self._app: FastAPI | None = None
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from fincore.logs import configure_logging

                    settings = ProcessSettings.from_env("api", "noncde", 8200)
                    configure_logging(settings.component)
                    self._app = app_from_env(settings)
        await self._app(scope, receive, send)


worker_app = _WorkerApp()


def openapi_json() -> str:
    """The OpenAPI document, built from the routes (no database or network needed)."""
    from noncde.api.bootstrap import build_runtime
    from noncde.api.web.docs import openapi_document
    from noncde.api.web.routes import create_app

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "FINCORE_VAR_DIR": tmp,
            "FINCORE_ENV": "development",
            "FINCORE_NONCDE_DB_URL": "memory://",
            "FINCORE_NONCDE_AUDIT_URL": "memory://openapi",
        }
        runtime = build_runtime(ApiConfig.from_env(env), env=env)
        try:
            document: dict[str, Any] = openapi_document(create_app(runtime, manage_runtime=False))
        finally:
            runtime.close()
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] == "admin":
        from noncde.api.cli import main as admin

        raise SystemExit(admin(args[1:]))
    if args and args[0] == "openapi":
        sys.stdout.write(openapi_json())
        return
    from fincore.process import start_process
    from fincore.web import serve

    settings = start_process("api", "noncde", 8200)
    config = ApiConfig.from_env()
    if config.workers > 1:
        serve(
            "noncde.api.app:worker_app",
            host=settings.host,
            port=settings.port,
            tls=settings.tls(),
            workers=config.workers,
        )
        return
    serve(app_from_env(settings), host=settings.host, port=settings.port, tls=settings.tls())


if __name__ == "__main__":
    main()
