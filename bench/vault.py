"""bench/vault.py: the card vault's speed, each figure beside a baseline measured in the same run.

Figures (docs/vault.md "Performance" explains the choices they drove):
- in-process tokenize and detokenize ops/s through `VaultService` with the default adapters
  (SQLite WAL, key file, in-memory CVC store, file audit sink with batched fsync), 64 calls in
  flight on one event loop, against aws-encryption-sdk per-record encrypt/decrypt with the
  SDK's default (signing) suite and no cache;
- the same SDK per record with the committing no-signing suite, and the vault's own record
  seal, against the same naive baseline (what the suite and the design choice are worth);
- HTTPS tokenize req/s, p50 and p99 at concurrency 16 through the real vault process (TLS,
  service token, audit), against a minimal FastAPI endpoint doing one AES-GCM encrypt and one
  SQLite insert, served and loaded the same way (uvicorn+uvloop+httptools, TLS, wrk -t1 if
  installed, else an httpx client).

`--quick` shortens every run (smoke test); `--json` prints one JSON object per figure.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import secrets
import shutil
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bench.common import Report, ops_per_second, percentile

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 16
IN_PROCESS_CONCURRENCY = 64
MERCHANT = "mer_bench"
CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}
RECORD = b'{"v":1,"n":"4242424242424242","m":12,"y":2031,"b":"visa"}'


# ---------------------------------------------------------------- SDK baselines


def _raw_master_key() -> Any:
    from aws_encryption_sdk.identifiers import EncryptionKeyType, WrappingAlgorithm
    from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
    from aws_encryption_sdk.key_providers.raw import RawMasterKey

    return RawMasterKey(
        provider_id="bench",
        key_id=b"bench-kek",
        wrapping_key=WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
            wrapping_key=os.urandom(32),
            wrapping_key_type=EncryptionKeyType.SYMMETRIC,
        ),
    )


def sdk_figures(seconds: float, repeats: int) -> dict[str, float]:
    """ESDK per-record encrypt/decrypt (default suite, no cache; and the no-signing suite)."""
    import aws_encryption_sdk
    from aws_encryption_sdk import Algorithm, CommitmentPolicy

    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    master = _raw_master_key()

    def context() -> dict[str, str]:
        return {"token": "tok_" + secrets.token_hex(13), "merchant_id": MERCHANT}

    def encrypt_default() -> object:
        return client.encrypt(source=RECORD, key_provider=master, encryption_context=context())

    nosign = Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY

    def encrypt_nosign() -> object:
        return client.encrypt(
            source=RECORD, key_provider=master, encryption_context=context(), algorithm=nosign
        )

    sample_default, _ = client.encrypt(
        source=RECORD, key_provider=master, encryption_context=context()
    )
    sample_nosign, _ = client.encrypt(
        source=RECORD, key_provider=master, encryption_context=context(), algorithm=nosign
    )
    return {
        "encrypt_default": ops_per_second(encrypt_default, seconds=seconds, repeats=repeats),
        "decrypt_default": ops_per_second(
            lambda: client.decrypt(source=sample_default, key_provider=master),
            seconds=seconds,
            repeats=repeats,
        ),
        "encrypt_nosign": ops_per_second(encrypt_nosign, seconds=seconds, repeats=repeats),
        "ciphertext_default": float(len(sample_default)),
        "ciphertext_nosign": float(len(sample_nosign)),
    }


def seal_figure(seconds: float, repeats: int) -> tuple[float, int]:
    """The vault's per-record seal (HKDF-SHA512 + AES-256-GCM with the token/merchant context)."""
    from cde.vault.domain.crypto import seal_record

    key = os.urandom(32)
    size = len(seal_record(key, "tok_x", MERCHANT, RECORD))
    return (
        ops_per_second(
            lambda: seal_record(key, "tok_" + secrets.token_hex(13), MERCHANT, RECORD),
            seconds=seconds,
            repeats=repeats,
        ),
        size,
    )


def cpu_path_figure(seconds: float, repeats: int) -> float:
    """The tokenize CPU path without I/O: validate, token, fingerprint, record and CVC seals."""
    from cde.vault.domain.cards import validate_card
    from cde.vault.domain.crypto import fingerprint, seal_cvc, seal_record
    from cde.vault.domain.ids import new_token
    from cde.vault.domain.records import encode_payload

    today = datetime.now(UTC).date()
    record_key, fingerprint_key, cvc_key = os.urandom(32), os.urandom(32), os.urandom(32)

    def tokenize_cpu() -> None:
        card = validate_card(
            number=CARD["number"],
            exp_month=CARD["exp_month"],
            exp_year=CARD["exp_year"],
            cvc=CARD["cvc"],
            today=today,
        )
        token = new_token()
        fingerprint(fingerprint_key, card.pan)
        seal_record(record_key, token, MERCHANT, encode_payload(card))
        assert card.cvc is not None
        seal_cvc(cvc_key, token, MERCHANT, card.cvc.reveal().encode())

    return ops_per_second(tokenize_cpu, seconds=seconds, repeats=repeats)


