"""Shared by both zones (a client of each): the demo data of a local run, made on its first run.

Two merchants (one permitted to send raw cards: the API's `raw_card_data` capability plus an
entry in the CDE's attestation register; one not), and one dashboard login per staff role. All
of it is made with each component's own operator CLI, run as a subprocess with that
component's settings and no service credentials, so this module imports neither zone. The
keys and passwords are written once to `var/demo/seed.json` (folder 0700, file 0600), never to
the repository (PCI DSS 8.3.2 for real keys; these are test-mode keys of a local run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fincore.pki import ensure_ca
from fincore.runner import COMPONENTS, PROJECT_ROOT, Plan, component_env

SEED_ACTOR = "fincore-seed"
# What a run needs for the seed to make sense (and the CLIs that make it).
SEEDED_BY = ("api", "vault", "dashboard")


class SeedError(RuntimeError):
    """A component's CLI failed while seeding (the message carries the end of its stderr)."""


@dataclass(frozen=True)
class DemoMerchant:
    id: str
    name: str
    secret_key: str
    publishable_key: str
    raw_cards: bool


@dataclass(frozen=True)
class StaffLogin:
    username: str
    role: str
    password: str
    totp_secret: str


@dataclass(frozen=True)
class DemoSeed:
    raw: DemoMerchant
    sdk: DemoMerchant
    attestation_expires: str
    staff: tuple[StaffLogin, ...]
    staff_file: str

    def login(self, role: str) -> StaffLogin:
        return next(s for s in self.staff if s.role == role)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DemoSeed:
        return cls(
            raw=DemoMerchant(**data["raw"]),
            sdk=DemoMerchant(**data["sdk"]),
            attestation_expires=str(data["attestation_expires"]),
            staff=tuple(StaffLogin(**s) for s in data["staff"]),
            staff_file=str(data["staff_file"]),
        )


def seed_file(plan: Plan) -> Path:
    return plan.var_dir / "demo" / "seed.json"


def cli_env(plan: Plan, component: str, actor: str = SEED_ACTOR) -> dict[str, str]:
    """`component`'s environment for its operator CLI: its zone's settings and wiring, but no
    service credentials (an operator is not the service) and no parent to watch."""
    env = component_env(COMPONENTS[component], plan, os.environ)
    for name in ("FINCORE_SERVICE_KEY_FILE", "FINCORE_SERVICE_CERT_FILE", "FINCORE_PARENT_PID"):
        env.pop(name, None)
    env.update(
        FINCORE_COMPONENT=f"{component}-cli",
        FINCORE_ADMIN_ACTOR=actor,
        FINCORE_AUDIT_ACTOR=actor,
        FINCORE_VAULT_OPERATOR=actor,
    )
    return env


def cli_command(component: str, args: Sequence[str]) -> list[str]:
    """`python -m <module> …` of a component's command line (its operator CLI is `admin …`)."""
    module = COMPONENTS[component].module
    return [sys.executable, "-m", module, *args]


def start_cli(plan: Plan, component: str, args: Sequence[str]) -> subprocess.Popen[str]:
    """Start `component`'s command with its CLI environment; output is captured."""
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        cli_command(component, args),
        cwd=PROJECT_ROOT,
        env=cli_env(plan, component),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_cli(process: subprocess.Popen[str], what: str, timeout_s: float = 120) -> Any:
    """Wait for a CLI started by `start_cli`; its JSON output, or SeedError."""
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise SeedError(f"{what}: no answer in {timeout_s:.0f}s") from None
    if process.returncode != 0:
        raise SeedError(f"{what} failed ({process.returncode}): {err.strip()[-400:]}")
    try:
        return json.loads(out)
    except ValueError:
        raise SeedError(f"{what}: output is not JSON") from None


def run_cli(plan: Plan, component: str, args: Sequence[str]) -> Any:
    """Run `component`'s command to completion and return its JSON output (or SeedError)."""
    return finish_cli(start_cli(plan, component, args), f"{component} {' '.join(args[:2])}")


