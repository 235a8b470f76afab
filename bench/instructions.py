"""Instructions per tokenize request, counted by valgrind (not timed): the vault vs the minimal
endpoint, both driven in-process through ASGI with 16 requests in flight.

Wall-clock figures on these shared VMs move by 10-15 % from one minute to the next, which hides
any change smaller than that. `valgrind --tool=callgrind` counts the instructions the process
executes instead: the same code and inputs give nearly the same count on a busy or an idle
machine. Each app runs in its own child process under callgrind with counting off
(`--instr-atstart=no`); the child builds the app, warms it up, switches counting on with
`callgrind_control -i on` for a fixed number of requests (every thread of the process counts:
the vault's SQLite writer and audit thread too), then off. No TLS and no HTTP parsing (the same
for both apps over HTTPS); the figure is what each app itself executes per request.

    python -m bench.instructions [--quick] [--json]
    python -m bench.instructions --child vault|baseline VAR_DIR    (what the parent runs; the
                                                                   count in FINCORE_BENCH_REQUESTS)

docs/vault.md "Performance" says how the figures guided the vault's changes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import Report

ROOT = Path(__file__).resolve().parent.parent
IN_FLIGHT = 16
_COLLECTED = re.compile(r"Collected\s*:\s*([0-9]+)")

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


# ---------------------------------------------------------------- the child: one app


async def _drive(app: Asgi, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    """Warm up, then REQUESTS requests with counting on; every answer must be a 201."""
    requests = int(os.environ["FINCORE_BENCH_REQUESTS"])
    statuses: dict[int, int] = {}

    async def one() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "https",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8101),
            "state": {},
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # no disconnect while the app answers
            raise AssertionError("unreachable")

        status = [0]

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]

        await app(scope, receive, send)
        statuses[status[0]] = statuses.get(status[0], 0) + 1

    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    await asyncio.gather(*(worker(25) for _ in range(IN_FLIGHT)))  # warm-up, not counted
    subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], capture_output=True)
    await asyncio.gather(*(worker(requests // IN_FLIGHT) for _ in range(IN_FLIGHT)))
    subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], capture_output=True)
    if set(statuses) != {201}:
        raise SystemExit(f"unexpected answers: {statuses}")


async def _with_lifespan(app: Asgi, run: Callable[[], Awaitable[None]]) -> None:
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    answers: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return await events.get()

    async def send(message: dict[str, Any]) -> None:
        answers.append(message)

    await events.put({"type": "lifespan.startup"})
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    while not answers:
        await asyncio.sleep(0.01)
    if answers[0]["type"] != "lifespan.startup.complete":
        raise SystemExit(f"app did not start: {answers[0]}")
    try:
        await run()
    finally:
        await events.put({"type": "lifespan.shutdown"})
        await task


def _child_vault(var: Path) -> None:
    from bench.vault import CARD, MERCHANT, vault_setup
    from cde.vault.app import create_vault_app
    from cde.vault.bootstrap import build_vault
    from cde.vault.config import VaultSettings
    from fincore.identity import TOKEN_HEADER
    from fincore.logs import configure_logging
    from fincore.process import ProcessSettings
    from fincore.web import freeze_startup_heap

    plan, env, token = vault_setup(var)
    port = plan.ports["vault"]
    env["FINCORE_PORT"] = str(port)
    os.environ.update(env)
    process = ProcessSettings.from_env("vault", "cde", port)
    configure_logging("vault")
    runtime = build_vault(VaultSettings.from_env(), component="vault")
    app = create_vault_app(runtime, process.verifier("vault"))
    body = json.dumps({"merchant_id": MERCHANT, "card": CARD}).encode()
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (TOKEN_HEADER.lower().encode(), token.encode()),
    ]

    async def main() -> None:
        from datetime import date

        from audit.domain import Actor, ActorType

        async def run() -> None:
            await runtime.admin(Actor("bench", ActorType.USER)).attest(MERCHANT, date(2099, 1, 1))
            freeze_startup_heap()  # as the served vault does
            await _drive(app, "/v1/tokens", headers, body)

        await _with_lifespan(app, run)

    _run_loop(main())


def _child_baseline(var: Path) -> None:
    from bench.vault import CARD, MERCHANT, baseline_app

    os.environ["FINCORE_BENCH_BASELINE_DB"] = str(var / "baseline.db")
    app = baseline_app()
    body = json.dumps({"merchant_id": MERCHANT, "card": CARD}).encode()
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]

    async def main() -> None:
        await _with_lifespan(app, lambda: _drive(app, "/tokenize", headers, body))

    _run_loop(main())


def _run_loop(main: Awaitable[None]) -> None:
    import uvloop  # the served apps' loop (fincore.web.serve)

    uvloop.install()
    asyncio.run(main)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the parent


def instructions_per_request(which: str, requests: int, work: Path) -> float:
    """Run one app's child under callgrind; the instructions counted, per request."""
    log = work / f"{which}.valgrind.log"
    var = work / which
    var.mkdir()
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={work / (which + '.callgrind')}",
            f"--log-file={log}",
            sys.executable,
            "-m",
            "bench.instructions",
            "--child",
            which,
            str(var),
        ],
        env=os.environ | {"FINCORE_BENCH_REQUESTS": str(requests), "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    text = log.read_text() if log.exists() else ""
    found = _COLLECTED.search(text)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"{which}: callgrind run failed: {result.stderr[-1500:]}{text[-500:]}")
    return int(found.group(1)) / requests


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        child = _child_vault if argv[1] == "vault" else _child_baseline
        child(Path(argv[2]))
        return 0
    report = Report("instructions per tokenize request (valgrind callgrind, in-process ASGI)", argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed: 'make bench' installs it", file=sys.stderr)
        return 1
    requests = 320 if report.quick else 1_600
    with tempfile.TemporaryDirectory(prefix="fincore-bench-instr-") as tmp:
        work = Path(tmp)
        vault = instructions_per_request("vault", requests, work)
        baseline = instructions_per_request("baseline", requests, work)
    report.add(
        f"vault tokenize, instructions per request (c={IN_FLIGHT}, all threads)",
        vault / 1000,
        "k instr",
        "minimal FastAPI AES-GCM+SQLite endpoint",
        baseline / 1000,
    )
    report.print_table()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
