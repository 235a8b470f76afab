"""The API as a real process over TLS (the runner's environment for component `api`), its admin
CLI as a subprocess, and a client that trusts the development CA."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from fincore.identity import TOKEN_HEADER, ServiceCredentials
from fincore.pki import issue_service_credentials
from fincore.runner import COMPONENTS, Plan, component_env
from tests.harness.procs import ServerProcess

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class ApiProcess:
    """`python -m noncde.api.app` in its own folder, started like the runner starts it."""

    plan: Plan
    extra_env: dict[str, str] = field(default_factory=dict)
    process: ServerProcess | None = None

    @property
    def var(self) -> Path:
        return self.plan.var_dir

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.plan.ports['api']}"

    def env(self) -> dict[str, str]:
        env = component_env(COMPONENTS["api"], self.plan, os.environ)
        env.pop("FINCORE_PARENT_PID", None)
        env.update(self.extra_env)
        return env

    def start(self) -> ApiProcess:
        self.process = ServerProcess(
            [sys.executable, "-m", "noncde.api.app"],
            name="api",
            log_path=self.var / "out" / "api.out",
            env=self.env(),
            cwd=ROOT,
        )
        context = ssl.create_default_context(cafile=str(self.plan.ca_file))
        self.process.wait_until(
            lambda: httpx.get(self.url + "/healthz", verify=context, timeout=2).status_code == 200,
            timeout_s=60,
        )
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def client(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.plan.ca_file))
        return httpx.Client(base_url=self.url, verify=context, timeout=30)

    def token_headers(self, caller: str, zone: str = "cde") -> dict[str, str]:
        files = issue_service_credentials(self.plan.pki_dir, caller, zone)
        token = ServiceCredentials.from_files(files.key, files.cert).token_for("api")
        return {TOKEN_HEADER: token}

    def admin(self, *args: str, check: bool = True) -> Any:
        """`python -m noncde.api.app admin …` with the API's environment; its JSON output."""
        env = self.env() | {"FINCORE_ADMIN_ACTOR": "ops-alice"}
        result = subprocess.run(
            [sys.executable, "-m", "noncde.api.app", "admin", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"admin {args} failed:\n{result.stderr[-3000:]}")
        return json.loads(result.stdout) if result.returncode == 0 else result

    def audit_records(self) -> list[dict[str, Any]]:
        path = self.var / "audit" / "noncde" / "records.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
