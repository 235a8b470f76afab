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


def step_vault_tokenize(ctx: DemoContext) -> list[Step]:
    """The card vault tokenizes a published test card, run as the operator CLI inside the CDE.

    The demo client holds no vault identity: it runs the CDE's own CLI with the vault's
    settings (and no service credentials), which prints the token and the masked card only.
    """
    import json
    import os
    import subprocess

    from fincore.runner import COMPONENTS, PROJECT_ROOT, component_env

    if "vault" not in ctx.runner.names:
        return []
    env = component_env(COMPONENTS["vault"], ctx.plan, os.environ)
    for name in ("FINCORE_SERVICE_KEY_FILE", "FINCORE_SERVICE_CERT_FILE", "FINCORE_PARENT_PID"):
        env.pop(name, None)
    env["FINCORE_COMPONENT"] = "vault-cli"
    result = subprocess.run(
        [sys.executable, "-m", "cde.vault.app", "admin", "--json", "tokenize-demo"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        return [Step("vault tokenizes a card", False, result.stderr.strip()[-300:])]
    shown = json.loads(result.stdout)
    ok = str(shown.get("token", "")).startswith("tok_") and "******" in str(shown.get("card"))
    ctx.facts["vault_demo_token"] = shown.get("token")
    return [Step("vault tokenizes a card", ok, f"{shown['card']} -> {shown['token']}")]


def step_dashboard(ctx: DemoContext) -> list[Step]:
    """The staff dashboard answers its login page (with its CSP), and the dashboard's own CLI
    creates one demo staff account per role on the first run; their credentials stay in a
    0600 file under var/ (never in code). Prints the URL and the support login."""
    import json
    import os
    import subprocess

    from fincore.runner import COMPONENTS, PROJECT_ROOT, component_env

    if "dashboard" not in ctx.runner.names:
        return []
    base = ctx.plan.url("dashboard")
    page = ctx.client.get(base + "/login")
    answers = page.status_code == 200 and "default-src 'none'" in page.headers.get(
        "content-security-policy", ""
    )
    env = component_env(COMPONENTS["dashboard"], ctx.plan, os.environ)
    for name in ("FINCORE_SERVICE_KEY_FILE", "FINCORE_SERVICE_CERT_FILE", "FINCORE_PARENT_PID"):
        env.pop(name, None)
    env.update(FINCORE_COMPONENT="dashboard-cli", FINCORE_ADMIN_ACTOR="demo")
    result = subprocess.run(
        [sys.executable, "-m", "noncde.dashboard.app", "admin", "demo-login"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        return [Step("dashboard demo login", False, result.stderr.strip()[-300:])]
    shown = json.loads(result.stdout)
    support = next(a for a in shown["accounts"] if a["role"] == "support")
    return [
        Step("dashboard login page", answers, f"{base}/login ({page.status_code})"),
        Step(
            "dashboard demo login",
            True,
            f"{support['username']} / {support['password']} + TOTP; every role's login and "
            f"TOTP secret: {shown['file']}",
        ),
    ]


# Later features append their steps here, in the order the demo runs them.
STEPS: list[DemoStep] = [step_health, step_vault_tokenize, step_dashboard]


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
