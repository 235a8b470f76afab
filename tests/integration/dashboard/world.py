"""The non-CDE platform of one dashboard test, as the runner starts it: one `var` folder, the
development CA, free loopback ports, the API as a real process over TLS, and the dashboard
either in-process (a test client) or as a real process (for the browser)."""

from __future__ import annotations

import os
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from fincore.identity import ServiceCredentials
from fincore.netutil import free_port
from fincore.pki import ensure_ca, issue_service_credentials
from fincore.runner import COMPONENTS, Plan, component_env
from tests.harness.procs import ServerProcess

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class World:
    var: Path
    plan: Plan = field(init=False)
    processes: dict[str, ServerProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ports = {name: free_port() for name in COMPONENTS}
        ports["psp-sftp"] = free_port()
        self.plan = Plan(var_dir=self.var, ports=ports, environment="test")
        ensure_ca(self.plan.pki_dir)

    def env(self, component: str = "dashboard") -> dict[str, str]:
        """The environment the runner gives `component` (its zone's settings only)."""
        env = component_env(COMPONENTS[component], self.plan, os.environ)
        env.pop("FINCORE_PARENT_PID", None)
        env["FINCORE_AUDIT_FSYNC"] = "batch"
        return env

    def credentials(self, name: str) -> ServiceCredentials:
        files = issue_service_credentials(self.plan.pki_dir, name, COMPONENTS[name].zone)
        return ServiceCredentials.from_files(files.key, files.cert)

    def url(self, component: str) -> str:
        return self.plan.url(component)

    def start(self, component: str, *args: str) -> str:
        """Start `python -m <module>` for a component, as the runner would; its URL."""
        spec = COMPONENTS[component]
        process = ServerProcess(
            [sys.executable, "-m", spec.module, *spec.args, *args],
            name=component,
            log_path=self.var / "out" / f"{component}.out",
            env=self.env(component),
            cwd=ROOT,
        )
        self.processes[component] = process
        context = ssl.create_default_context(cafile=str(self.plan.ca_file))
        url = self.url(component)
        process.wait_until(
            lambda: httpx.get(url + "/healthz", verify=context, timeout=2).status_code == 200,
            timeout_s=60,
        )
        return url

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()
        self.processes.clear()
