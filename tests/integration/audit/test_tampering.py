"""The tampering matrix: every kind of change, on every sink that can be changed locally.

A 43-record log (checkpoints at 10, 20, 30, 40, 43) is written through `open_audit_log`, then
changed the way an attacker with write access would: by editing the file, or as a PostgreSQL
superuser with the append-only triggers disabled. `python -m audit verify` must name the
change and its first bad sequence number, and exit 1. An untouched log verifies (exit 0).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from audit.app import main
from audit.bootstrap import open_audit_log
from audit.domain import Checkpoint, EventType
from tests.integration.audit.conftest import AuditEnv
from tests.unit.audit import tamper

Lines = list[bytes]


def write_log(url: str | None = None) -> None:
    log = open_audit_log("cde", "vault", url=url)
    for n in range(40):
        log.record(
            EventType.DETOKENIZE,
            actor="gateway",
            outcome="success",
            target=f"tok_{n:04d}",
            details={"n": n},
        )
    log.close()


def verify_cli() -> tuple[int, dict[str, object]]:
    out = io.StringIO()
    code = main(["verify", "--zone", "cde", "--json"], out=out)
    return code, json.loads(out.getvalue())


class Target:
    """Where the log lives and how an attacker with local access changes it."""

    url: str | None = None

    def lines(self) -> Lines:
        raise NotImplementedError

    def replace(self, seq: int, line: bytes) -> None:
        raise NotImplementedError

    def delete(self, seq: int) -> None:
        raise NotImplementedError

    def insert_after(self, seq: int, line: bytes) -> None:
        raise NotImplementedError

    def swap(self, seq: int) -> None:
        raise NotImplementedError

    def truncate(self, keep_through: int) -> None:
        raise NotImplementedError

    def append_raw(self, data: bytes) -> None:
        raise NotImplementedError

    def add_checkpoint(self, line: bytes) -> None:
        raise NotImplementedError

    def checkpoint(self, index: int) -> Checkpoint:
        raise NotImplementedError


class FileTarget(Target):
    def __init__(self, env: AuditEnv) -> None:
        self.records = env.records_file()
        self.checkpoints = env.checkpoints_file()

    def lines(self) -> Lines:
        return self.records.read_bytes().splitlines(keepends=True)

    def _write(self, lines: Lines) -> None:
        self.records.write_bytes(b"".join(lines))

    def replace(self, seq: int, line: bytes) -> None:
        lines = self.lines()
        lines[tamper.index_of(lines, seq)] = line
        self._write(lines)

    def delete(self, seq: int) -> None:
        self._write(tamper.delete(self.lines(), seq))

    def insert_after(self, seq: int, line: bytes) -> None:
        lines = self.lines()
        lines.insert(tamper.index_of(lines, seq) + 1, line)
        self._write(lines)

    def swap(self, seq: int) -> None:
        self._write(tamper.swap(self.lines(), seq))

    def truncate(self, keep_through: int) -> None:
        self._write(tamper.truncate(self.lines(), keep_through))

    def append_raw(self, data: bytes) -> None:
        with self.records.open("ab") as handle:
            handle.write(data)

    def add_checkpoint(self, line: bytes) -> None:
        with self.checkpoints.open("ab") as handle:
            handle.write(line)

    def checkpoint(self, index: int) -> Checkpoint:
        return Checkpoint.from_line(self.checkpoints.read_bytes().splitlines()[index])


class PostgresTarget(Target):
    """A superuser who disables the append-only triggers, changes rows, and re-enables them."""

    def __init__(self, url: str) -> None:
        from audit.adapters.postgres import psycopg_dsn

        self.url = url
        self.dsn = psycopg_dsn(url)

    def _sql(self, *statements: tuple[str, tuple[object, ...]]) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=False) as conn:
            conn.execute("ALTER TABLE audit_record DISABLE TRIGGER USER")
            conn.execute("ALTER TABLE audit_checkpoint DISABLE TRIGGER USER")
            for sql, params in statements:
                conn.execute(sql, params)
            conn.execute("ALTER TABLE audit_record ENABLE TRIGGER USER")
            conn.execute("ALTER TABLE audit_checkpoint ENABLE TRIGGER USER")

    def lines(self) -> Lines:
        import psycopg

        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute("SELECT line FROM audit_record ORDER BY seq").fetchall()
        return [row[0].encode() + b"\n" for row in rows]

    def replace(self, seq: int, line: bytes) -> None:
        self._sql(
            ("UPDATE audit_record SET line = %s WHERE seq = %s", (line.decode().rstrip("\n"), seq))
        )

    def delete(self, seq: int) -> None:
        self._sql(("DELETE FROM audit_record WHERE seq = %s", (seq,)))

    def insert_after(self, seq: int, line: bytes) -> None:
        self._sql(
            ("UPDATE audit_record SET seq = seq + 1000000 WHERE seq > %s", (seq,)),
            ("UPDATE audit_record SET seq = seq - 999999 WHERE seq > 1000000", ()),
            (
                "INSERT INTO audit_record (stream, seq, line) VALUES ('cde', %s, %s)",
                (seq + 1, line.decode().rstrip("\n")),
            ),
        )

    def swap(self, seq: int) -> None:
        self._sql(
            ("UPDATE audit_record SET seq = -1 WHERE seq = %s", (seq,)),
            ("UPDATE audit_record SET seq = %s WHERE seq = %s", (seq, seq + 1)),
            ("UPDATE audit_record SET seq = %s WHERE seq = -1", (seq + 1,)),
        )

    def truncate(self, keep_through: int) -> None:
        self._sql(("DELETE FROM audit_record WHERE seq > %s", (keep_through,)))

    def add_checkpoint(self, line: bytes) -> None:
        self._sql(
            (
                "INSERT INTO audit_checkpoint (stream, line) VALUES ('cde', %s)",
                (line.decode().rstrip("\n"),),
            )
        )

    def checkpoint(self, index: int) -> Checkpoint:
        import psycopg

        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute("SELECT line FROM audit_checkpoint ORDER BY id").fetchall()
        return Checkpoint.from_line(rows[index][0].encode())


# ---------------------------------------------------------------- the changes


def modify(t: Target) -> None:
    t.replace(15, tamper.modify(t.lines(), 15)[tamper.index_of(t.lines(), 15)])


def modify_rehashed(t: Target) -> None:
    t.replace(15, tamper.modify_rehashed(t.lines(), 15)[tamper.index_of(t.lines(), 15)])


def delete(t: Target) -> None:
    t.delete(15)


def insert(t: Target) -> None:
    t.insert_after(14, tamper.forged_after(t.lines(), 14))


def reorder(t: Target) -> None:
    t.swap(15)


def truncate(t: Target) -> None:
    t.truncate(37)


def torn(t: Target) -> None:
    extra = tamper.forged_after(t.lines(), 43)
    t.append_raw(extra[: len(extra) // 2])


def forge_checkpoint(t: Target) -> None:
    real = t.checkpoint(1)
    fake = Checkpoint(real.zone, real.stream, 25, real.hash, real.time, real.key_id).signed(
        b"\x01" * 64
    )
    t.add_checkpoint(fake.to_line())


def rewrite(t: Target) -> None:
    before = t.lines()
    after = tamper.rewrite_from(before, 15)
    for seq in range(15, 44):
        t.replace(seq, after[tamper.index_of(after, seq)])


@dataclass(frozen=True)
class Case:
    change: Callable[[Target], None]
    kind: str
    first_bad: int


CASES = {
    "modified": Case(modify, "modified_record", 15),
    "modified-rehashed": Case(modify_rehashed, "modified_record", 15),
    "deleted": Case(delete, "deleted_record", 15),
    "inserted": Case(insert, "inserted_record", 15),
    "reordered": Case(reorder, "reordered_records", 15),
    "truncated-tail": Case(truncate, "truncated_tail", 38),
    "forged-checkpoint": Case(forge_checkpoint, "forged_checkpoint", 25),
    "rewritten-chain": Case(rewrite, "checkpoint_mismatch", 11),
}
FILE_ONLY = {"torn-tail": Case(torn, "torn_tail", 44)}


def check(case: Case) -> None:
    code, report = verify_cli()
    assert code == 1
    streams = report["streams"]
    assert isinstance(streams, list)
    kinds = {issue["kind"] for stream in streams for issue in stream["issues"]}
    assert case.kind in kinds, kinds
    assert report["first_bad"] == {"zone": "cde", "stream": "cde", "seq": case.first_bad}


def test_untouched_file_log_verifies(audit_env: AuditEnv) -> None:
    """The clean log written for the matrix verifies (exit 0), all checkpoints valid."""
    write_log()
    code, report = verify_cli()
    assert code == 0
    assert report["ok"] is True
    assert report["records"] == 43


@pytest.mark.parametrize("name", [*CASES, *FILE_ONLY])
def test_file_tampering_is_detected_and_named(audit_env: AuditEnv, name: str) -> None:
    """Each change to the JSON-lines file is named, with its first bad sequence number."""
    write_log()
    case = {**CASES, **FILE_ONLY}[name]
    case.change(FileTarget(audit_env))
    check(case)


@pytest.mark.postgres
def test_untouched_postgres_log_verifies(audit_env: AuditEnv, pg_audit_url: str) -> None:
    """The clean PostgreSQL log verifies (exit 0)."""
    write_log()
    code, report = verify_cli()
    assert code == 0
    assert report["records"] == 43


@pytest.mark.postgres
@pytest.mark.parametrize("name", list(CASES))
def test_postgres_tampering_is_detected_and_named(
    audit_env: AuditEnv, pg_audit_url: str, name: str
) -> None:
    """Each change a superuser makes with the triggers disabled is named, with its seq."""
    write_log()
    case = CASES[name]
    case.change(PostgresTarget(pg_audit_url))
    check(case)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_record SET line = line WHERE seq = 3",
        "DELETE FROM audit_record WHERE seq = 3",
        "TRUNCATE audit_record",
        "DELETE FROM audit_checkpoint",
    ],
)
def test_postgres_refuses_changes_to_stored_records(
    audit_env: AuditEnv, pg_audit_url: str, statement: str
) -> None:
    """With the triggers on, UPDATE, DELETE and TRUNCATE are refused even to the table owner."""
    import psycopg

    from audit.adapters.postgres import psycopg_dsn

    write_log()
    with (
        psycopg.connect(psycopg_dsn(pg_audit_url), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"),
    ):
        conn.execute(statement)
    assert verify_cli()[0] == 0
