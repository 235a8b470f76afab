"""import-linter contracts hold on the tree, and each one fails on a planted violation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ["fincore", "cde", "noncde", "audit", "psp_sandbox"]


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)},
        check=False,
    )


def test_contracts_hold_on_the_tree() -> None:
    """Every contract in pyproject.toml is kept by the code as it is."""
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("tree")
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return copy


# (module to plant, import it makes, name of the contract that must break)
VIOLATIONS = [
    ("noncde/api/planted.py", "import cde.vault", "noncde never imports cde"),
    ("cde/vault/planted.py", "import noncde.api", "cde never imports noncde"),
    ("audit/planted.py", "import cde.vault", "audit, fincore and psp_sandbox import neither zone"),
    ("fincore/planted.py", "import noncde", "audit, fincore and psp_sandbox import neither zone"),
    ("fincore/planted2.py", "import audit", "fincore imports no other first-party package"),
    ("cde/gateway/planted.py", "import cde.vault.domain", "vault and gateway are independent"),
    (
        "cde/gateway/planted.py",
        "import aws_encryption_sdk",
        "aws_encryption_sdk only inside cde.vault",
    ),
    ("noncde/api/planted.py", "import stripe", "the stripe SDK only inside cde.gateway"),
    ("cde/vault/planted.py", "import stripe", "the stripe SDK only inside cde.gateway"),
    (
        "noncde/workers/planted.py",
        "import noncde.api.service",
        "workers, read models and dashboard use only noncde.api.domain of the API",
    ),
    (
        "cde/vault/service.py",
        "import cde.vault.adapters",
        "adapters are imported only by bootstrap (the composition root)",
    ),
    (
        "cde/vault/domain.py",
        "import cde.vault.service",
        "each component is layered app > bootstrap > adapters | service > ports > domain",
    ),
]


@pytest.mark.parametrize(("path", "statement", "contract"), VIOLATIONS)
def test_planted_violation_breaks_its_contract(
    tree_copy: Path, path: str, statement: str, contract: str
) -> None:
    """Planting `statement` in `path` makes import-linter report `contract` as broken."""
    target = tree_copy / path
    original = target.read_text() if target.exists() else None
    target.write_text((original or '"""planted."""\n') + f"\n{statement}  # planted violation\n")
    try:
        result = _lint(tree_copy)
    finally:
        if original is None:
            target.unlink()
        else:
            target.write_text(original)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout, result.stdout[-3000:]
