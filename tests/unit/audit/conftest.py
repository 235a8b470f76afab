"""Fixtures for the audit unit tests: an in-memory chain with real Ed25519 checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from audit.adapters.ed25519 import Ed25519FileSigner, Ed25519Verifier
from audit.adapters.memory import MemoryAuditSink
from audit.domain import EventType, Outcome, StreamReport
from audit.service import AuditLog, verify_stream


@dataclass
class Chain:
    """A finished 41-record chain (checkpoints at 10, 20, 30, 40, 41) and its verifier."""

    lines: list[bytes]
    checkpoints: list[bytes]
    signer: Ed25519FileSigner
    verifier: Ed25519Verifier

    def verify(
        self,
        lines: list[bytes] | None = None,
        checkpoints: list[bytes] | None = None,
        **kwargs: object,
    ) -> StreamReport:
        return verify_stream(
            self.lines if lines is None else lines,
            self.checkpoints if checkpoints is None else checkpoints,
            self.verifier,
            "cde",
            "cde",
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture
def signer(tmp_path: Path) -> Ed25519FileSigner:
    return Ed25519FileSigner.load(tmp_path / "keys" / "cde-checkpoint.key", create=True)


@pytest.fixture
def chain(signer: Ed25519FileSigner) -> Chain:
    sink = MemoryAuditSink("cde")
    log = AuditLog(
        sink,
        signer,
        zone="cde",
        component="vault",
        checkpoint_every=10,
        checkpoint_seconds=0,
        lifecycle=False,
    )
    for n in range(40):
        log.record(
            EventType.DETOKENIZE if n % 3 else EventType.TOKENIZE,
            actor="gateway",
            outcome=Outcome.SUCCESS,
            target=f"tok_{n:04d}",
            request_id=f"req_{n}",
            details={"n": n},
        )
    log.close()
    verifier = Ed25519Verifier.from_pems([signer.public_key_pem()])
    return Chain(list(sink.read("cde")), sink.checkpoints("cde"), signer, verifier)
