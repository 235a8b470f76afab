"""noncde.dashboard (non-CDE): the staff-account CLI (`python -m noncde.dashboard.app admin …`).

Every change is written to the non-CDE audit log with the operator's name (`--actor`, default
$FINCORE_ADMIN_ACTOR or the login name; PCI DSS 8.2.1, 10.2.1.5). Initial passwords and TOTP
provisioning URIs are printed once, by the command that makes them, and are stored nowhere in
the clear. `demo-login` (development only) creates one demo account per role on first run and
keeps their credentials in a 0600 file under var/, never in code.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from fincore.logs import configure_logging
from fincore.settings import SettingsError, var_dir
from noncde.dashboard.bootstrap import DashboardRuntime, build_runtime
from noncde.dashboard.domain import DashboardError, Role, StaffUser
from noncde.dashboard.service import generated_password, totp_context

DEMO_FILE = Path("dashboard") / "demo-logins.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m noncde.dashboard.app admin",
        description="Manage dashboard staff accounts (every change is audited).",
    )
    parser.add_argument(
        "--actor",
        default=os.environ.get("FINCORE_ADMIN_ACTOR") or getpass.getuser(),
        help="your name for the audit log (default: $FINCORE_ADMIN_ACTOR or your login)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-user", help="an account with its role and TOTP factor")
    create.add_argument("username")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the initial password from stdin (default: generate one, printed once)",
    )
    sub.add_parser("list-users", help="accounts, roles, MFA and lock state")
    for name, text in (
        ("reset-mfa", "new TOTP factor; prints the provisioning URI once"),
        ("reset-password", "new random password (must be changed at login), printed once"),
        ("unlock", "clear failed attempts and a lockout"),
        ("disable", "refuse every login and end the sessions"),
        ("enable", "allow logins again"),
    ):
        sub.add_parser(name, help=text).add_argument("username")
    role = sub.add_parser("set-role", help="change an account's role (sessions end)")
    role.add_argument("username")
    role.add_argument("role", choices=[r.value for r in Role])
    sub.add_parser("demo-login", help="development only: the demo accounts (created on first run)")
    return parser


def run(runtime: DashboardRuntime, args: argparse.Namespace) -> Any:
    staff = runtime.staff
    actor = args.actor
    command = args.command
    if command == "create-user":
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
        made = staff.create_user(args.username, args.role, actor=actor, password=password)
        shown: dict[str, Any] = {
            **_user(made.user),
            "totp_provisioning_uri": made.provisioning_uri,
            "shown_once": True,
        }
        if made.initial_password is not None:
            shown["initial_password"] = made.initial_password
        return shown
    if command == "list-users":
        locked = staff.locked_names()
        return [{**_user(u), "locked": u.username in locked} for u in staff.users()]
    if command == "reset-mfa":
        uri = staff.reset_mfa(args.username, actor=actor)
        return {"username": args.username, "totp_provisioning_uri": uri, "shown_once": True}
    if command == "reset-password":
        password = staff.reset_password(args.username, actor=actor)
        return {"username": args.username, "password": password, "shown_once": True}
    if command == "unlock":
        staff.unlock(args.username, actor=actor)
        return {"username": args.username, "unlocked": True}
    if command in {"disable", "enable"}:
        status = "disabled" if command == "disable" else "active"
        return _user(staff.set_status(args.username, status, actor=actor))
    if command == "set-role":
        return _user(staff.set_role(args.username, args.role, actor=actor))
    return demo_logins(runtime, actor)


def _user(user: StaffUser) -> dict[str, Any]:
    shown = user.summary()
    shown["created_at"] = user.created_at.isoformat()
    shown["last_login_at"] = user.last_login_at.isoformat() if user.last_login_at else None
    return shown


def demo_logins(runtime: DashboardRuntime, actor: str) -> dict[str, Any]:
    """One demo account per role, created on first run; their credentials live in a 0600
    file under var/ (never in code). Refused in production."""
    if runtime.config.production:
        raise SettingsError("demo-login is for development only")
    path = var_dir() / DEMO_FILE
    if path.exists():
        known: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if all(runtime.store.find_user(a["username"]) for a in known["accounts"]):
            return {"file": str(path), "accounts": known["accounts"]}
    accounts = []
    for role in Role:
        username = f"demo.{role.value}"
        if runtime.store.find_user(username) is None:
            password = generated_password()
            runtime.staff.create_user(username, role.value, actor=actor, password=password)
        else:
            # The credentials file is gone: new password and TOTP factor (both audited).
            password = runtime.staff.reset_password(username, actor=actor)
            runtime.staff.reset_mfa(username, actor=actor)
        user = runtime.store.find_user(username)
        assert user is not None and user.totp_sealed is not None
        # Demo accounts skip the first-login password change; real accounts never do.
        runtime.store.save_user(replace(user, must_change_password=False))
        secret = runtime.auth.box.open(user.totp_sealed, totp_context(user.id))
        accounts.append(
            {
                "username": username,
                "role": role.value,
                "password": password,
                "totp_secret": secret,
                "totp_provisioning_uri": runtime.totp.provisioning_uri(
                    secret, username, "FinCore dashboard (demo)"
                ),
            }
        )
    saved: dict[str, Any] = {"accounts": accounts}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(saved, handle, indent=2)
    return {"file": str(path), **saved}


def main(argv: Sequence[str] | None = None, runtime: DashboardRuntime | None = None) -> int:
    args = _parser().parse_args(list(argv) if argv is not None else None)
    configure_logging("dashboard", stream=sys.stderr, to_file=False)
    own = runtime is None
    try:
        runtime = runtime or build_runtime(connect=False)
    except SettingsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    try:
        result = run(runtime, args)
    except (DashboardError, SettingsError) as exc:
        message = exc.message if isinstance(exc, DashboardError) else str(exc)
        sys.stderr.write(f"error: {message}\n")
        return 2
    finally:
        if own:
            runtime.close()
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0
