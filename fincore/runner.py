"""Shared by both zones: the local runner that starts every FinCore process on loopback.

Each component runs as its own process (`python -m <module>`), bound to 127.0.0.1, with its own
environment: a CDE process receives no non-CDE settings and the reverse. The runner waits for
each health check, prefixes and streams the output, and on exit, failure or a signal stops every
child (SIGTERM, then SIGKILL of the process group). Children also watch their parent
(`watch_parent`), so a runner killed with SIGKILL leaves no orphans.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx

from fincore.pki import ensure_ca, issue_service_credentials

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Settings prefixes each zone may see. Anything else in the runner's environment stays behind.
ZONE_PREFIXES: dict[str, tuple[str, ...]] = {
    "cde": ("FINCORE_VAULT_", "FINCORE_INGRESS_", "FINCORE_GATEWAY_", "FINCORE_CDE_"),
    "noncde": (
        "FINCORE_API_",
        "FINCORE_WORKERS_",
        "FINCORE_READMODELS_",
        "FINCORE_DASHBOARD_",
        "FINCORE_NONCDE_",
    ),
    "external": ("FINCORE_SANDBOX_",),
}
_BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH", "CI")


@dataclass(frozen=True)
class Plan:
    """Where everything of one local run lives: state folder, ports and the CA."""

    var_dir: Path
    ports: Mapping[str, int]
    environment: str = "development"

    @property
    def pki_dir(self) -> Path:
        return self.var_dir / "pki"

    @property
    def ca_file(self) -> Path:
        return self.pki_dir / "ca.crt"

    def url(self, name: str) -> str:
        spec = COMPONENTS[name]
        scheme = "https" if spec.tls else "http"
        return f"{scheme}://127.0.0.1:{self.ports[name]}"


EnvBuilder = Callable[[Plan], dict[str, str]]


def _no_env(_plan: Plan) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class ComponentSpec:
    """One process of the platform."""

    name: str
    zone: str
    module: str
    default_port: int
    source: str
    tls: bool = True
    args: tuple[str, ...] = ()
    env: EnvBuilder = _no_env
    identity: bool = True
    after: tuple[str, ...] = ()
    description: str = ""

    def exists(self, root: Path = PROJECT_ROOT) -> bool:
        return (root / self.source).is_file()


def _vault_env(plan: Plan) -> dict[str, str]:
    return {}


def _ingress_env(plan: Plan) -> dict[str, str]:
    return {
        "FINCORE_INGRESS_VAULT_URL": plan.url("vault"),
        "FINCORE_INGRESS_API_URL": plan.url("api"),
    }


def psp_dev_secrets(plan: Plan) -> tuple[Path, Path]:
    """The PSP secret key and webhook secret shared by the sandbox and the gateway of a local
    run: generated once (`secrets`) into var/psp-dev/ (0700 folder, 0600 files), never
    committed. Each side reads them through its own `*_FILE` setting."""
    folder = plan.var_dir / "psp-dev"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    made: dict[str, Callable[[], str]] = {
        "secret_key": lambda: "sk_test_" + secrets.token_hex(24),
        "webhook_secret": lambda: "whsec_" + secrets.token_hex(32),
    }
    paths = []
    for name, make in made.items():
        path = folder / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(make())
        paths.append(path)
    return paths[0], paths[1]


def _gateway_env(plan: Plan) -> dict[str, str]:
    secret_key, webhook_secret = psp_dev_secrets(plan)
    return {
        "FINCORE_GATEWAY_VAULT_URL": plan.url("vault"),
        "FINCORE_GATEWAY_PSP_URL": plan.url("psp-sandbox"),
        "FINCORE_GATEWAY_API_URL": plan.url("api"),
        "FINCORE_GATEWAY_PSP_SECRET_KEY_FILE": str(secret_key),
        "FINCORE_GATEWAY_PSP_WEBHOOK_SECRET_FILE": str(webhook_secret),
    }


def _api_env(plan: Plan) -> dict[str, str]:
    return {
        "FINCORE_API_GATEWAY_URL": plan.url("gateway"),
        "FINCORE_API_PUBLIC_URL": plan.url("api"),
        "FINCORE_API_INGRESS_URL": plan.url("ingress"),
    }


def _workers_env(plan: Plan) -> dict[str, str]:
    return {
        "FINCORE_WORKERS_GATEWAY_URL": plan.url("gateway"),
        "FINCORE_WORKERS_API_URL": plan.url("api"),
        "FINCORE_WORKERS_PSP_SFTP_PORT": str(plan.ports.get("psp-sftp", 0)),
    }


def _dashboard_env(plan: Plan) -> dict[str, str]:
    return {
        "FINCORE_DASHBOARD_API_URL": plan.url("api"),
        "FINCORE_DASHBOARD_PUBLIC_URL": plan.url("dashboard"),
    }


def _sandbox_env(plan: Plan) -> dict[str, str]:
    secret_key, webhook_secret = psp_dev_secrets(plan)
    return {
        "FINCORE_SANDBOX_WEBHOOK_URL": plan.url("gateway") + "/v1/psp/webhooks",
        "FINCORE_SANDBOX_SFTP_PORT": str(plan.ports.get("psp-sftp", 0)),
        "FINCORE_SANDBOX_SECRET_KEY_FILE": str(secret_key),
        "FINCORE_SANDBOX_WEBHOOK_SECRET_FILE": str(webhook_secret),
    }


# The whole platform, in start order. A component is started only once its module exists.
COMPONENTS: dict[str, ComponentSpec] = {
    spec.name: spec
    for spec in (
        ComponentSpec(
            "psp-sandbox",
            "external",
            "psp_sandbox.app",
            8400,
            "psp_sandbox/app.py",
            tls=False,
            env=_sandbox_env,
            identity=False,
            description="PSP stand-in: Stripe-compatible API, hosted page, webhooks",
        ),
        ComponentSpec(
            "vault",
            "cde",
            "cde.vault.app",
            8101,
            "cde/vault/app.py",
            args=("vault",),
            env=_vault_env,
            description="card vault (internal)",
        ),
        ComponentSpec(
            "gateway",
            "cde",
            "cde.gateway.app",
            8102,
            "cde/gateway/app.py",
            env=_gateway_env,
            after=("vault",),
            description="PSP gateway (internal)",
        ),
        ComponentSpec(
            "api",
            "noncde",
            "noncde.api.app",
            8200,
            "noncde/api/app.py",
            env=_api_env,
            description="merchant API",
        ),
        ComponentSpec(
            "ingress",
            "cde",
            "cde.vault.app",
            8100,
            "cde/vault/app.py",
            args=("ingress",),
            env=_ingress_env,
            after=("vault",),
            description="card ingress for S2S raw cards",
        ),
        ComponentSpec(
            "worker",
            "noncde",
            "noncde.workers.app",
            8211,
            "noncde/workers/app.py",
            tls=False,
            args=("jobs",),
            env=_workers_env,
            description="job worker",
        ),
        ComponentSpec(
            "projectionist",
            "noncde",
            "noncde.readmodels.app",
            8212,
            "noncde/readmodels/app.py",
            tls=False,
            args=("projectionist",),
            env=_workers_env,
            description="read-model projectionist",
        ),
        ComponentSpec(
            "ledger",
            "noncde",
            "noncde.readmodels.app",
            8213,
            "noncde/readmodels/app.py",
            tls=False,
            args=("ledger",),
            env=_workers_env,
            description="ledger writer",
        ),
        ComponentSpec(
            "webhooks",
            "noncde",
            "noncde.workers.app",
            8214,
            "noncde/workers/app.py",
            tls=False,
            args=("webhooks",),
            env=_workers_env,
            description="merchant webhooks",
        ),
        ComponentSpec(
            "reconciler",
            "noncde",
            "noncde.workers.app",
            8215,
            "noncde/workers/app.py",
            tls=False,
            args=("reconcile",),
            env=_workers_env,
            # It pins the sandbox's SFTP host key at start, from the key file the sandbox
            # creates on its first start.
            after=("psp-sandbox",),
            description="daily settlement reconciliation",
        ),
        ComponentSpec(
            "dashboard",
            "noncde",
            "noncde.dashboard.app",
            8300,
            "noncde/dashboard/app.py",
            env=_dashboard_env,
            description="admin dashboard",
        ),
    )
}


def default_ports(base: int | None = None) -> dict[str, int]:
    ports = {name: spec.default_port for name, spec in COMPONENTS.items()}
    ports["psp-sftp"] = 8422
    if base is not None:
        for index, name in enumerate(sorted(ports)):
            ports[name] = base + index
    for name in list(ports):
        override = os.environ.get(f"FINCORE_PORT_{name.upper().replace('-', '_')}")
        if override:
            ports[name] = int(override)
    return ports


def component_env(spec: ComponentSpec, plan: Plan, parent_env: Mapping[str, str]) -> dict[str, str]:
    """The environment of one child: base variables, its zone's settings, its wiring."""
    env = {key: parent_env[key] for key in _BASE_ENV if key in parent_env}
    env.update(
        PYTHONUNBUFFERED="1",
        TZ="UTC",
        FINCORE_ENV=plan.environment,
        FINCORE_VAR_DIR=str(plan.var_dir),
        FINCORE_LOG_DIR=str(plan.var_dir / "log"),
        FINCORE_COMPONENT=spec.name,
        FINCORE_ZONE=spec.zone,
        FINCORE_HOST="127.0.0.1",
        FINCORE_PORT=str(plan.ports[spec.name]),
        FINCORE_CA_FILE=str(plan.ca_file),
        FINCORE_PARENT_PID=str(os.getpid()),
        FINCORE_TLS="1" if spec.tls else "0",
    )
    if "FINCORE_LOG_LEVEL" in parent_env:
        env["FINCORE_LOG_LEVEL"] = parent_env["FINCORE_LOG_LEVEL"]
    if spec.identity or spec.tls:
        files = issue_service_credentials(plan.pki_dir, spec.name, spec.zone)
        env.update(
            FINCORE_SERVICE_NAME=spec.name,
            FINCORE_SERVICE_KEY_FILE=str(files.key),
            FINCORE_SERVICE_CERT_FILE=str(files.cert),
        )
    prefixes = ZONE_PREFIXES.get(spec.zone, ())
    for key, value in parent_env.items():
        if key.startswith(prefixes):
            env[key] = value
    env.update(spec.env(plan))
    return env


