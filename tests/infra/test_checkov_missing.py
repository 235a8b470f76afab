"""Without checkov's venv the checkov tests fail under CI=true and skip, loudly, everywhere else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.policy import REPO


@pytest.mark.parametrize(
    ("ci", "expected"),
    [
        ("true", ("1 error", "CI=true: refusing to skip")),
        ("", ("1 skipped", "SERVERS UNAVAILABLE")),
    ],
)
def test_missing_checkov(ci: str, expected: tuple[str, str], tmp_path: Path) -> None:
    """A checkov test run with no checkov binary errors in CI and is reported as skipped here."""
    env = {**os.environ, "FINCORE_CHECKOV": str(tmp_path / "no-checkov"), "CI": ci}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "tests/infra/test_checkov.py",
            "-k",
            "test_every_module_is_checked",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    for text in expected:
        assert text in result.stdout, result.stdout[-3000:]