# ---------------------------------------------------------------- in-process vault


def _bench_env(var: Path) -> dict[str, str]:
    return {
        "FINCORE_VAR_DIR": str(var),
        "FINCORE_ENV": "development",
        "FINCORE_VAULT_RATE_PER_S": "1000000",
        "FINCORE_VAULT_RATE_BURST": "1000000",
        # The audit log fsyncs at most every 50 ms (the window SQLite's synchronous=NORMAL
        # already has), never per record: docs/vault.md "Workers and durability".
        "FINCORE_CDE_AUDIT_FSYNC": "batch",
        "FINCORE_CDE_AUDIT_FSYNC_BATCH_RECORDS": "1000",
        "FINCORE_CDE_AUDIT_FSYNC_BATCH_MS": "50",
    }


async def _in_process(
    var: Path, seconds: float, extra: dict[str, str] | None = None
) -> tuple[float, float, tuple[int, int]]:
    from audit.domain import Actor, ActorType
    from cde.vault.bootstrap import build_vault
    from cde.vault.config import VaultSettings
    from cde.vault.service import Caller
    from fincore.web import freeze_startup_heap

    os.environ.update(_bench_env(var) | (extra or {}))
    runtime = build_vault(VaultSettings.from_env(), component="bench-vault")
    await runtime.start()
    await runtime.admin(Actor("bench", ActorType.USER)).attest(MERCHANT, date(2099, 1, 1))
    freeze_startup_heap()  # as the served vault does (fincore.web.serve)
    ingress, gateway = Caller("ingress"), Caller("gateway")
    tokens: list[str] = []

    async def tokenize_loop(deadline: float, counter: list[int], keep: bool) -> None:
        while time.perf_counter() < deadline:
            result = await runtime.service.tokenize(merchant_id=MERCHANT, card=CARD, caller=ingress)
            counter[0] += 1
            if keep:
                tokens.append(result.token)

    async def detokenize_loop(deadline: float, counter: list[int], offset: int) -> None:
        index = offset
        while time.perf_counter() < deadline:
            token = tokens[index % len(tokens)]
            await runtime.service.detokenize(token=token, merchant_id=MERCHANT, caller=gateway)
            counter[0] += 1
            index += IN_PROCESS_CONCURRENCY

    async def measure(make: Callable[[float, list[int], int], Any]) -> float:
        counter = [0]
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(*(make(deadline, counter, i) for i in range(IN_PROCESS_CONCURRENCY)))
        return counter[0] / (time.perf_counter() - start)

    try:
        await measure(lambda d, c, i: tokenize_loop(min(d, time.perf_counter() + 0.5), c, True))
        tokenize = await measure(lambda d, c, _i: tokenize_loop(d, c, False))
        detokenize = await measure(detokenize_loop)
        stats = getattr(runtime.store, "writer_stats", (0, 0))
    finally:
        await runtime.close()
        gc.unfreeze()
    return tokenize, detokenize, stats


def in_process_figures(
    var: Path, seconds: float, repeats: int, extra: dict[str, str] | None = None
) -> tuple[float, float, float]:
    tokenize, detokenize = [], []
    per_txn = 0.0
    saved = dict(os.environ)
    try:
        results = _in_process_runs(var, seconds, repeats, extra)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for tok, detok, (batches, jobs) in results:
        tokenize.append(tok)
        detokenize.append(detok)
        per_txn = jobs / batches if batches else 0.0
    return statistics.median(tokenize), statistics.median(detokenize), per_txn


def _in_process_runs(
    var: Path, seconds: float, repeats: int, extra: dict[str, str] | None
) -> list[tuple[float, float, tuple[int, int]]]:
    results = []
    for index in range(repeats):
        folder = var / f"inproc-{index}-{len(extra or {})}"
        folder.mkdir()
        results.append(asyncio.run(_in_process(folder, seconds, extra)))
    return results


# ---------------------------------------------------------------- HTTP


@dataclass
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float = 0.0  # server CPU time per request (all its processes)


