"""Chaos harness: a load run of bench/load.py (the same orders, retries and checks) while
processes are SIGKILLed and restarted, or while the PSP sandbox misbehaves.

- `Killer`: kill -9 each named component at random moments of the load (one thread per
  component) and restart it through the runner with the same settings.
- `FaultPlan`: sandbox faults switched on and off through its admin endpoint, one after the
  other, during the load.
- `lost_completions` / `recover_lost_completions`: hosted sessions whose
  `checkout.session.completed` webhook the sandbox dropped (FinCore cannot learn of them but
  from the day's reconciliation), and the operator's answer: resend the PSP's event.
"""

from __future__ import annotations

import json
import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.load import Check, LoadConfig, LoadResult, Order, Target, settled

# Components killed by the chaos tests (issue #11: API, worker, projectionist, ledger writer,
# gateway, vault; the card ingress runs the vault's code and is killed too).
KILLED = ("api", "worker", "projectionist", "ledger", "gateway", "vault", "ingress")

# Faster recovery for the chaos platform (all documented settings): a PSP answer held beyond
# 5 s is an unknown outcome at the gateway, the worker gives up on the gateway after 8 s, and a
# job leased by a killed worker is taken over after 25 s (>= 3 x the gateway timeout, as the
# worker requires); the dead-letter sweep runs every 5 s.
CHAOS_ENV = {
    "FINCORE_GATEWAY_PSP_READ_TIMEOUT_S": "5",
    "FINCORE_WORKERS_GATEWAY_TIMEOUT_S": "8",
    "FINCORE_WORKERS_JOB_VISIBILITY_TIMEOUT_S": "25",
    "FINCORE_WORKERS_DLQ_SWEEP_S": "5",
}

# One instance of each sandbox fault (docs/psp-sandbox.md, "Faults"). The hold of `timeout`
# outlasts the gateway's PSP read timeout above, so the payment exists and its answer is lost.
FAULTS: dict[str, dict[str, Any]] = {
    "latency": {"kind": "latency", "ms": 400, "rate": 0.5},
    "error": {"kind": "error", "status": 503, "rate": 0.3},
    "timeout": {"kind": "timeout", "hold_s": 7, "execute": True, "next": 3},
    "webhook_drop": {"kind": "webhook_drop", "rate": 0.4},
    "webhook_duplicate": {"kind": "webhook_duplicate", "rate": 0.5},
    "webhook_out_of_order": {"kind": "webhook_out_of_order", "next": 12, "spacing_ms": 100},
}


def chaos_config(charges: int, seconds: float, seed: int, **overrides: Any) -> LoadConfig:
    """`charges` orders paced over about `seconds` (so the disruptions land while they are in
    flight), no baselines, and a stall window that covers a leased job's takeover."""
    config = LoadConfig(
        charges=charges,
        concurrency=16,
        rate=charges / seconds,
        seed=seed,
        baselines=False,
        stall_s=90.0,
        settle_timeout_s=600.0,
    )
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


# ---------------------------------------------------------------- kills


@dataclass
class Kill:
    name: str
    at_s: float  # since the load started
    pid: int
    down_s: float
    back_after_s: float | None = None  # killed -> healthy again


