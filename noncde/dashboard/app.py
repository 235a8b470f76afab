"""noncde.dashboard: the process entry point."""

from __future__ import annotations

from fincore.process import start_process
from fincore.web import create_service_app, serve


def main(argv: list[str] | None = None) -> None:
    settings = start_process("dashboard", "noncde", 8300)
    app = create_service_app("dashboard")
    serve(app, host=settings.host, port=settings.port, tls=settings.tls())


if __name__ == "__main__":
    main()