def _unit_ms(value: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s)", value)
    if match is None:
        raise ValueError(f"cannot parse wrk latency {value!r}")
    number, unit = float(match.group(1)), match.group(2)
    return number / 1000 if unit == "us" else number * 1000 if unit == "s" else number


def wrk_load(
    url: str, body: bytes, headers: dict[str, str], seconds: float, work: Path
) -> LoadResult:
    script = work / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body.decode())}"]
    for name, value in headers.items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{CONCURRENCY}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _unit_ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _unit_ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    if os.environ.get("FINCORE_BENCH_DEBUG"):
        print(out, file=sys.stderr)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return LoadResult(rps, p50, p99, errors)


def httpx_load(
    url: str, body: bytes, headers: dict[str, str], seconds: float, ca: Path
) -> LoadResult:
    import httpx

    latencies: list[float] = []
    errors = [0]

    async def run() -> float:
        context = ssl.create_default_context(cafile=str(ca))
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(verify=context, limits=limits, timeout=30) as client:
            deadline = time.perf_counter() + seconds

            async def worker() -> None:
                while time.perf_counter() < deadline:
                    started = time.perf_counter()
                    response = await client.post(url, content=body, headers=headers)
                    latencies.append((time.perf_counter() - started) * 1000)
                    if response.status_code >= 300:
                        errors[0] += 1

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            return len(latencies) / (time.perf_counter() - start)

    rps = asyncio.run(run())
    return LoadResult(rps, percentile(latencies, 50), percentile(latencies, 99), errors[0])


def load(
    url: str, body: bytes, headers: dict[str, str], seconds: float, work: Path, ca: Path
) -> LoadResult:
    if shutil.which("wrk"):
        return wrk_load(url, body, headers, seconds, work)
    return httpx_load(url, body, headers, seconds, ca)


