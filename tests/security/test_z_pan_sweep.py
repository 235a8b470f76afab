"""The last security test (ordered last by conftest.py): every canary card goes through the
real S2S flow once more, the processes are stopped (every file flushed and closed), and the PAN
sweep (`fincore.pan_sweep`) runs over every store and log the folder's processes wrote — both
zones' databases and audit logs, every process log and their stdout, the PSP sandbox, the
reconciliation files. It must find nothing, except what is allowed in exactly one place: the
vault's encrypted record store (`vault_records.ciphertext`), and only as ciphertext — the vault
database holds no canary PAN or CVC in any encoding, anywhere (PCI DSS 3.5.1; checklist A1, A3)."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from pathlib import Path

import pytest

from fincore.pan_sweep import Finding, sweep, sweep_sqlite
from tests.security.stack import BRAND_CANARIES, OTHER_BRAND_PANS, Stack

pytestmark = pytest.mark.e2e

TERMINAL = {"succeeded", "failed", "canceled"}
VAULT_CIPHERTEXT = ("vault_records", "ciphertext")


def _charge_every_canary(stack: Stack) -> list[str]:
    """One S2S charge per canary card through the ingress; the ids of the charges."""
    cards = [
        *({"number": pan, "cvc": cvc} for pan, cvc in BRAND_CANARIES.items()),
        *({"number": pan, "cvc": "123"} for pan in [*OTHER_BRAND_PANS, *stack.synthetic]),
    ]
    merchant = stack.merchants["raw"]
    charges = []
    with stack.client(headers={"Authorization": f"Bearer {merchant.secret_key}"}) as client:
        for index, card in enumerate(cards):
            answer = client.post(
                stack.url("ingress") + "/v1/charges",
                json={
                    "amount": 1000 + index,
                    "currency": "usd",
                    "description": f"canary {index}",
                    "payment_method": {
                        "type": "card",
                        "card": {**card, "exp_month": 11, "exp_year": 2032},
                    },
                },
            )
            assert answer.status_code == 201, answer.text
            charges.append(str(answer.json()["id"]))
    return charges


def _wait_terminal(stack: Stack, charges: list[str]) -> None:
    """The worker took every charge to the PSP through the gateway (which detokenized it)."""
    merchant = stack.merchants["raw"]
    deadline = time.monotonic() + 90
    pending = set(charges)
    with stack.client(headers={"Authorization": f"Bearer {merchant.secret_key}"}) as client:
        while pending and time.monotonic() < deadline:
            for charge_id in sorted(pending):
                status = client.get(stack.url("api") + f"/v1/charges/{charge_id}").json()["status"]
                if status in TERMINAL:
                    pending.discard(charge_id)
            time.sleep(0.5)
    assert not pending, f"charges not terminal: {sorted(pending)}"


def _allowed(finding: Finding, vault_db: Path) -> bool:
    """A card-number-looking run inside the vault's ciphertext column (random bytes), never a
    canary: the only exclusion, as narrow as a table and a column of one file."""
    return (
        finding.kind == "pan"
        and finding.store == "sqlite"
        and Path(finding.path or finding.target).resolve() == vault_db.resolve()
        and (finding.table, finding.column) == VAULT_CIPHERTEXT
    )


def test_nothing_outside_the_vault_ciphertext_holds_card_data(stack: Stack, tmp_path: Path) -> None:
    """After every security test and a canary S2S charge per card: the sweep of the whole var
    folder (both zones, every store, log and stdout) finds no card number and no canary PAN or
    CVC in any encoding outside the vault's ciphertext; the vault database itself holds the
    canary cards only sealed (`FCV1` envelopes), with no canary in any encoding."""
    charges = _charge_every_canary(stack)
    _wait_terminal(stack, charges)
    stack.close_sessions()
    stack.runner.stop()  # every process flushes and closes its files
    assert stack.runner.children == []

    vault_db = stack.var / "cde" / "vault.db"
    targets = sorted(str(path) for path in stack.var.iterdir())
    assert {Path(t).name for t in targets} >= {"audit", "cde", "noncde", "log", "out"}
    findings = sweep(targets, stack.canaries)
    outside = [f.as_dict() for f in findings if not _allowed(f, vault_db)]
    assert outside == [], outside[:10]

    # The exclusion is narrow: the vault database, ciphertext included, holds no canary in any
    # encoding (the canaries are exact values: random ciphertext cannot match them) ...
    assert [f for f in sweep_sqlite(vault_db, stack.canaries) if f.kind == "canary"] == []
    # ... and it does hold this run's cards, sealed.
    with sqlite3.connect(vault_db) as conn:
        blobs = [bytes(row[0]) for row in conn.execute("SELECT ciphertext FROM vault_records")]
    assert len(blobs) >= len(charges)
    assert all(blob.startswith(b"FCV1") for blob in blobs)

    # The sweep is not blind: the same canaries planted raw, JSON-escaped and base64-encoded in
    # a log line, and a CVC under its field name, are each found.
    pan = stack.synthetic[0]
    planted = tmp_path / "planted.log"
    escaped = "".join(f"\\u{ord(c):04x}" for c in stack.synthetic[1])
    planted.write_text(
        "\n".join(
            [
                json.dumps({"note": f"card {pan}"}),
                '{"note": "' + escaped + '"}',
                json.dumps({"blob": base64.b64encode(OTHER_BRAND_PANS[0].encode()).decode()}),
                json.dumps({"cvc": next(iter(BRAND_CANARIES.values()))}),
            ]
        )
    )
    found = sweep([str(planted)], stack.canaries)
    assert {f.line for f in found} == {1, 2, 3, 4}, [f.as_dict() for f in found]
