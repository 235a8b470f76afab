"""moto in server mode, answering one request at a time: `python -m tests.integration.platform.
serial_moto <port>`.

moto's SQS ReceiveMessage takes no lock, so under the threaded server two concurrent receives can
both take the same visible message (moto/sqs/models.py receive_message) — something SQS itself
never does within a visibility timeout. The multi-worker tests run against this serial server so
that a duplicate they see is ours, not the peer's.
"""

from __future__ import annotations

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

if __name__ == "__main__":
    run_simple(
        "127.0.0.1",
        int(sys.argv[1]),
        DomainDispatcherApplication(create_backend_app),
        threaded=False,
    )
