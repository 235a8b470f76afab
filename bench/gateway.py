"""bench/gateway.py: authorizations per second through the PSP gateway, each beside the PSP
sandbox's own rate for the same PSP work, measured in the same run, the same way.

Real processes on free loopback ports (TLS with a throw-away CA): the PSP sandbox, the vault and
the gateway, with their default adapters (SQLite, file audit log). Load: an asyncio httpx
client with `CONCURRENCY` requests in flight, after a warm-up.

- vault-token authorization (worker -> gateway: detokenize at the vault, PaymentMethod and a
  confirmed PaymentIntent at the sandbox, four CDE audit records), against the sandbox alone
  doing the same two calls (card PaymentMethod + confirmed PaymentIntent);
- PSP-token authorization (gateway -> one confirmed PaymentIntent), against the sandbox alone
  creating a confirmed PaymentIntent.

The sandbox sends no webhooks in this bench (no endpoint is configured), so each figure is the
authorization path only. `--quick` shortens every run; `--json` prints one JSON object per
figure; `--fsync batch` uses the audit log's batched fsync (the default is fsync per record).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from bench.common import Report, percentile

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 16
MERCHANT = "mer_bench"
CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}
PM_FORM = {
    "type": "card",
    "card[number]": "4242424242424242",
    "card[exp_month]": "12",
    "card[exp_year]": "2034",
    "card[cvc]": "123",
}


@dataclass
class Load:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    done: int = 0
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per successful op, by process


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(
    op: Callable[[int], Awaitable[bool]], seconds: float, concurrency: int = CONCURRENCY
) -> Load:
    """Run `op(n)` from `concurrency` workers for `seconds`; ops/s and latency percentiles."""
    latencies: list[float] = []
    errors = 0
    counter = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors, counter
        while time.perf_counter() < deadline:
            n = counter
            counter += 1
            started = time.perf_counter()
            ok = await op(n)
            latencies.append(time.perf_counter() - started)
            errors += 0 if ok else 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return Load(
        rate=(len(latencies) - errors) / elapsed,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        errors=errors,
        done=len(latencies) - errors,
    )


# ---------------------------------------------------------------- the stack


@dataclass
class Stack:
    sandbox_url: str
    sandbox_key: str
    vault_url: str
    gateway_url: str
    ca: Path
    worker: Any  # ServiceCredentials
    ingress: Any
    pids: dict[str, int]


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, verify: Any) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(url + "/healthz", verify=verify, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become healthy")


@contextmanager
def stack(var: Path, fsync: str) -> Iterator[Stack]:
    from audit.bootstrap import open_audit_log
    from audit.domain import Actor, ActorType
    from cde.vault.bootstrap import build_vault
    from cde.vault.config import VaultSettings
    from fincore.identity import ServiceCredentials
    from fincore.netutil import free_port
    from fincore.pki import ensure_ca, issue_service_credentials
    from fincore.runner import COMPONENTS, Plan, component_env, default_ports
    from fincore.web import client_ssl_context

    plan = Plan(var_dir=var, ports={n: free_port() for n in default_ports()}, environment="test")
    ensure_ca(plan.pki_dir)
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        args: list[str], env: dict[str, str], name: str
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log = var / f"{name}.out"
        proc = subprocess.Popen(
            args,
            env=env,
            cwd=ROOT,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(proc)
        return proc, log

    try:
        sandbox_key = "sk_test_" + secrets.token_hex(16)
        webhook_secret = "whsec_" + secrets.token_hex(16)
        sandbox_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
        sandbox_env.update(
            FINCORE_ENV="test",
            FINCORE_VAR_DIR=str(var),
            FINCORE_PORT=str(plan.ports["psp-sandbox"]),
            FINCORE_TLS="0",
            FINCORE_SANDBOX_SECRET_KEY=sandbox_key,
            FINCORE_SANDBOX_WEBHOOK_SECRET=webhook_secret,
            FINCORE_SANDBOX_SETTLEMENT_JOB="0",
        )
        proc, log = start([sys.executable, "-m", "psp_sandbox.app"], sandbox_env, "sandbox")
        sandbox_url = plan.url("psp-sandbox")
        _wait(sandbox_url, proc, log, True)

        cde_env = {"FINCORE_CDE_AUDIT_FSYNC": fsync}
        vault_env = component_env(COMPONENTS["vault"], plan, os.environ) | cde_env
        vault_env.pop("FINCORE_PARENT_PID", None)
        vault_env.update(FINCORE_VAULT_RATE_PER_S="1000000", FINCORE_VAULT_RATE_BURST="1000000")
        audit = open_audit_log("cde", "bench", env=vault_env)
        runtime = build_vault(VaultSettings.from_env(vault_env), component="bench", audit=audit)

        async def attest() -> None:
            admin = runtime.admin(Actor("bench", ActorType.USER))
            await admin.ensure_primary_kek()
            await admin.attest(MERCHANT, date(2099, 1, 1), note="bench")
            await runtime.close()

        asyncio.run(attest())
        audit.close()
        proc, log = start([sys.executable, "-m", "cde.vault.app", "vault"], vault_env, "vault")
        verify = client_ssl_context(plan.ca_file)
        _wait(plan.url("vault"), proc, log, verify)

        gateway_env = component_env(COMPONENTS["gateway"], plan, os.environ) | cde_env
        gateway_env.pop("FINCORE_PARENT_PID", None)
        gateway_env.update(
            FINCORE_GATEWAY_PSP_URL=sandbox_url,
            FINCORE_GATEWAY_PSP_SECRET_KEY=sandbox_key,
            FINCORE_GATEWAY_PSP_WEBHOOK_SECRET=webhook_secret,
        )
        proc, log = start([sys.executable, "-m", "cde.gateway.app"], gateway_env, "gateway")
        _wait(plan.url("gateway"), proc, log, verify)

        def creds(name: str, zone: str) -> ServiceCredentials:
            files = issue_service_credentials(plan.pki_dir, name, zone)
            return ServiceCredentials.from_files(files.key, files.cert)

        yield Stack(
            sandbox_url,
            sandbox_key,
            plan.url("vault"),
            plan.url("gateway"),
            plan.ca_file,
            creds("worker", "noncde"),
            creds("ingress", "cde"),
            {
                name: proc.pid
                for name, proc in zip(("sandbox", "vault", "gateway"), procs, strict=True)
            },
        )
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


# ---------------------------------------------------------------- the figures


async def measure(s: Stack, seconds: float) -> dict[str, Load]:
    from fincore.web import service_client

    limits = httpx.Limits(max_connections=CONCURRENCY * 2, max_keepalive_connections=CONCURRENCY)
    sandbox = httpx.AsyncClient(
        base_url=s.sandbox_url, auth=(s.sandbox_key, ""), timeout=30, limits=limits
    )
    vault = service_client(
        s.vault_url,
        credentials=s.ingress,
        audience="vault",
        ca_file=s.ca,
        asynchronous=True,
        timeout=30,
        limits=limits,
    )
    gateway = service_client(
        s.gateway_url,
        credentials=s.worker,
        audience="gateway",
        ca_file=s.ca,
        asynchronous=True,
        timeout=30,
        limits=limits,
    )
    assert isinstance(vault, httpx.AsyncClient) and isinstance(gateway, httpx.AsyncClient)

    async def make(n: int, factory: Callable[[], Awaitable[str]]) -> list[str]:
        made: list[str] = []

        async def one(_n: int) -> bool:
            made.append(await factory())
            return True

        while len(made) < n:
            await drive(one, 0.5)
        return made

    async def token() -> str:
        r = await vault.post("/v1/tokens", json={"merchant_id": MERCHANT, "card": CARD})
        r.raise_for_status()
        return str(r.json()["token"])

    async def pm() -> str:
        r = await sandbox.post("/v1/payment_methods", data=PM_FORM)
        r.raise_for_status()
        return str(r.json()["id"])

    run = secrets.token_hex(4)
    failures: list[str] = []
    charges = iter(range(10**9))

    async def authorize(method: str, value: str, n: int) -> bool:
        # A fresh charge id per call: a repeated one would be an idempotent replay (no PSP work).
        # The `x` keeps the run's hex and the counter apart: joined, a run ending in digits
        # made a 13-digit number that was Luhn-valid now and then, and the gateway (rightly)
        # refused those requests as card data. (Charge ids are letters and digits only.)
        body = {
            "charge_id": f"ch_b{run}x{next(charges):09d}",
            "merchant_id": MERCHANT,
            "amount": 1000,
            "currency": "usd",
            "capture": True,
            "payment_method": {"type": method, "token": value},
        }
        r = await gateway.post("/v1/authorizations", json=body)
        ok = r.status_code == 200 and r.json()["status"] == "succeeded"
        if not ok and len(failures) < 5:
            failures.append(f"{r.status_code} {r.text[:300]}")
        return ok

    tokens: list[str] = []
    pms: list[str] = []
    token_cursor = iter(range(10**9))

    topped_up = [0]  # fresh tokens made inside a measured run: the pool was sized too small

    async def fresh(
        pool: list[str], cursor: Iterator[int], factory: Callable[[], Awaitable[str]]
    ) -> str:
        index = next(cursor)
        if index < len(pool):
            return pool[index]
        topped_up[0] += 1
        return await factory()

    async def gateway_vault(n: int) -> bool:
        return await authorize("vault_token", await fresh(tokens, token_cursor, token), n)

    pm_cursor = iter(range(10**9))

    async def next_pm() -> str:
        return await fresh(pms, pm_cursor, pm)

    async def gateway_psp(n: int) -> bool:
        return await authorize("psp_token", await next_pm(), n)

    async def intent(method: str) -> bool:
        r = await sandbox.post(
            "/v1/payment_intents",
            data={"amount": "1000", "currency": "usd", "payment_method": method, "confirm": "true"},
        )
        return r.status_code == 200 and r.json()["status"] == "succeeded"

    async def sandbox_card(_n: int) -> bool:
        return await intent(await pm())

    async def sandbox_intent(_n: int) -> bool:
        return await intent(await next_pm())

    results: dict[str, Load] = {}

    # The sandbox's own rate first; it bounds the gateway's, and sizes the token pools so
    # that every gateway authorization uses a fresh vault token (with its CVC) or PSP token.
    async def measured(op: Callable[[int], Awaitable[bool]]) -> Load:
        await drive(op, min(1.0, seconds / 2))  # warm-up
        before = {name: cpu_seconds(pid) for name, pid in s.pids.items()}
        load = await drive(op, seconds)
        for name, pid in s.pids.items():
            load.cpu_ms[name] = (cpu_seconds(pid) - before[name]) * 1000 / max(1, load.done)
        return load

    results["sandbox_card"] = await measured(sandbox_card)
    expected = results["sandbox_card"].rate * 1.5 * (seconds + 1) + 50
    tokens.extend(await make(int(expected), token))
    pms.extend(await make(int(expected * 3), pm))
    for name, op in (
        ("gateway_vault", gateway_vault),
        ("sandbox_intent", sandbox_intent),
        ("gateway_psp", gateway_psp),
    ):
        results[name] = await measured(op)
    for client in (sandbox, vault, gateway):
        await client.aclose()
    for failure in failures:
        print("bench: gateway answered", failure, file=sys.stderr)
    if topped_up[0]:
        # The pools are sized from the sandbox's own rate; a noisy first measurement can make
        # them too small. The shortfall was made during the runs (their figures include it).
        print(f"bench: {topped_up[0]} tokens made during the measured runs", file=sys.stderr)
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--fsync", choices=("always", "batch"), default="always")
    extra, _ = parser.parse_known_args(argv)
    report = Report("cde.gateway: authorizations/s through gateway + vault + PSP sandbox", argv)
    seconds = 2.0 if report.quick else 6.0
    with (
        tempfile.TemporaryDirectory(prefix="fincore-bench-gateway-") as tmp,
        stack(Path(tmp), extra.fsync) as running,
    ):
        results = asyncio.run(measure(running, seconds))
    for name, load in results.items():
        if load.errors:
            raise RuntimeError(f"{name}: {load.errors} failed operations during the load run")
    fsync = f"audit fsync {extra.fsync}"
    report.add(
        f"authorize, vault token (c={CONCURRENCY}, {fsync})",
        results["gateway_vault"].rate,
        "auth/s",
        "sandbox alone: card PaymentMethod + confirmed PaymentIntent",
        results["sandbox_card"].rate,
        p50_ms=results["gateway_vault"].p50_ms,
        p99_ms=results["gateway_vault"].p99_ms,
    )
    report.add(
        f"authorize, PSP token (c={CONCURRENCY}, {fsync})",
        results["gateway_psp"].rate,
        "auth/s",
        "sandbox alone: confirmed PaymentIntent",
        results["sandbox_intent"].rate,
        p50_ms=results["gateway_psp"].p50_ms,
        p99_ms=results["gateway_psp"].p99_ms,
    )
    vault_path, card_path = results["gateway_vault"].cpu_ms, results["sandbox_card"].cpu_ms
    report.add(
        "CPU per vault-token authorization: gateway + vault",
        vault_path["gateway"] + vault_path["vault"],
        "ms",
        "sandbox CPU per card PaymentMethod + PaymentIntent",
        card_path["sandbox"],
    )
    psp_path, intent_path = results["gateway_psp"].cpu_ms, results["sandbox_intent"].cpu_ms
    report.add(
        "CPU per PSP-token authorization: gateway",
        psp_path["gateway"],
        "ms",
        "sandbox CPU per confirmed PaymentIntent",
        intent_path["sandbox"],
    )
    report.add(
        f"sandbox alone: card PaymentMethod + PaymentIntent (c={CONCURRENCY})",
        results["sandbox_card"].rate,
        "ops/s",
        "sandbox alone: confirmed PaymentIntent",
        results["sandbox_intent"].rate,
        p50_ms=results["sandbox_card"].p50_ms,
        p99_ms=results["sandbox_card"].p99_ms,
    )
    report.print_table()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
