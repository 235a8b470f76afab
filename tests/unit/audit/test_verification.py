"""The chain walk names every kind of damage and the first bad sequence number."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.adapters.ed25519 import Ed25519FileSigner, Ed25519Verifier
from audit.adapters.memory import MemoryAuditSink
from audit.domain import Checkpoint, EventType, IssueKind, key_id_for
from audit.service import AuditLog, verify_stream
from tests.unit.audit import tamper
from tests.unit.audit.conftest import Chain


def kinds(report: object) -> set[IssueKind]:
    return {issue.kind for issue in report.issues}  # type: ignore[attr-defined]


def test_clean_chain_verifies(chain: Chain) -> None:
    """An untouched chain verifies with every checkpoint valid and nothing unsigned."""
    report = chain.verify()
    assert report.ok, report.issues
    assert (report.first_seq, report.last_seq, report.records) == (1, 41, 41)
    assert report.valid_checkpoints == report.checkpoints == 5
    assert report.last_checkpoint_seq == 41
    assert report.unsigned_tail == 0


def test_modified_record_is_named(chain: Chain) -> None:
    """Changing a record's content without its hash is a modified record at that seq."""
    report = chain.verify(tamper.modify(chain.lines, 15))
    assert kinds(report) == {IssueKind.MODIFIED_RECORD}
    assert report.first_bad_seq == 15


def test_modified_record_with_recomputed_hash_is_named(chain: Chain) -> None:
    """Recomputing the changed record's hash still breaks the next link: modified at that seq."""
    report = chain.verify(tamper.modify_rehashed(chain.lines, 15))
    assert IssueKind.MODIFIED_RECORD in kinds(report)
    assert report.first_bad_seq == 15


def test_deleted_record_is_named(chain: Chain) -> None:
    """A missing record is a deleted record at its seq."""
    report = chain.verify(tamper.delete(chain.lines, 15))
    assert kinds(report) == {IssueKind.DELETED_RECORD}
    assert report.first_bad_seq == 15


def test_deleted_run_of_records_is_named(chain: Chain) -> None:
    """Several consecutive deletions are one finding that names the range."""
    report = chain.verify(tamper.delete(chain.lines, 15, count=3))
    assert kinds(report) == {IssueKind.DELETED_RECORD}
    assert report.first_bad_seq == 15
    assert "15..17" in report.issues[0].message


def test_inserted_forgery_is_named(chain: Chain) -> None:
    """A well-made forgery linked to its predecessor is found as an inserted record."""
    report = chain.verify(tamper.insert(chain.lines, 14))
    assert kinds(report) == {IssueKind.INSERTED_RECORD}
    assert report.first_bad_seq == 15


def test_inserted_garbage_line_is_named(chain: Chain) -> None:
    """An unreadable line between two records is an inserted line, not a modification."""
    lines = list(chain.lines)
    lines.insert(tamper.index_of(lines, 14) + 1, b"not json at all\n")
    report = chain.verify(lines)
    assert kinds(report) == {IssueKind.INSERTED_RECORD}
    assert report.first_bad_seq == 15


def test_replayed_copy_is_named(chain: Chain) -> None:
    """A copy of an old record stored again later is inserted where it sits (after 25)."""
    lines = list(chain.lines)
    lines.insert(tamper.index_of(lines, 25) + 1, lines[tamper.index_of(lines, 12)])
    report = chain.verify(lines)
    assert kinds(report) == {IssueKind.INSERTED_RECORD}
    assert report.first_bad_seq == 26
    assert "claims seq 12" in report.issues[0].message


def test_reordered_records_are_named(chain: Chain) -> None:
    """Two records swapped are reported as reordered, and nothing else."""
    report = chain.verify(tamper.swap(chain.lines, 15))
    assert kinds(report) == {IssueKind.REORDERED_RECORDS}
    assert report.first_bad_seq == 15


def test_truncated_tail_is_found_through_the_last_checkpoint(chain: Chain) -> None:
    """Cutting the last records off is caught by the checkpoints that covered them."""
    report = chain.verify(tamper.truncate(chain.lines, 37))
    assert kinds(report) == {IssueKind.TRUNCATED_TAIL}
    assert report.first_bad_seq == 38


def test_torn_last_line_is_named(chain: Chain) -> None:
    """A partial last line after a crash is a torn tail, not a tampered record."""
    report = chain.verify(tamper.torn(chain.lines))
    assert kinds(report) == {IssueKind.TORN_TAIL}
    assert report.first_bad_seq == 42