def watch_parent(poll_s: float = 1.0) -> None:
    """In a child: exit when the runner that started us is gone (no orphans, even on SIGKILL)."""
    expected = os.environ.get("FINCORE_PARENT_PID")
    if not expected:
        return
    parent = int(expected)

    def loop() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
                os._exit(1)

    threading.Thread(target=loop, name="watch-parent", daemon=True).start()


@dataclass
class Child:
    spec: ComponentSpec
    process: subprocess.Popen[bytes]
    reader: threading.Thread | None = None


@dataclass
class Runner:
    """Starts, watches and stops the platform's processes."""

    plan: Plan
    names: Sequence[str]
    out: TextIO = field(default_factory=lambda: sys.stdout)
    health_timeout_s: float = 60.0
    # The environment the children's settings are taken from (default: this process's).
    parent_env: Mapping[str, str] | None = None
    children: list[Child] = field(default_factory=list)
    _out_lock: threading.Lock = field(default_factory=threading.Lock)

    def _print(self, line: str) -> None:
        with self._out_lock:
            self.out.write(line + "\n")
            self.out.flush()

    def _pump(self, name: str, stream: TextIO | None) -> None:
        if stream is None:
            return
        width = max(len(n) for n in self.names) if self.names else 8
        for raw in stream:
            self._print(f"{name:<{width}} | {raw.rstrip()}")

    def start(self) -> None:
        """Start the components in waves: each wave is every component whose `after`
        components (among those started) are healthy; a wave starts at once and is waited
        for together, so independent processes boot side by side."""
        self.plan.var_dir.mkdir(parents=True, exist_ok=True)
        (self.plan.var_dir / "log").mkdir(parents=True, exist_ok=True)
        ensure_ca(self.plan.pki_dir)
        for wave in start_waves(self.names):
            started = [self._launch(name) for name in wave]
            self.wait_healthy(*started)

    def _launch(self, name: str) -> Child:
        spec = COMPONENTS[name]
        env = component_env(
            spec, self.plan, os.environ if self.parent_env is None else self.parent_env
        )
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", spec.module, *spec.args],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child = Child(spec, process)
        stream = (
            open(process.stdout.fileno(), encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
            if process.stdout
            else None
        )
        child.reader = threading.Thread(
            target=self._pump, args=(name, stream), name=f"pump-{name}", daemon=True
        )
        child.reader.start()
        self.children.append(child)
        return child

    def wait_healthy(self, *children: Child) -> None:
        """Wait until every one of `children` answers /healthz with 200."""
        context = ssl.create_default_context(cafile=str(self.plan.ca_file))
        deadline = time.monotonic() + self.health_timeout_s
        waiting = list(children)
        with httpx.Client(verify=context, timeout=2.0) as client:
            while waiting and time.monotonic() < deadline:
                for child in list(waiting):
                    if child.process.poll() is not None:
                        raise RuntimeError(
                            f"{child.spec.name} exited ({child.process.returncode}) while starting"
                        )
                    with contextlib.suppress(httpx.HTTPError):
                        url = self.plan.url(child.spec.name) + "/healthz"
                        if client.get(url).status_code == 200:
                            waiting.remove(child)
                if waiting:
                    time.sleep(0.1)
        if waiting:
            names = ", ".join(c.spec.name for c in waiting)
            raise RuntimeError(f"{names} did not become healthy in {self.health_timeout_s:.0f}s")

    def failed(self) -> Child | None:
        for child in self.children:
            if child.process.poll() is not None:
                return child
        return None

    def child(self, name: str) -> Child:
        """The current process of component `name` (KeyError if it was not started)."""
        for child in self.children:
            if child.spec.name == name:
                return child
        raise KeyError(name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send `sig` (default SIGKILL, as `kill -9`) to component `name`'s process group and
        reap it; returns the pid that died. For chaos tests: `restart` brings it back."""
        process = self.child(name).process
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(30)
        # Anything it started (its group) goes too, as in `stop`.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.pid

    def restart(self, name: str) -> Child:
        """Start component `name` again with the same settings (environment, arguments and
        port; a running one is killed first) and wait until it is healthy."""
        old = self.child(name)
        if old.process.poll() is None:
            self.kill(name)
        if old.reader is not None:
            old.reader.join(timeout=2)
        if old.process.stdout is not None:
            old.process.stdout.close()
        self.children.remove(old)
        new = self._launch(name)
        self.wait_healthy(new)
        return new

    def stop(self, timeout_s: float = 10.0) -> None:
        for child in reversed(self.children):
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for child in reversed(self.children):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.process.wait(remaining)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait(5)
            # Anything left in the group (a worker's own children) goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
        for child in self.children:
            if child.reader is not None:
                child.reader.join(timeout=2)
            if child.process.stdout is not None:
                child.process.stdout.close()
        self.children.clear()


def start_waves(names: Sequence[str]) -> list[list[str]]:
    """`names` grouped for starting: a component comes after every component of its `after`
    that is among `names` (the others are not waited for); order within a wave is kept."""
    pending = list(names)
    chosen = set(names)
    done: set[str] = set()
    waves: list[list[str]] = []
    while pending:
        wave = [n for n in pending if set(COMPONENTS[n].after) & chosen <= done]
        if not wave:
            raise ValueError(f"start order has a cycle among: {', '.join(pending)}")
        waves.append(wave)
        done.update(wave)
        pending = [n for n in pending if n not in done]
    return waves


def available(names: Sequence[str] | None = None) -> list[str]:
    """Components whose code exists, in start order (optionally restricted to `names`)."""
    wanted = list(COMPONENTS) if not names else [n for n in COMPONENTS if n in set(names)]
    unknown = set(names or ()) - set(COMPONENTS)
    if unknown:
        raise ValueError(f"unknown components: {', '.join(sorted(unknown))}")
    return [name for name in wanted if COMPONENTS[name].exists()]


@contextlib.contextmanager
def running(
    plan: Plan,
    names: Sequence[str],
    out: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Runner]:
    """Start `names`, yield the runner, and stop everything however the block ends. `env`
    replaces this process's environment as the source of the children's settings."""
    runner = Runner(plan=plan, names=list(names), out=out or sys.stdout, parent_env=env)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    if threading.current_thread() is threading.main_thread():
        for sig in previous:
            signal.signal(sig, on_signal)
    try:
        runner.start()
        yield runner
    finally:
        runner.stop()
        if threading.current_thread() is threading.main_thread():
            for sig, handler in previous.items():
                signal.signal(sig, handler)
