"""Infrastructure tests: run checkov (own venv, offline) over the Terraform, once per directory.

checkov takes seconds per directory, so the runs start in the background as soon as pytest has
collected a checkov test (see conftest.py) and the tests wait for the JSON they need. One process
per directory: checkov's JSON for several `-d` in one run repeats the first directory's results.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.infra.policy import REPO, TERRAFORM

# The Makefile's checkov-install target makes this venv; FINCORE_CHECKOV points elsewhere.
CHECKOV = Path(os.environ.get("FINCORE_CHECKOV", str(REPO / ".venv-checkov" / "bin" / "checkov")))

# Real code: each root (every module is instantiated by both), and the two workload modules on
# their own: there checkov renders the shared modules' variables (fargate-service, kms-key,
# postgres, web-acl) from the literal arguments the zone modules pass, which it cannot do through
# the roots because their inputs come from other modules' outputs.
REAL_TARGETS = ("envs/prod", "envs/dev", "modules/cde", "modules/noncde")
FIXTURES = "fixtures"


def command(target: str) -> tuple[list[str], Path]:
    """The checkov command line and working directory for one target under infra/terraform."""
    if target == FIXTURES:
        # From the repository root, so infra/terraform/.checkov.yaml (skips fixtures) is not read.
        return (
            [
                str(CHECKOV),
                "-d",
                f"infra/terraform/{FIXTURES}",
                "--framework",
                "terraform",
                "--skip-download",
                "--external-checks-dir",
                "infra/terraform/policies/checkov",
                "--compact",
                "-o",
                "json",
            ],
            REPO,
        )
    return [str(CHECKOV), "--config-file", ".checkov.yaml", "-d", target, "-o", "json"], TERRAFORM


@dataclass
class Run:
    """One background checkov process and its JSON report."""

    target: str
    process: subprocess.Popen[bytes]
    output: Path
    errors: Path
    report: dict[str, Any] | None = None

    def wait(self, timeout: float = 600) -> dict[str, Any]:
        if self.report is None:
            self.process.wait(timeout=timeout)
            text = self.output.read_text(encoding="utf-8")
            if not text.strip():
                raise AssertionError(
                    f"checkov gave no output for {self.target}: {self.errors.read_text()[-2000:]}"
                )
            data = json.loads(text)
            self.report = data[0] if isinstance(data, list) else data
        return self.report


@dataclass
class Runs:
    """All checkov runs of a session, started once."""

    runs: dict[str, Run] = field(default_factory=dict)
    folder: Path | None = None

    def start(self) -> None:
        if self.runs or not CHECKOV.exists():
            return
        self.folder = Path(tempfile.mkdtemp(prefix="checkov-"))
        env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "WARNING"}
        for index, target in enumerate((*REAL_TARGETS, FIXTURES)):
            args, cwd = command(target)
            output, errors = self.folder / f"{index}.json", self.folder / f"{index}.err"
            with output.open("wb") as out, errors.open("wb") as err:
                process = subprocess.Popen(args, cwd=cwd, stdout=out, stderr=err, env=env)
            self.runs[target] = Run(target, process, output, errors)

    def report(self, target: str) -> dict[str, Any]:
        self.start()
        return self.runs[target].wait()

    def stop(self) -> None:
        for run in self.runs.values():
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait()


RUNS = Runs()
