"""The vault's audit trail off the event loop: concurrent `arecord` calls are written together
(one append for the records that queued up), in order, each caller hearing its own outcome."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from audit.adapters.ed25519 import Ed25519FileSigner, Ed25519Verifier
from audit.adapters.files import FileAuditSink
from audit.config import DurabilityPolicy
from audit.domain import AuditUnavailable, CardDataInAuditDetails, EventType, Outcome
from audit.service import AuditLog, verify_stream
from cde.vault.adapters.audit import ThreadedAuditTrail


class CountingSink(FileAuditSink):
    """A file sink that counts its appends and can hold the first one until released."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.appends = 0
        self.gate = threading.Event()

    def append(self, build: Any) -> Any:
        self.appends += 1
        self.gate.wait(10)
        return super().append(build)


def _log(sink: FileAuditSink, signer: Ed25519FileSigner) -> AuditLog:
    return AuditLog(
        sink, signer, zone="cde", component="vault", checkpoint_every=1000, lifecycle=False
    )


def test_concurrent_records_share_appends_and_each_caller_gets_its_outcome(
    tmp_path: Path, signer: Ed25519FileSigner
) -> None:
    sink = CountingSink(tmp_path, "cde", DurabilityPolicy())
    log = _log(sink, signer)
    trail = ThreadedAuditTrail(log, owned=log)

    async def run() -> list[Any]:
        first = asyncio.ensure_future(
            trail.arecord(EventType.TOKENIZE, actor="ingress", outcome=Outcome.SUCCESS)
        )
        await asyncio.sleep(0.05)  # the first append is held open: the rest queue up behind it
        rest = [
            trail.arecord(
                EventType.TOKENIZE,
                actor="ingress",
                outcome=Outcome.SUCCESS,
                target=f"tok_{i}",
                details={"echo": "4111 1111 1111 1111"} if i == 7 else {"i": i},
            )
            for i in range(20)
        ]
        gathered = asyncio.gather(*rest, return_exceptions=True)
        await asyncio.sleep(0.05)
        sink.gate.set()
        return [await first, *(await gathered)]

    results = asyncio.run(run())
    trail.close()
    assert isinstance(results[8], CardDataInAuditDetails)
    good = [r for r in results if not isinstance(r, Exception)]
    assert len(good) == 20
    assert [r.seq for r in good] == list(range(2, 22))
    assert sink.appends <= 3  # the init+first record, then the queued ones together
    rows = [json.loads(line) for line in sink.read("cde")]
    assert [r.get("target") for r in rows[2:]] == [f"tok_{i}" for i in range(20) if i != 7]
    assert "4111" not in json.dumps(rows)
    verifier = Ed25519Verifier.from_pems([signer.public_key_pem()])
    report = verify_stream(sink.read("cde"), sink.checkpoints("cde"), verifier, "cde", "cde")
    assert report.ok, report.issues
    assert trail.available


def test_an_unavailable_sink_fails_every_waiting_caller(
    tmp_path: Path, signer: Ed25519FileSigner
) -> None:
    blocker = tmp_path / "audit"
    blocker.write_text("not a folder")
    log = _log(FileAuditSink(blocker, "cde", DurabilityPolicy()), signer)
    trail = ThreadedAuditTrail(log, owned=log)

    async def run() -> list[Any]:
        calls = [
            trail.arecord(EventType.DETOKENIZE, actor="gateway", outcome=Outcome.SUCCESS)
            for _ in range(10)
        ]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(run())
    assert all(isinstance(r, AuditUnavailable) for r in results)
    assert not trail.available
    blocker.unlink()
    trail.close()


@pytest.fixture
def signer(tmp_path: Path) -> Ed25519FileSigner:
    return Ed25519FileSigner.load(tmp_path / "keys" / "cde-checkpoint.key", create=True)
