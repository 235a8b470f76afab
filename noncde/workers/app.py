"""noncde.workers: the process entry point."""

from __future__ import annotations

import sys

from fincore.process import start_process
from fincore.web import create_service_app, serve

ROLES = ("jobs", "webhooks")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    role = args[0] if args else ROLES[0]
    if role not in ROLES:
        raise SystemExit("usage: python -m noncde.workers.app {jobs|webhooks}")
    settings = start_process(role, "noncde", 8211)
    app = create_service_app(role)
    serve(app, host=settings.host, port=settings.port, tls=settings.tls())


if __name__ == "__main__":
    main()
