"""noncde.dashboard (non-CDE): the process entry point.

`python -m noncde.dashboard.app` serves the staff dashboard (HTTPS, port 8300 by default);
`python -m noncde.dashboard.app admin …` is the staff-account CLI (every change audited).
"""

from __future__ import annotations

import sys

from fastapi import FastAPI

from fincore.process import ProcessSettings, start_process
from fincore.web import serve
from noncde.dashboard.bootstrap import build_runtime
from noncde.dashboard.config import DashboardConfig
from noncde.dashboard.web.routes import create_app


def app_from_env(settings: ProcessSettings) -> FastAPI:
    """The dashboard wired from this process's environment (runner or deployment)."""
    runtime = build_runtime(
        DashboardConfig.from_env(),
        credentials=settings.credentials(),
        ca_file=settings.ca_file,
    )
    return create_app(runtime)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] == "admin":
        from noncde.dashboard.cli import main as admin

        raise SystemExit(admin(args[1:]))
    settings = start_process("dashboard", "noncde", 8300)
    serve(app_from_env(settings), host=settings.host, port=settings.port, tls=settings.tls())


if __name__ == "__main__":
    main()
