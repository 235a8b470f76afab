"""noncde.api (non-CDE): the staff CLI of the merchant directory and the risk rules
(`python -m noncde.api.app admin …`).

Every change is written to the non-CDE audit log with the operator's name (`--actor`, default
$FINCORE_ADMIN_ACTOR or the login name; PCI DSS 8.2.1, 10.2.1.2, 10.2.1.5). Secret keys and
webhook secrets are printed once, by the command that creates them. Output is JSON.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fincore.logs import configure_logging
from noncde.api.bootstrap import ApiRuntime, build_runtime
from noncde.api.domain.errors import PaymentApiError
from noncde.api.domain.merchants import ApiKey, RawCardCapability
from noncde.api.domain.risk import DEFAULT_RULES, InvalidRules, parse_rules
from noncde.api.service import IssuedKey


def _key(issued: IssuedKey) -> dict[str, Any]:
    return {**issued.key.to_dict(), "value": issued.value, "shown_once": True}


def _capability(capability: RawCardCapability) -> dict[str, Any]:
    return {
        "granted": capability.granted,
        "attestation_expires_on": capability.attestation_expires_on.isoformat()
        if capability.attestation_expires_on
        else None,
        "active_today": capability.active_on(date.today()),  # noqa: DTZ011 - a calendar date
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m noncde.api.app admin",
        description="Manage merchants, API keys, capabilities, webhook endpoints and risk rules.",
    )
    parser.add_argument(
        "--actor",
        default=os.environ.get("FINCORE_ADMIN_ACTOR") or getpass.getuser(),
        help="your name for the audit log (default: $FINCORE_ADMIN_ACTOR or your login)",
    )
    groups = parser.add_subparsers(dest="group", required=True)

    merchants = groups.add_parser("merchants").add_subparsers(dest="command", required=True)
    create = merchants.add_parser("create", help="a merchant with a secret and publishable key")
    create.add_argument("--name", required=True)
    merchants.add_parser("list")
    for name in ("show", "disable", "enable"):
        merchants.add_parser(name).add_argument("merchant_id")

    keys = groups.add_parser("keys").add_subparsers(dest="command", required=True)
    key_create = keys.add_parser("create", help="a new key (printed once)")
    key_create.add_argument("merchant_id")
    key_create.add_argument("--publishable", action="store_true")
    keys.add_parser("list").add_argument("merchant_id")
    rotate = keys.add_parser("rotate", help="a new key; the old one works for --overlap-hours")
    rotate.add_argument("key_id")
    rotate.add_argument("--overlap-hours", type=float, default=24.0)
    revoke = keys.add_parser("revoke", help="stop a key now")
    revoke.add_argument("key_id")
    revoke.add_argument("--reason")

    raw = groups.add_parser("raw-card", help="the raw_card_data capability (S2S)")
    raw_commands = raw.add_subparsers(dest="command", required=True)
    grant = raw_commands.add_parser("grant")
    grant.add_argument("merchant_id")
    grant.add_argument(
        "--attestation-expires", required=True, help="PCI attestation expiry, YYYY-MM-DD"
    )
    grant.add_argument("--reason")
    raw_revoke = raw_commands.add_parser("revoke")
    raw_revoke.add_argument("merchant_id")
    raw_revoke.add_argument("--reason")
    raw_commands.add_parser("show").add_argument("merchant_id")

    hooks = groups.add_parser("webhooks").add_subparsers(dest="command", required=True)
    add = hooks.add_parser("add", help="an endpoint and its signing secret (printed once)")
    add.add_argument("merchant_id")
    add.add_argument("--url", required=True)
    add.add_argument("--events", default="*", help="comma-separated event types, or *")
    hooks.add_parser("list").add_argument("merchant_id", nargs="?")
    hooks.add_parser("disable").add_argument("endpoint_id")

    rules = groups.add_parser("rules", help="risk rules").add_subparsers(
        dest="command", required=True
    )
    rules.add_parser("show", help="the active rule set")
    rules.add_parser("defaults", help="print the default rule set")
    for name in ("validate", "publish"):
        rules.add_parser(name).add_argument("file", type=Path, help="a JSON list of rules")
    return parser


def run(runtime: ApiRuntime, args: argparse.Namespace) -> Any:
    """Execute one parsed admin command; returns what to print."""
    directory = runtime.directory
    actor = args.actor
    group, command = args.group, args.command
    if group == "merchants":
        if command == "create":
            created = directory.create_merchant(args.name, actor=actor)
            return {
                "merchant": created.merchant.to_dict(),
                "secret_key": _key(created.secret_key),
                "publishable_key": _key(created.publishable_key),
            }
        if command == "list":
            return [m.to_dict() for m in directory.merchants()]
        if command == "show":
            merchant = directory.merchant(args.merchant_id)
            return {
                "merchant": merchant.to_dict(),
                "keys": [k.to_dict() for k in directory.keys(merchant.id)],
                "raw_card_data": _capability(directory.raw_card(merchant.id)),
                "webhook_endpoints": [
                    e.to_dict() for e, _ in directory.webhook_endpoints(merchant.id)
                ],
            }
        status = "disabled" if command == "disable" else "active"
        directory.set_merchant_status(args.merchant_id, status, actor=actor)
        return directory.merchant(args.merchant_id).to_dict()
    if group == "keys":
        if command == "create":
            kind = "publishable" if args.publishable else "secret"
            return _key(directory.create_key(args.merchant_id, kind, actor=actor))
        if command == "list":
            return [_shown(directory, k) for k in directory.keys(args.merchant_id)]
        if command == "rotate":
            issued, old = directory.rotate_key(
                args.key_id, overlap=timedelta(hours=args.overlap_hours), actor=actor
            )
            return {"new_key": _key(issued), "old_key": old.to_dict()}
        return directory.revoke_key(args.key_id, actor=actor, reason=args.reason).to_dict()
    if group == "raw-card":
        if command == "grant":
            try:
                expires = date.fromisoformat(args.attestation_expires)
            except ValueError:
                raise SystemExit("--attestation-expires must be YYYY-MM-DD") from None
            return _capability(
                directory.grant_raw_card(
                    args.merchant_id,
                    attestation_expires_on=expires,
                    actor=actor,
                    reason=args.reason,
                )
            )
        if command == "revoke":
            return _capability(
                directory.revoke_raw_card(args.merchant_id, actor=actor, reason=args.reason)
            )
        return _capability(directory.raw_card(args.merchant_id))
    if group == "webhooks":
        if command == "add":
            events = [e.strip() for e in args.events.split(",") if e.strip()]
            endpoint, secret = directory.add_webhook_endpoint(
                args.merchant_id, args.url, events, actor=actor
            )
            return {**endpoint.to_dict(), "secret": secret, "shown_once": True}
        if command == "list":
            return [e.to_dict() for e, _ in directory.webhook_endpoints(args.merchant_id)]
        directory.disable_webhook_endpoint(args.endpoint_id, actor=actor)
        return {"id": args.endpoint_id, "disabled": True}
    if command == "show":
        active = directory.active_rules()
        return {"version": active.version, "rules": [dict(r) for r in active.rules]}
    if command == "defaults":
        return [dict(r) for r in DEFAULT_RULES]
    rules = json.loads(args.file.read_text(encoding="utf-8"))
    if command == "validate":
        policy = parse_rules(rules)
        return {"valid": True, "rules": len(policy.rules)}
    published = directory.publish_rules(rules, actor=actor)
    return {"version": published.version, "rules": len(published.rules)}


def _shown(directory: Any, key: ApiKey) -> dict[str, Any]:
    shown = key.to_dict()
    if key.kind == "publishable":
        shown["value"] = directory.publishable_key(key.id)
    return shown


def main(argv: Sequence[str] | None = None, runtime: ApiRuntime | None = None) -> int:
    args = _parser().parse_args(list(argv) if argv is not None else None)
    configure_logging("api", stream=sys.stderr, to_file=False)
    own = runtime is None
    runtime = runtime or build_runtime()
    try:
        result = run(runtime, args)
    except (PaymentApiError, InvalidRules, ValueError) as exc:
        message = exc.message if isinstance(exc, PaymentApiError) else str(exc)
        sys.stderr.write(f"error: {message}\n")
        return 2
    finally:
        if own:
            runtime.close()
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0