def test_rewritten_chain_is_caught_by_the_signed_checkpoints(chain: Chain) -> None:
    """Recomputing every hash after a change leaves valid links but contradicts the signatures."""
    report = chain.verify(tamper.rewrite_from(chain.lines, 15))
    assert kinds(report) == {IssueKind.CHECKPOINT_MISMATCH}
    assert report.first_bad_seq == 11


def test_checkpoint_with_a_bad_signature_is_forged(chain: Chain) -> None:
    """A checkpoint whose signature does not verify is a forged checkpoint."""
    original = Checkpoint.from_line(chain.checkpoints[1])
    fake = Checkpoint(
        original.zone, original.stream, 25, original.hash, original.time, original.key_id
    ).signed(b"\x00" * 64)
    report = chain.verify(checkpoints=[*chain.checkpoints, fake.to_line()])
    assert kinds(report) == {IssueKind.FORGED_CHECKPOINT}
    assert report.first_bad_seq == 25


def test_checkpoint_signed_by_another_key_is_forged(chain: Chain) -> None:
    """A correctly signed checkpoint from a key the verifier does not trust is forged."""
    attacker = Ed25519PrivateKey.generate()
    key_id = key_id_for(attacker.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    line = chain.lines[tamper.index_of(chain.lines, 33)]
    unsigned = Checkpoint(
        "cde", "cde", 33, json.loads(line)["hash"], "2026-01-01T00:00:00.000Z", key_id
    )
    forged = unsigned.signed(attacker.sign(unsigned.signing_payload()))
    report = chain.verify(checkpoints=[*chain.checkpoints, forged.to_line()])
    assert kinds(report) == {IssueKind.FORGED_CHECKPOINT}
    assert "unknown key" in report.issues[0].message


def test_verification_can_start_from_a_signed_anchor(chain: Chain) -> None:
    """Records after a checkpoint verify from that checkpoint's (seq, hash) alone."""
    anchor_line = chain.lines[tamper.index_of(chain.lines, 20)]
    anchor = (20, json.loads(anchor_line)["hash"])
    rest = chain.lines[tamper.index_of(chain.lines, 21) :]
    assert chain.verify(rest, anchor=anchor).ok
    wrong = chain.verify(rest, anchor=(20, json.loads(chain.lines[0])["hash"]))
    assert not wrong.ok


def test_time_range_only_counts_records(chain: Chain) -> None:
    """A time range selects what is counted; the whole chain is still checked."""
    times = [json.loads(line)["time"] for line in chain.lines]
    report = chain.verify(time_from=times[10], time_to="9999-01-01T00:00:00.000Z")
    assert report.ok
    assert report.in_range == sum(t >= times[10] for t in times)
    broken = chain.verify(tamper.modify(chain.lines, 3), time_from=times[30])
    assert broken.first_bad_seq == 3


def test_several_kinds_of_damage_are_all_reported(chain: Chain) -> None:
    """One run names every change, in seq order, not just the first."""
    lines = tamper.delete(tamper.modify(chain.lines, 8), 30)
    report = chain.verify(lines)
    assert [(i.kind, i.seq) for i in report.issues] == [
        (IssueKind.MODIFIED_RECORD, 8),
        (IssueKind.DELETED_RECORD, 30),
    ]


def test_field_names_inside_values_do_not_confuse_the_walk(signer: Ed25519FileSigner) -> None:
    """Details holding `seq`, `prev_hash`, `zone` keys or look-alike text still verify exactly."""
    sink = MemoryAuditSink("cde")
    log = AuditLog(
        sink, signer, zone="cde", component="vault", checkpoint_seconds=0, lifecycle=False
    )
    for n in range(5):
        log.record(
            EventType.ADMIN_ACTION,
            actor="alice",
            outcome="success",
            target=',"zone":"cde"}',
            reason=',"seq":3,"stream":"cde","target":',
            details={"seq": 99, "prev_hash": "x" * 43, "zone": "noncde", "n": n},
        )
    log.close()
    verifier = Ed25519Verifier.from_pems([signer.public_key_pem()])
    lines = list(sink.read("cde"))
    assert verify_stream(lines, sink.checkpoints("cde"), verifier, "cde", "cde").ok
    broken = verify_stream(tamper.modify(lines, 3), sink.checkpoints("cde"), verifier, "cde", "cde")
    assert [(i.kind, i.seq) for i in broken.issues] == [(IssueKind.MODIFIED_RECORD, 3)]
