"""Key operations on a running vault through the operator CLI: a KEK rotation with reads going
on throughout, re-wrap and retirement, re-keying, then a restarted vault that decrypts every
record; and per-merchant crypto-shredding that even a restored backup row cannot undo."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.vault.conftest import ROOT, Cde, make_cde, tokenize

CARDS = [
    {"number": "4242424242424242", "exp_month": 5, "exp_year": 2031, "cvc": "123"},
    {"number": "5555555555554444", "exp_month": 6, "exp_year": 2032, "cvc": "456"},
    {"number": "378282246310005", "exp_month": 7, "exp_year": 2033, "cvc": "7391"},
]


@pytest.fixture
def busy_cde(tmp_path: Path) -> Iterator[Cde]:
    """A vault whose data keys seal two items each, so there are many keys to re-wrap."""
    cde = make_cde(tmp_path, FINCORE_VAULT_KEY_MAX_USES="2")
    cde.cli("attest", "mer_alpha", "--expires", "2099-12-31")
    cde.cli("attest", "mer_beta", "--expires", "2099-12-31")
    cde.start("vault")
    try:
        yield cde
    finally:
        for name in list(cde.processes):
            cde.stop(name)


def _detokenize_all(cde: Cde, tokens: list[tuple[str, str]]) -> list[int]:
    with cde.client() as client:
        return [
            client.post(
                cde.url("vault") + f"/v1/tokens/{token}/detokenize",
                json={"merchant_id": merchant},
                headers=cde.headers("gateway"),
            ).status_code
            for merchant, token in tokens
        ]


def test_rotation_keeps_every_record_readable(busy_cde: Cde) -> None:
    """Reads succeed during a batched KEK rotation; after re-wrap, retirement, re-keying and
    a restart with empty caches every record still decrypts; the old KEK is gone."""
    cde = busy_cde
    tokens: list[tuple[str, str]] = []
    with cde.client() as client:
        for index in range(30):
            merchant = "mer_alpha" if index % 2 else "mer_beta"
            answer = tokenize(cde, client, merchant, CARDS[index % 3])
            assert answer.status_code == 201
            tokens.append((merchant, answer.json()["token"]))
    before = json.loads(cde.cli("status").stdout)
    (old_kek,) = [k["kek_id"] for k in before["keks"] if k["state"] == "primary"]
    assert before["data_keys"] >= 30

    failures: list[int] = []
    reads = [0]
    stop = threading.Event()

    def reader() -> None:
        with cde.client() as client:
            while not stop.is_set():
                for merchant, token in tokens:
                    response = client.get(
                        cde.url("vault") + f"/v1/tokens/{token}",
                        params={"merchant_id": merchant},
                        headers=cde.headers("gateway"),
                    )
                    reads[0] += 1
                    if response.status_code != 200:
                        failures.append(response.status_code)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    rotation = subprocess.run(
        [sys.executable, "-m", "cde.vault.app", "admin", "--json", "rotate-kek", "--batch", "3"],
        env=cde.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    during = reads[0]
    stop.set()
    thread.join(timeout=30)
    assert rotation.returncode == 0, rotation.stderr[-2000:]
    rotated = json.loads(rotation.stdout)
    assert rotated["remaining"] == 0 and rotated["rewrapped"] == before["data_keys"]
    assert during > 0 and failures == []
    assert rotation.stderr.count("re-wrapped") >= before["data_keys"] // 3

    assert cde.cli("retire-kek", rotated["primary_kek"], check=False).returncode == 1
    retired = json.loads(cde.cli("retire-kek", old_kek).stdout)
    assert retired["state"] == "retired"
    key_file = (cde.var / "cde" / "vault-keys.json").read_text()
    assert old_kek not in key_file

    rekeyed = json.loads(cde.cli("rekey-records", "--batch", "7").stdout)
    assert rekeyed == {"records": 30, "failed": 0}

    cde.stop("vault")
    cde.start("vault")  # empty key caches: everything is unwrapped again
    assert _detokenize_all(cde, tokens) == [200] * 30
    after = json.loads(cde.cli("status").stdout)
    assert set(after["data_keys_by_kek"]) == {rotated["primary_kek"]}
    events = [r["event_type"] for r in cde.audit_records() if r["actor"]["id"] == "ops-test"]
    assert "system.key_rotate" in events and "system.key_retire" in events


def test_crypto_shredding_a_merchant(busy_cde: Cde) -> None:
    """Shredding destroys the merchant's keys and records; a row restored from a backup stays
    unreadable (even by a vault that cached the keys); other merchants are untouched."""
    cde = busy_cde
    with cde.client() as client:
        doomed = [tokenize(cde, client, "mer_beta", card).json()["token"] for card in CARDS]
        kept = tokenize(cde, client, "mer_alpha", CARDS[0]).json()["token"]
    assert _detokenize_all(cde, [("mer_beta", t) for t in doomed]) == [200] * 3  # keys cached
    with sqlite3.connect(cde.db_path()) as conn:
        backup = conn.execute(
            "SELECT * FROM vault_records WHERE token = ?", (doomed[0],)
        ).fetchone()

    refused = cde.cli("shred", "mer_beta", "--confirm", "mer_alfa", check=False)
    assert refused.returncode == 1
    shredded = json.loads(cde.cli("shred", "mer_beta", "--confirm", "mer_beta").stdout)
    assert shredded["records_deleted"] == 3 and shredded["keys_destroyed"] >= 3

    with sqlite3.connect(cde.db_path()) as conn:
        wrapped = conn.execute(
            "SELECT count(*) FROM vault_data_keys"
            " WHERE merchant_id = 'mer_beta' AND wrapped IS NOT NULL"
        ).fetchone()[0]
        conn.execute(f"INSERT INTO vault_records VALUES ({','.join('?' * len(backup))})", backup)
    assert wrapped == 0
    with cde.client() as client:
        restored = client.post(
            cde.url("vault") + f"/v1/tokens/{doomed[0]}/detokenize",
            json={"merchant_id": "mer_beta"},
            headers=cde.headers("gateway"),
        )
        gone = client.get(
            cde.url("vault") + f"/v1/tokens/{doomed[1]}",
            params={"merchant_id": "mer_beta"},
            headers=cde.headers("gateway"),
        )
        time.sleep(1.2)  # the vault re-reads the attestation register at most every second
        new_card = tokenize(cde, client, "mer_beta", CARDS[0])
    assert restored.status_code == 410
    assert restored.json()["error"]["code"] == "token_destroyed"
    assert "4242" not in restored.text
    assert gone.status_code == 404
    assert new_card.status_code == 403
    assert _detokenize_all(cde, [("mer_alpha", kept)]) == [200]
    destroyed = cde.audit_events("system.key_destroy")
    assert [d["details"]["step"] for d in destroyed] == ["start", "done"]
