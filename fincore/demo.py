"""The scripted demo behind `make demo`: start everything, exercise it over HTTP, summarize.

The demo is a client: it talks to the processes over loopback HTTP(S) and runs their CLIs as
subprocesses, and so imports neither zone. Each step records what it expected and what it saw;
the command exits 0 only if every step held.
"""

from __future__ import annotations

import io
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from fincore.runner import Plan, Runner, available, running


@dataclass
class Step:
    name: str
    ok: bool
    detail: str


@dataclass
class DemoContext:
    """What steps share: the plan, the running processes and an HTTP client trusting the CA."""

    plan: Plan
    runner: Runner
    client: httpx.Client
    facts: dict[str, object] = field(default_factory=dict)


DemoStep = Callable[[DemoContext], list[Step]]


def step_health(ctx: DemoContext) -> list[Step]:
    """Every started process answers /healthz, /readyz and /metrics."""
    steps: list[Step] = []
    for name in ctx.runner.names:
        base = ctx.plan.url(name)
        try:
            ready = ctx.client.get(base + "/readyz")
            metrics = ctx.client.get(base + "/metrics")
            ok = ready.status_code == 200 and "http_requests_total" in metrics.text
            detail = f"{base} ready={ready.json().get('status')}"
        except httpx.HTTPError as exc:
            ok, detail = False, f"{base}: {type(exc).__name__}"
        steps.append(Step(f"{name} healthy", ok, detail))
    return steps


# Later features append their steps here, in the order the demo runs them.
STEPS: list[DemoStep] = [step_health]


def _table(steps: list[Step]) -> str:
    width = max((len(s.name) for s in steps), default=10)
    lines = [f"{'step':<{width}}  result  detail", f"{'-' * width}  ------  ------"]
    for s in steps:
        lines.append(f"{s.name:<{width}}  {'PASS' if s.ok else 'FAIL':<6}  {s.detail}")
    return "\n".join(lines)


def run_demo(plan: Plan, *, verbose: bool = False) -> int:
    names = available()
    if not names:
        print("demo: no component exists yet")
        return 1
    out = sys.stdout if verbose else io.StringIO()
    started = time.monotonic()
    results: list[Step] = []
    try:
        with running(plan, names, out=out) as runner:
            context = ssl.create_default_context(cafile=str(plan.ca_file))
            with httpx.Client(verify=context, timeout=30.0) as client:
                ctx = DemoContext(plan=plan, runner=runner, client=client)
                for step in STEPS:
                    try:
                        results.extend(step(ctx))
                    except Exception as exc:  # noqa: BLE001 - a broken step is a failed step
                        results.append(Step(step.__name__, False, f"{type(exc).__name__}: {exc}"))
    except RuntimeError as exc:
        results.append(Step("start", False, str(exc)))
        if not verbose and isinstance(out, io.StringIO):
            print(out.getvalue()[-4000:], file=sys.stderr)
    elapsed = time.monotonic() - started
    print("\nFinCore demo summary")
    print(_table(results))
    passed = sum(s.ok for s in results)
    print(f"\n{passed}/{len(results)} steps passed in {elapsed:.1f}s")
    return 0 if results and passed == len(results) else 1
