"""The staff-account CLI: create with role and TOTP (secrets printed once), list, reset MFA,
reset password, unlock, role and status changes, each audited; the demo logins."""

from __future__ import annotations

import io
import json
import stat
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from fincore.logs import configure_logging
from noncde.dashboard.cli import main
from noncde.dashboard.domain.accounts import candidate_steps
from tests.unit.dashboard.support import Harness


def _run(harness: Harness, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    capsys.readouterr()  # drop what earlier steps of the test printed; keep only the CLI's output
    code = main(["--actor", "ops.lead", *argv], runtime=harness.runtime)
    out = capsys.readouterr().out
    # The CLI logs to the stderr it was given (the capture); later requests log elsewhere.
    configure_logging("dashboard", stream=sys.__stderr__, to_file=False)
    return code, json.loads(out) if out.strip() else None


def test_create_user_prints_the_provisioning_uri_once_and_audits(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """The URI and generated password appear only in the create output; the secret is not
    in the listing; the account's codes come from that URI."""
    code, made = _run(harness, capsys, "create-user", "carol", "--role", "finance")
    assert code == 0 and made["role"] == "finance" and made["shown_once"] is True
    uri = made["totp_provisioning_uri"]
    assert uri.startswith("otpauth://totp/") and "issuer=FinCore" in uri
    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    assert len(made["initial_password"]) >= 12
    _, listing = _run(harness, capsys, "list-users")
    text = json.dumps(listing)
    assert secret not in text and made["initial_password"] not in text
    carol = next(u for u in listing if u["username"] == "carol")
    assert carol["mfa_enrolled"] and carol["must_change_password"] and not carol["locked"]
    step = candidate_steps(harness.clock())[1]
    user = harness.runtime.store.find_user("carol")
    assert user is not None
    assert (
        harness.runtime.auth._check_code(user, harness.runtime.totp.code_at(secret, step)) is None
    )
    kinds = [(r.event_type, r.actor.id) for r in harness.records() if r.target == user.id]
    assert ("identity.account_create", "ops.lead") in kinds
    assert ("identity.role_grant", "ops.lead") in kinds
    assert ("identity.mfa_enrol", "ops.lead") in kinds


def test_create_user_with_a_password_from_stdin_checks_the_policy(
    harness: Harness, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A weak password is refused with exit 2; nothing is created."""
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, _ = _run(harness, capsys, "create-user", "dave", "--role", "support", "--password-stdin")
    assert code == 2 and harness.runtime.store.find_user("dave") is None


def test_duplicate_names_are_refused(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    """PCI DSS 8.2.1: one account per name."""
    code, _ = _run(harness, capsys, "create-user", "support.one", "--role", "admin")
    assert code == 2
    assert harness.runtime.store.find_user("support.one").role.value == "support"  # type: ignore[union-attr]


def test_reset_mfa_replaces_the_seed_and_ends_sessions(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """After an MFA reset the old authenticator's codes fail and the account is signed out."""
    client = harness.client()
    harness.sign_in(client, "auditor.one")
    old_secret = harness.secrets["auditor.one"]
    code, shown = _run(harness, capsys, "reset-mfa", "auditor.one")
    assert code == 0
    new_secret = parse_qs(urlsplit(shown["totp_provisioning_uri"]).query)["secret"][0]
    assert new_secret != old_secret
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    user = harness.runtime.store.find_user("auditor.one")
    assert user is not None
    step = candidate_steps(harness.clock())[0]
    old_code = harness.runtime.totp.code_at(old_secret, step)
    if old_code != harness.runtime.totp.code_at(new_secret, step):
        assert harness.runtime.auth._check_code(user, old_code) == "totp_invalid"
    assert harness.events("identity.mfa_reset")[-1].details["sessions_ended"] == 1


def test_role_change_records_before_and_after(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """PCI DSS 10.2.1.5: a role change names both roles."""
    code, shown = _run(harness, capsys, "set-role", "support.one", "finance")
    assert code == 0 and shown["role"] == "finance"
    grant = harness.events("identity.role_grant")[-1]
    assert grant.details["before"] == "support" and grant.details["after"] == "finance"
    assert harness.events("identity.role_revoke")[-1].details["before"] == "support"


def test_unlock_disable_enable_and_reset_password(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each command changes the account as named and is audited with the operator."""
    for _ in range(10):
        harness.runtime.store.record_failure(
            "finance.one", harness.clock(), harness.runtime.config.lockout_policy()
        )
    _, listing = _run(harness, capsys, "list-users")
    assert next(u for u in listing if u["username"] == "finance.one")["locked"]
    assert _run(harness, capsys, "unlock", "finance.one")[0] == 0
    assert harness.runtime.store.guard("finance.one") is None
    assert _run(harness, capsys, "disable", "finance.one")[1]["status"] == "disabled"
    assert _run(harness, capsys, "enable", "finance.one")[1]["status"] == "active"
    code, shown = _run(harness, capsys, "reset-password", "finance.one")
    assert code == 0 and len(shown["password"]) >= 12
    user = harness.runtime.store.find_user("finance.one")
    assert user is not None and user.must_change_password
    events = [r.event_type for r in harness.records() if r.actor.id == "ops.lead"]
    assert events.count("identity.account_change") == 3
    assert "identity.password_reset" in events


def test_unknown_accounts_give_exit_2(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    """A command on a name that does not exist fails cleanly."""
    assert _run(harness, capsys, "unlock", "nobody")[0] == 2


def test_demo_logins_are_created_once_into_a_private_file(
    harness: Harness,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """One demo account per role; credentials in a 0600 file under var/; a second run
    returns the same accounts without changing them."""
    monkeypatch.setenv("FINCORE_VAR_DIR", str(tmp_path / "var"))
    code, first = _run(harness, capsys, "demo-login")
    assert code == 0
    path = Path(first["file"])
    assert path.is_relative_to(tmp_path / "var")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert {a["role"] for a in first["accounts"]} == {"support", "finance", "auditor", "admin"}
    _, second = _run(harness, capsys, "demo-login")
    assert second["accounts"] == first["accounts"]
    demo = first["accounts"][0]
    harness.passwords[demo["username"]] = demo["password"]
    harness.secrets[demo["username"]] = demo["totp_secret"]
    client = harness.client()
    harness.sign_in(client, demo["username"])
    assert client.get("/", follow_redirects=False).status_code == 200
