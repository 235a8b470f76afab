"""cde.gateway: the process entry point."""

from __future__ import annotations

from fincore.process import start_process
from fincore.web import create_service_app, serve


def main(argv: list[str] | None = None) -> None:
    settings = start_process("gateway", "cde", 8102)
    app = create_service_app("gateway")
    serve(app, host=settings.host, port=settings.port, tls=settings.tls())


if __name__ == "__main__":
    main()