@dataclass
class Killer:
    """SIGKILL each of `names` `rounds` times at random moments within `window_s` (seconds
    since the load started), leave it down for `down_s`, then restart it."""

    target: Target
    names: Sequence[str]
    rng: random.Random
    window_s: tuple[float, float]
    rounds: int = 1
    down_s: tuple[float, float] = (0.2, 1.5)
    kills: list[Kill] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _started: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._started = time.monotonic()
        for name in self.names:
            moments = sorted(self.rng.uniform(*self.window_s) for _ in range(self.rounds))
            downs = [self.rng.uniform(*self.down_s) for _ in moments]
            thread = threading.Thread(
                target=self._run, args=(name, moments, downs), name=f"kill-{name}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _run(self, name: str, moments: list[float], downs: list[float]) -> None:
        runner = self.target.runner
        assert runner is not None
        try:
            for moment, down in zip(moments, downs, strict=True):
                delay = self._started + moment - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                killed_at = time.monotonic()
                pid = runner.kill(name)
                kill = Kill(name, killed_at - self._started, pid, down)
                with self._lock:
                    self.kills.append(kill)
                time.sleep(down)
                runner.restart(name)
                kill.back_after_s = time.monotonic() - killed_at
        except Exception:  # noqa: BLE001 - reported by the test through `errors`
            self.errors.append(f"{name}: {traceback.format_exc(limit=3)}")

    def join(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            self.errors.append(f"still killing after {timeout_s:.0f}s: {alive}")

    def summary(self) -> str:
        counts = Counter(k.name for k in self.kills)
        back = [k.back_after_s for k in self.kills if k.back_after_s is not None]
        slowest = max(back, default=0.0)
        each = ", ".join(f"{n} x{c}" for n, c in sorted(counts.items()))
        return f"{len(self.kills)} kills ({each}), each back within {slowest:.1f}s"


# ---------------------------------------------------------------- sandbox faults


@dataclass
class FaultPlan:
    """Switch sandbox faults on one after the other: each of `faults` for `each_s` seconds,
    starting `start_s` after the load started, then clear them all."""

    target: Target
    faults: Sequence[str]
    start_s: float
    each_s: float
    applied: list[tuple[float, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="faults", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        try:
            for index, name in enumerate(self.faults):
                at = self.start_s + index * self.each_s
                if self._stop.wait(max(0.0, started + at - time.monotonic())):
                    return
                self.target.clear_faults()
                self.target.add_fault(**FAULTS[name])
                self.applied.append((time.monotonic() - started, name))
            self._stop.wait(
                max(0.0, started + self.start_s + len(self.faults) * self.each_s - time.monotonic())
            )
        except Exception:  # noqa: BLE001 - reported by the test through `errors`
            self.errors.append(traceback.format_exc(limit=3))
        finally:
            try:
                self.target.clear_faults()
            except httpx.HTTPError as exc:
                self.errors.append(f"clearing the faults: {exc!r}")

    def join(self, timeout_s: float = 300) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def stop(self) -> None:
        self._stop.set()
        self.join(30)


# ---------------------------------------------------------------- dropped webhooks


def _psp_session_id(order: Order) -> str | None:
    return order.page.rsplit("/", 1)[-1] if order.page else None


def lost_completions(target: Target, result: LoadResult) -> list[tuple[Order, str]]:
    """Hosted orders the PSP completed whose `checkout.session.completed` event was only ever
    dropped by the sandbox (never delivered): (order, PSP event id)."""
    sessions = {
        _psp_session_id(o): o for o in result.orders if o.flow == "hosted" and o.accepted_at
    }
    events: dict[str, str] = {}
    auth = (target.psp_secret_key, "")
    with httpx.Client(base_url=target.url("psp-sandbox"), auth=auth, timeout=30) as client:
        after: str | None = None
        while True:
            params = {
                "type": "checkout.session.completed",
                "limit": "100",
                "created[gte]": str(int(result.started) - 2),
            }
            if after:
                params["starting_after"] = after
            page = client.get("/v1/events", params=params).json()
            for event in page["data"]:
                events[event["data"]["object"]["id"]] = event["id"]
            if not page["has_more"]:
                break
            after = page["data"][-1]["id"]
    lost = []
    for session_id, order in sessions.items():
        event_id = events.get(session_id or "")
        if event_id is None:
            continue
        deliveries = target.sandbox_admin("GET", f"/_sandbox/webhooks?event={event_id}")
        states = {d["state"] for d in deliveries["deliveries"]}
        if "dropped" in states and "delivered" not in states and "pending" not in states:
            lost.append((order, event_id))
    return lost


def settle_all_but(target: Target, result: LoadResult, lost: Sequence[Order]) -> None:
    """Settle every order except `lost` (their charges cannot exist yet)."""
    from bench.load import finish

    skipped = {id(o) for o in lost}
    finish(target, result, [o for o in result.orders if id(o) not in skipped])


def reconciliation_flags(target: Target, lost: Sequence[Order]) -> Check:
    """Before anyone resends them: the day's reconciliation reports each lost completion as a
    settled payment missing in the ledger, and nothing else."""
    today = datetime.now(UTC).date().isoformat()
    target.sandbox_admin("POST", f"/_sandbox/settlements/{today}")
    code, report = target.cli_json("reconciler", "reconcile", "--date", today, "--json")
    counts: Mapping[str, int] = report["counts"]
    expected = {"missing_in_ledger": len(lost)} if lost else {}
    seen = {k: v for k, v in counts.items() if v}
    ok = seen == expected and (code == 1 if lost else code == 0)
    return Check(
        "reconciliation reports each lost session completion",
        ok,
        f"{len(lost)} completions lost; findings {seen or 'none'} (exit {code})",
    )


def recover_lost_completions(
    target: Target, result: LoadResult, lost: Sequence[tuple[Order, str]]
) -> None:
    """The operator's answer to a lost webhook: have the PSP send the event again (Stripe's
    dashboard "resend"; here the sandbox's admin endpoint), then wait for those sessions."""
    from bench.load import finish

    for _order, event_id in lost:
        target.sandbox_admin("POST", f"/_sandbox/webhooks/{event_id}/resend")
    finish(target, result, [order for order, _ in lost])


# ---------------------------------------------------------------- did the faults bite?


def api_fault_evidence(target: Target, since: float) -> Counter[str]:
    """What the sandbox's access log shows since `since` (unix time) for its `/v1/` API:
    answers slowed by the latency fault, 5xx of the error fault, answers held by the timeout
    fault (the log has route templates and statuses only, no card data)."""
    hold_ms = float(FAULTS["timeout"]["hold_s"]) * 1000
    slow_ms = float(FAULTS["latency"]["ms"])
    seen: Counter[str] = Counter()
    log = target.plan.var_dir / "log" / "psp-sandbox.log"
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if '"event": "request"' not in line:
            continue
        try:
            record = json.loads(line)
            at = datetime.fromisoformat(record["ts"].replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError):
            continue
        if at < since or not str(record.get("route", "")).startswith("/v1/"):
            continue
        duration = float(record.get("duration_ms") or 0)
        if record.get("status", 0) >= 500:
            seen["error"] += 1
        elif duration >= hold_ms - 50:
            seen["timeout"] += 1
        elif duration >= slow_ms:
            seen["latency"] += 1
    return seen


def webhook_fault_evidence(target: Target, since: float) -> Counter[str]:
    """Events since `since` whose deliveries were dropped, or queued twice."""
    seen: Counter[str] = Counter()
    auth = (target.psp_secret_key, "")
    with httpx.Client(base_url=target.url("psp-sandbox"), auth=auth, timeout=30) as client:
        after: str | None = None
        while True:
            params = {"limit": "100", "created[gte]": str(int(since))}
            if after:
                params["starting_after"] = after
            page = client.get("/v1/events", params=params).json()
            for event in page["data"]:
                found = target.sandbox_admin("GET", f"/_sandbox/webhooks?event={event['id']}")
                states = [d["state"] for d in found["deliveries"]]
                seen["webhook_drop"] += "dropped" in states
                seen["webhook_duplicate"] += len(states) > 1 and "dropped" not in states
            if not page["has_more"]:
                return seen
            after = page["data"][-1]["id"]


def unsettled(result: LoadResult) -> list[str]:
    return [o.key for o in result.accepted if not settled(o)]


def run_config_note(config: LoadConfig) -> str:
    return f"seed={config.seed} charges={config.charges} rate={config.rate:.1f}/s"
