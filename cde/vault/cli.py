"""cde.vault (CDE): the operator CLI (`python -m cde.vault.app admin …`).

Key rotation, re-wrap, retirement, re-keying, retention purge, crypto-shredding, the
attestation register and a demo tokenization. It runs inside the CDE with the vault's own
settings, and every command is written to the CDE audit log with the operator's name
(`FINCORE_VAULT_OPERATOR`, else the login name; PCI DSS 10.2.1.2, 10.2.1.7).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, TextIO

from audit.domain import AuditError, EventType, Outcome
from cde.vault.bootstrap import VaultRuntime, build_vault, operator_actor
from cde.vault.config import VaultSettings
from cde.vault.domain import VaultError
from cde.vault.service import Caller, VaultAdmin
from fincore.cards import mask_pan
from fincore.logs import configure_logging
from fincore.settings import SettingsError, is_production

DEMO_CARD = {"number": "4242 4242 4242 4242", "exp_month": 12, "cvc": "123", "name": "Demo"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cde.vault.app admin", description="FinCore vault operator commands"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the vault schema")
    sub.add_parser("status", help="KEKs, data keys and row counts (no key material)")
    attest = sub.add_parser("attest", help="record a merchant's PCI attestation (CDE register)")
    attest.add_argument("merchant_id")
    attest.add_argument("--expires", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
    attest.add_argument("--note", default="")
    revoke = sub.add_parser("revoke-attestation", help="remove a merchant from the register")
    revoke.add_argument("merchant_id")
    sub.add_parser("attestations", help="list the attestation register")
    rotate = sub.add_parser("rotate-kek", help="make a new KEK primary, then re-wrap data keys")
    rotate.add_argument("--new-kek", default=None, help="an existing KEK id (else one is created)")
    rotate.add_argument("--batch", type=int, default=500)
    rotate.add_argument("--no-rewrap", action="store_true", help="only switch the primary")
    rewrap = sub.add_parser("rewrap", help="re-wrap data keys under the primary KEK (resumable)")
    rewrap.add_argument("--batch", type=int, default=500)
    rewrap.add_argument("--max-batches", type=int, default=None)
    retire = sub.add_parser("retire-kek", help="retire a KEK no data key depends on")
    retire.add_argument("kek_id")
    rekey = sub.add_parser("rekey-records", help="re-seal records under fresh data keys")
    rekey.add_argument("--older-than-hours", type=float, default=0.0)
    rekey.add_argument("--batch", type=int, default=500)
    rekey.add_argument("--max-batches", type=int, default=None)
    purge = sub.add_parser("purge", help="delete records past retention and unused data keys")
    purge.add_argument("--retention-days", type=int, default=None)
    shred = sub.add_parser("shred", help="crypto-shred a merchant (irreversible)")
    shred.add_argument("merchant_id")
    shred.add_argument("--confirm", required=True, help="repeat the merchant id to confirm")
    delete = sub.add_parser("delete-token", help="delete one token")
    delete.add_argument("token")
    delete.add_argument("--merchant", required=True)
    demo = sub.add_parser("tokenize-demo", help="tokenize a published test card (not production)")
    demo.add_argument("--merchant", default="mer_demo")
    return parser


def _print(out: TextIO, as_json: bool, result: dict[str, Any]) -> None:
    if as_json:
        out.write(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
        return
    for key, value in result.items():
        out.write(f"{key}: {value}\n")


async def _tokenize_demo(runtime: VaultRuntime, admin: VaultAdmin, merchant: str) -> dict[str, Any]:
    if is_production():
        raise SettingsError("tokenize-demo is not available in production")
    today = runtime.clock().date()
    entry = await runtime.store.get_attestation(merchant)
    if entry is None or entry.expires_on < today:
        await admin.attest(merchant, today + timedelta(days=30), note="tokenize-demo")
    card = dict(DEMO_CARD, exp_year=today.year + 3)
    caller = Caller(name=admin.actor.id, kind=admin.actor.type)
    result = await runtime.service.tokenize(merchant_id=merchant, card=card, caller=caller)
    shown = result.card
    return {
        "merchant_id": merchant,
        "token": result.token,
        "card": f"{shown.brand} {mask_pan(str(card['number']).replace(' ', ''))} "
        f"exp {shown.exp_month:02d}/{shown.exp_year}",
        "fingerprint": shown.fingerprint,
        "cvc_held_for_s": runtime.settings.cvc_ttl_s,
    }


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    settings = VaultSettings.from_env()
    runtime = build_vault(settings, component="vault-cli")
    actor = operator_actor()
    admin = runtime.admin(actor)
    command = args.command
    try:
        runtime.audit.record(
            EventType.ADMIN_ACTION,
            actor=actor,
            outcome=Outcome.SUCCESS,
            resource="vault.cli",
            target=command,
            details={"command": command},
        )
        await admin.ensure_primary_kek()
        progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr)  # noqa: E731
        if command == "migrate":
            return {"schema": "up to date"}
        if command == "status":
            return await admin.status()
        if command == "attest":
            entry = await admin.attest(args.merchant_id, args.expires, note=args.note)
            return {"merchant_id": entry.merchant_id, "expires_on": entry.expires_on.isoformat()}
        if command == "revoke-attestation":
            return {
                "merchant_id": args.merchant_id,
                "removed": await admin.revoke_attestation(args.merchant_id),
            }
        if command == "attestations":
            rows = await admin.attestations()
            return {a.merchant_id: a.expires_on.isoformat() for a in rows}
        if command == "rotate-kek":
            kek = await admin.rotate_kek(args.new_kek)
            result: dict[str, Any] = {"primary_kek": kek.kek_id}
            if not args.no_rewrap:
                report = await admin.rewrap(batch_size=args.batch, progress=progress)
                result.update(rewrapped=report.rewrapped, remaining=report.remaining)
            return result
        if command == "rewrap":
            report = await admin.rewrap(
                batch_size=args.batch, max_batches=args.max_batches, progress=progress
            )
            return {
                "primary_kek": report.target_kek,
                "rewrapped": report.rewrapped,
                "remaining": report.remaining,
            }
        if command == "retire-kek":
            kek = await admin.retire_kek(args.kek_id)
            return {"kek_id": kek.kek_id, "state": str(kek.state)}
        if command == "rekey-records":
            rekeyed = await admin.rekey_records(
                older_than=timedelta(hours=args.older_than_hours),
                batch_size=args.batch,
                max_batches=args.max_batches,
                progress=progress,
            )
            return {"records": rekeyed.records, "failed": len(rekeyed.failed)}
        if command == "purge":
            days = args.retention_days or settings.retention_days
            purged = await admin.purge(
                retention=timedelta(days=days),
                key_max_age=timedelta(seconds=settings.key_max_age_s),
                cvc_ttl=timedelta(seconds=settings.cvc_ttl_s),
            )
            return {
                "records": purged.records,
                "data_keys": purged.data_keys,
                "retention_days": days,
            }
        if command == "shred":
            if args.confirm != args.merchant_id:
                raise SettingsError("--confirm must repeat the merchant id")
            shredded = await admin.shred_merchant(args.merchant_id)
            return {
                "merchant_id": shredded.merchant_id,
                "keys_destroyed": shredded.keys_destroyed,
                "records_deleted": shredded.records_deleted,
            }
        if command == "delete-token":
            caller = Caller(name=actor.id, kind=actor.type)
            await runtime.service.delete(token=args.token, merchant_id=args.merchant, caller=caller)
            return {"token": args.token, "deleted": True}
        if command == "tokenize-demo":
            return await _tokenize_demo(runtime, admin, args.merchant)
        raise SettingsError(f"unknown command {command}")
    finally:
        await runtime.close()


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Run one operator command; 0 on success, 1 on a refused or failed one."""
    stream = out or sys.stdout
    args = _parser().parse_args(argv)
    configure_logging("vault-cli", stream=sys.stderr)
    try:
        result = asyncio.run(_run(args))
    except (VaultError, AuditError, SettingsError, ValueError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        print(f"error: {type(exc).__name__}: {message}", file=sys.stderr)
        return 1
    _print(stream, args.json, result)
    return 0