def _wait_healthy(url: str, ca: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    import httpx

    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url + "/healthz", verify=context, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not start:\n{log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _median(results: Iterable[LoadResult]) -> LoadResult:
    """The run with the median throughput (its latencies come with it)."""
    ordered = sorted(results, key=lambda r: r.rps)
    middle = ordered[len(ordered) // 2]
    cpu = statistics.median(r.cpu_us for r in ordered)
    return LoadResult(middle.rps, middle.p50_ms, middle.p99_ms, sum(r.errors for r in ordered), cpu)


def _cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a server process and its direct children (uvicorn workers)."""
    total = 0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for one in [pid, *map(int, children)]:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def measured(
    proc: subprocess.Popen[bytes],
    url: str,
    body: bytes,
    headers: dict[str, str],
    seconds: float,
    work: Path,
    ca: Path,
) -> LoadResult:
    """One load run, with the server's CPU time per request."""
    before, started = _cpu_seconds(proc.pid), time.perf_counter()
    result = load(url, body, headers, seconds, work, ca)
    spent, elapsed = _cpu_seconds(proc.pid) - before, time.perf_counter() - started
    result.cpu_us = 1e6 * spent / max(1.0, result.rps * elapsed)
    return result


def vault_setup(var_dir: Path) -> tuple[Any, dict[str, str], str]:
    """A vault's process plan under `var_dir` (own port, CA), its environment with the bench
    settings, and an ingress service token for it: (plan, env, token)."""
    from fincore.identity import ServiceCredentials
    from fincore.netutil import free_port
    from fincore.pki import ensure_ca, issue_service_credentials
    from fincore.runner import COMPONENTS, Plan, component_env, default_ports

    ports = default_ports()
    ports["vault"] = free_port()
    plan = Plan(var_dir=var_dir, ports=ports)
    ensure_ca(plan.pki_dir)
    env = component_env(COMPONENTS["vault"], plan, os.environ)
    env.update(_bench_env(plan.var_dir))
    env["FINCORE_LOG_DIR"] = str(plan.var_dir / "log")
    ingress = issue_service_credentials(plan.pki_dir, "ingress", "cde")
    token = ServiceCredentials.from_files(ingress.key, ingress.cert).token_for("vault")
    return plan, env, token


def http_figures(
    var: Path, seconds: float, runs: int, workers: int = 1, redis_url: str | None = None
) -> tuple[LoadResult, LoadResult, str]:
    from fincore.identity import TOKEN_HEADER
    from fincore.netutil import free_port

    plan, env, token = vault_setup(var / f"http-{workers}w")
    ports = plan.ports
    env["FINCORE_VAULT_WORKERS"] = str(workers)
    if workers > 1:
        assert redis_url is not None
        env["FINCORE_VAULT_CVC_URL"] = env["FINCORE_VAULT_RATE_URL"] = redis_url
    ca = plan.ca_file
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cde.vault.app",
            "admin",
            "attest",
            MERCHANT,
            "--expires",
            "2099-01-01",
        ],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    body = json.dumps({"merchant_id": MERCHANT, "card": CARD}).encode()
    headers = {"Content-Type": "application/json", TOKEN_HEADER: token}
    client = "wrk -t1" if shutil.which("wrk") else "httpx (asyncio)"

    def serve(args: list[str], name: str, port: int) -> tuple[subprocess.Popen[bytes], str, Path]:
        log = plan.var_dir / f"{name}.out"
        handle = log.open("wb")
        proc = subprocess.Popen(
            args,
            env=env | {"FINCORE_PORT": str(port)},
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"https://127.0.0.1:{port}"
        _wait_healthy(url, ca, proc, log)
        return proc, url, log

    # Both servers run side by side; the load alternates between them round by round, so a
    # noisy neighbour on this VM hits both figures alike. Each is warmed up first.
    base_port = free_port()
    servers = [
        serve(
            [
                sys.executable,
                "-m",
                "bench.vault",
                "--serve-baseline",
                str(base_port),
                str(plan.var_dir / "baseline.db"),
                str(workers),
            ],
            "baseline",
            base_port,
        ),
        serve([sys.executable, "-m", "cde.vault.app", "vault"], "vault", ports["vault"]),
    ]
    try:
        base_url, vault_url = servers[0][1] + "/tokenize", servers[1][1] + "/v1/tokens"
        for url in (base_url, vault_url):
            load(url, body, headers, 1.5, plan.var_dir, ca)
        rounds: list[tuple[LoadResult, LoadResult]] = []
        base_proc, vault_proc = servers[0][0], servers[1][0]
        for _ in range(runs):
            base = measured(base_proc, base_url, body, headers, seconds, plan.var_dir, ca)
            mine = measured(vault_proc, vault_url, body, headers, seconds, plan.var_dir, ca)
            rounds.append((mine, base))
    finally:
        for proc, _url, _log in servers:
            _stop(proc)
    vault = _median(r[0] for r in rounds)
    baseline = _median(r[1] for r in rounds)
    for name, result in (("baseline", baseline), ("vault", vault)):
        if result.errors:
            raise RuntimeError(f"{name}: {result.errors} failed requests during the load run")
    return vault, baseline, client


def _redis_for_bench() -> str | None:
    """A Redis database for the two-worker run (`FINCORE_BENCH_REDIS_URL`), if one answers."""
    url = os.environ.get("FINCORE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        client.ping()
        client.close()
    except Exception:  # noqa: BLE001 - no Redis here: the two-worker figures are skipped
        return None
    return url


# ---------------------------------------------------------------- the baseline server


class BaselineCard(BaseModel):
    number: str
    exp_month: int
    exp_year: int
    cvc: str | None = None


class BaselineBody(BaseModel):
    merchant_id: str
    card: BaselineCard


def baseline_app() -> Any:
    """A minimal FastAPI tokenize endpoint: AES-GCM encrypt + HMAC + one SQLite insert."""
    import hmac

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from fastapi import FastAPI

    conn = sqlite3.connect(
        os.environ["FINCORE_BENCH_BASELINE_DB"],
        isolation_level=None,
        check_same_thread=False,
        timeout=10,
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS vault (token TEXT PRIMARY KEY, fp BLOB, ct BLOB, created INT)"
    )
    key, fp_key = AESGCM(os.urandom(32)), os.urandom(32)
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/tokenize", status_code=201)
    async def tokenize(body: BaselineBody) -> dict[str, str]:
        token = "tok_" + secrets.token_hex(16)
        record = f"{body.card.number}|{body.card.exp_month}|{body.card.exp_year}".encode()
        ciphertext = key.encrypt(os.urandom(12), record, token.encode())
        fingerprint = hmac.digest(fp_key, body.card.number.encode(), "sha256")
        conn.execute(
            "INSERT INTO vault VALUES (?, ?, ?, ?)",
            (token, fingerprint, ciphertext, int(time.time())),
        )
        return {"token": token, "last4": body.card.number[-4:]}

    return app


def serve_baseline(port: int, db_path: str, workers: int) -> None:
    """Serve `baseline_app` like the vault is served: uvicorn, uvloop, httptools, TLS."""
    import uvicorn

    from fincore.process import ProcessSettings
    from fincore.web import serve

    os.environ["FINCORE_BENCH_BASELINE_DB"] = db_path
    tls = ProcessSettings.from_env("baseline", "cde", port).tls()
    if workers == 1:
        serve(baseline_app(), host="127.0.0.1", port=port, tls=tls)
        return
    assert tls is not None
    sqlite3.connect(db_path).execute("PRAGMA journal_mode=WAL").close()
    uvicorn.run(
        "bench.vault:baseline_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        ssl_certfile=str(tls.cert),
        ssl_keyfile=str(tls.key),
    )


# ---------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve-baseline"]:
        serve_baseline(int(argv[1]), argv[2], int(argv[3]))
        return 0
    report = Report("cde.vault: tokenize and detokenize, in-process and over HTTPS", argv)
    quick = report.quick
    seconds, repeats, runs, http_seconds = (0.2, 3, 1, 2.0) if quick else (0.5, 5, 3, 6.0)
    with tempfile.TemporaryDirectory(prefix="fincore-bench-vault-") as tmp:
        var = Path(tmp)
        sdk = sdk_figures(seconds, repeats)
        seal, seal_size = seal_figure(seconds, repeats)
        cpu_path = cpu_path_figure(seconds, repeats)
        tokenize, detokenize, per_txn = in_process_figures(
            var, 1.0 if quick else 3.0, 1 if quick else 3
        )
        # Attribution only: the same use case with nothing on disk (in-memory store and audit
        # sink), to show what the storage and the audit log cost.
        memory_only, _, _ = in_process_figures(
            var,
            1.0 if quick else 2.0,
            1,
            {"FINCORE_VAULT_DB_URL": "memory://", "FINCORE_CDE_AUDIT_URL": "memory://bench"},
        )
        http = {1: http_figures(var, http_seconds, runs)}
        redis_url = _redis_for_bench()
        if redis_url is not None and not quick:
            http[2] = http_figures(var, http_seconds, runs, workers=2, redis_url=redis_url)
    naive = "ESDK per-record encrypt, default suite, no cache"
    report.add(
        "in-process tokenize (SQLite, 64 in flight)",
        tokenize,
        "ops/s",
        naive,
        sdk["encrypt_default"],
    )
    report.add(
        "in-process tokenize, nothing on disk",
        memory_only,
        "ops/s",
        naive,
        sdk["encrypt_default"],
    )
    report.add(
        "in-process detokenize (64 in flight)",
        detokenize,
        "ops/s",
        "ESDK per-record decrypt, default suite, no cache",
        sdk["decrypt_default"],
    )
    report.add(
        "ESDK per-record encrypt, no-signing suite",
        sdk["encrypt_nosign"],
        "ops/s",
        naive,
        sdk["encrypt_default"],
    )
    report.add("vault record seal (HKDF+AES-GCM)", seal, "ops/s", naive, sdk["encrypt_default"])
    report.add(
        "tokenize CPU path (validate+token+fp+seals)",
        cpu_path,
        "ops/s",
        naive,
        sdk["encrypt_default"],
    )
    report.add(
        "record bytes: vault seal",
        float(seal_size),
        "bytes",
        "ESDK message, default suite",
        sdk["ciphertext_default"],
    )
    for workers, (vault, baseline, _client) in http.items():
        shape = f"{workers} worker{'s' if workers > 1 else ''}"
        if workers > 1:
            shape += ", Redis CVC"
        report.add(
            f"HTTPS tokenize c={CONCURRENCY} ({shape})",
            vault.rps,
            "req/s",
            f"minimal FastAPI AES-GCM+SQLite ({workers}w)",
            baseline.rps,
            p50_ms=vault.p50_ms,
            p99_ms=vault.p99_ms,
        )
        report.add(
            f"HTTPS tokenize p99 latency ({workers}w)",
            vault.p99_ms,
            "ms",
            "minimal endpoint p99",
            baseline.p99_ms,
            p50_ms=baseline.p50_ms,
            p99_ms=baseline.p99_ms,
        )
        report.add(
            f"server CPU per tokenize request ({workers}w)",
            vault.cpu_us,
            "us",
            "minimal endpoint CPU per request",
            baseline.cpu_us,
        )
    report.add("SQLite writes per commit (group commit)", per_txn, "writes", "one per commit", 1.0)
    report.print_table()
    if not report.args.json:
        vault, baseline, client = http[1]
        print(f"\nload client: {client}; machine load average at the end: {os.getloadavg()[0]:.1f}")
        print(
            f"targets: HTTPS tokenize {vault.rps / baseline.rps:.0%} of baseline (>= 70%), "
            f"p99 {vault.p99_ms:.1f} ms (<= 25 ms); in-process tokenize "
            f"{tokenize / sdk['encrypt_default']:.1f}x naive SDK (>= 20x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
