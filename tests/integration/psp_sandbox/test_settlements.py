"""Daily settlement files: format and fee model, on demand, by CLI, by the daily job, over SFTP."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from fincore.netutil import free_port, wait_for_port
from tests.integration.psp_sandbox.peer import ROOT, SandboxServer, start_sandbox, wait_until

pytestmark = [pytest.mark.psp, pytest.mark.sftp]


@pytest.fixture(scope="module")
def settling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """A sandbox of its own (its clock gets moved) with the job polling often and SFTP on."""
    yield from start_sandbox(
        tmp_path_factory.mktemp("settling"),
        SETTLEMENT_INTERVAL_S="0.2",
        SFTP_PORT=str(free_port()),
    )


def _captured_and_refunded(sandbox: SandboxServer, amount: int, refund: int) -> str:
    client = sandbox.stripe_client()
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2033, "cvc": "123"},
        }
    )
    pi = client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "eur",
            "payment_method": pm.id,
            "confirm": True,
            "metadata": {"reference": "ch_settle"},
        }
    )
    client.v1.refunds.create(params={"payment_intent": pi.id, "amount": refund})
    return str(pi.id)


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_settlement_file_on_demand(settling: SandboxServer) -> None:
    """The file lists each capture (with the fee) and each refund (no fee) of the UTC day."""
    pi_id = _captured_and_refunded(settling, 10_000, 2_500)
    today = datetime.now(UTC).date().isoformat()
    result = settling.admin("POST", f"/_sandbox/settlements/{today}")
    assert result["file"] == f"settlement-{today}.csv"
    text = (settling.state_dir / "settlements" / result["file"]).read_text()
    assert text.splitlines()[0] == (
        "psp_reference,type,amount,fee,net,currency,date,payment_intent,"
        "balance_transaction,reference"
    )
    mine = [r for r in _rows(text) if r["payment_intent"] == pi_id]
    charge, refund = mine
    # 2.9 % + 30 minor units: 290 + 30.
    assert (
        charge["psp_reference"],
        charge["type"],
        charge["amount"],
        charge["fee"],
        charge["net"],
        charge["currency"],
        charge["date"],
        charge["reference"],
    ) == (pi_id, "charge", "10000", "320", "9680", "eur", today, "ch_settle")
    assert refund["psp_reference"].startswith("re_")
    assert (refund["type"], refund["amount"], refund["fee"], refund["net"]) == (
        "refund",
        "-2500",
        "0",
        "-2500",
    )
    assert refund["balance_transaction"].startswith("txn_")


def test_settlement_cli_writes_the_same_file(settling: SandboxServer) -> None:
    """`python -m psp_sandbox.app settle DATE` writes the day's file from the same state."""
    _captured_and_refunded(settling, 500, 100)
    today = datetime.now(UTC).date().isoformat()
    path = settling.state_dir / "settlements" / f"settlement-{today}.csv"
    settling.admin("POST", f"/_sandbox/settlements/{today}")
    from_api = path.read_text()
    path.unlink()
    done = subprocess.run(
        [sys.executable, "-m", "psp_sandbox.app", "settle", today],
        env=settling.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"settlement-{today}.csv" in done.stdout
    assert path.read_text() == from_api


def test_bad_dates_are_refused(settling: SandboxServer) -> None:
    """A malformed date is a 400."""
    import httpx

    response = httpx.post(
        settling.url + "/_sandbox/settlements/yesterday",
        headers={"Authorization": f"Bearer {settling.admin_token}"},
    )
    assert response.status_code == 400


def _sftp(server: SandboxServer, port: int) -> tuple[list[str], dict[str, bytes], str]:
    keys = server.state_dir / "sftp-keys"

    async def run() -> tuple[list[str], dict[str, bytes], str]:
        host_key = asyncssh.read_public_key(str(keys / "sftp_host_key.pub"))
        known = asyncssh.import_known_hosts(
            f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}"
        )
        async with (
            asyncssh.connect(
                "127.0.0.1",
                port,
                username="fincore",
                client_keys=[str(keys / "sftp_client_key")],
                known_hosts=known,
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            names = sorted(await sftp.listdir("."))
            contents: dict[str, bytes] = {}
            for name in names:
                if name.endswith(".csv"):
                    async with sftp.open(name, "rb") as handle:
                        contents[name] = await handle.read()
            refusal = ""
            try:
                async with sftp.open("planted.csv", "wb") as handle:
                    await handle.write(b"x")
            except asyncssh.SFTPError as exc:
                refusal = type(exc).__name__
            return names, contents, refusal

    return asyncio.run(run())


def test_the_daily_job_writes_yesterday_and_sftp_serves_it(settling: SandboxServer) -> None:
    """Once the UTC day is over, the background job writes its file; SFTP serves it read-only."""
    pi_id = _captured_and_refunded(settling, 2_000, 500)
    today = datetime.now(UTC).date()
    name = f"settlement-{today.isoformat()}.csv"
    path = settling.state_dir / "settlements" / name
    path.unlink(missing_ok=True)
    # Move the sandbox's business clock one day on: "today" becomes a finished day.
    settling.admin("POST", "/_sandbox/clock", {"advance_s": 86400})
    wait_until(path.exists)
    assert any(r["payment_intent"] == pi_id for r in _rows(path.read_text()))
    port = int(settling.env["FINCORE_SANDBOX_SFTP_PORT"])
    wait_for_port(port, timeout_s=10)
    names, contents, refusal = _sftp(settling, port)
    assert name in names
    assert contents[name] == path.read_bytes()
    assert refusal, "the SFTP server must refuse writes"
    assert not (settling.state_dir / "settlements" / "planted.csv").exists()
    later = (today + timedelta(days=1)).isoformat()
    assert not (settling.state_dir / "settlements" / f"settlement-{later}.csv").exists(), (
        "the day in progress is not settled by the job"
    )


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.csv"))


def test_listing_settlement_files(settling: SandboxServer) -> None:
    """The admin API lists the files the folder holds."""
    listed: Any = settling.admin("GET", "/_sandbox/settlements")["files"]
    assert listed == _files(settling.state_dir / "settlements")
