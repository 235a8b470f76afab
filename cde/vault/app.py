"""cde.vault: the process entry point."""

from __future__ import annotations

import sys

from fincore.process import start_process
from fincore.web import create_service_app, serve

ROLES = ("vault", "ingress")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    role = args[0] if args else ROLES[0]
    if role not in ROLES:
        raise SystemExit("usage: python -m cde.vault.app {vault|ingress}")
    settings = start_process(role, "cde", 8101)
    app = create_service_app(role)
    serve(app, host=settings.host, port=settings.port, tls=settings.tls())


if __name__ == "__main__":
    main()