def _merchant(created: Mapping[str, Any], raw_cards: bool) -> DemoMerchant:
    return DemoMerchant(
        id=str(created["merchant"]["id"]),
        name=str(created["merchant"]["name"]),
        secret_key=str(created["secret_key"]["value"]),
        publishable_key=str(created["publishable_key"]["value"]),
        raw_cards=raw_cards,
    )


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def load_seed(plan: Plan) -> DemoSeed | None:
    path = seed_file(plan)
    if not path.is_file():
        return None
    return DemoSeed.from_json(json.loads(path.read_text(encoding="utf-8")))


def ensure_seed(plan: Plan) -> DemoSeed:
    """The demo data of this var folder: read back, or made now (first run)."""
    found = load_seed(plan)
    if found is not None:
        return found
    ensure_ca(plan.pki_dir)
    (plan.var_dir / "log").mkdir(parents=True, exist_ok=True)
    # Independent stores run side by side: the dashboard's logins, then the CDE register once
    # the permitted merchant has its id; the API's commands one after the other.
    staff = start_cli(plan, "dashboard", ["admin", "demo-login"])
    raw = _merchant(
        run_cli(plan, "api", ["admin", "merchants", "create", "--name", "Demo Shop (raw cards)"]),
        True,
    )
    expires = (datetime.now(UTC).date() + timedelta(days=365)).isoformat()
    register = start_cli(plan, "vault", ["admin", "--json", "attest", raw.id, "--expires", expires])
    sdk = _merchant(
        run_cli(plan, "api", ["admin", "merchants", "create", "--name", "Demo Shop (SDK only)"]),
        False,
    )
    granted = run_cli(
        plan,
        "api",
        [
            "admin",
            "raw-card",
            "grant",
            raw.id,
            "--attestation-expires",
            expires,
            "--reason",
            "demo AOC",
        ],
    )
    if not granted.get("active_today"):
        raise SeedError("the raw_card_data capability is not active after the grant")
    finish_cli(register, "vault admin attest")
    logins = finish_cli(staff, "dashboard admin demo-login")
    seed = DemoSeed(
        raw=raw,
        sdk=sdk,
        attestation_expires=expires,
        staff=tuple(
            StaffLogin(
                username=str(a["username"]),
                role=str(a["role"]),
                password=str(a["password"]),
                totp_secret=str(a["totp_secret"]),
            )
            for a in logins["accounts"]
        ),
        staff_file=str(logins["file"]),
    )
    _write_private(seed_file(plan), json.dumps(seed.to_json(), indent=2, sort_keys=True) + "\n")
    return seed


def psp_publishable_key(plan: Plan) -> str | None:
    """The PSP sandbox's publishable key (for its browser SDK), once the sandbox has made it."""
    path = plan.var_dir / "psp-sandbox" / "credentials.json"
    if not path.is_file():
        return None
    value = json.loads(path.read_text(encoding="utf-8")).get("publishable_key")
    return str(value) if value else None


def describe(plan: Plan, seed: DemoSeed) -> str:
    """What `fincore run` prints about the demo data (test-mode keys of a local run)."""
    lines = ["Demo data (keys and logins in " + str(seed_file(plan)) + ", mode 0600):"]
    for merchant in (seed.raw, seed.sdk):
        kind = (
            f"raw cards allowed (attestation until {seed.attestation_expires})"
            if merchant.raw_cards
            else "no raw cards (SDK and hosted page only)"
        )
        lines += [
            f"  {merchant.name}  {merchant.id}  {kind}",
            f"    secret key:      {merchant.secret_key}",
            f"    publishable key: {merchant.publishable_key}",
        ]
    psp_key = psp_publishable_key(plan)
    if psp_key:
        lines.append(f"  PSP sandbox publishable key (sandbox.js): {psp_key}")
    support = seed.login("support")
    lines += [
        f"  Dashboard: {plan.url('dashboard')}/login  {support.username} / {support.password}",
        f"    + a TOTP code (secret {support.totp_secret}); every role: {seed.staff_file}",
    ]
    return "\n".join(lines)
