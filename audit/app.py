"""audit (both zones): the auditor's CLI, `python -m audit` (or `fincore audit`).

Every command that reads a zone's log first opens that zone's writer and, before showing any
result, records the access in the same log (PCI DSS 10.2.1.3). If the access cannot be
recorded, nothing is shown (exit 2). `verify-bundle` reads only a bundle, never a live log.

Exit status: 0 clean, 1 something needs a person (a verification problem, a review finding),
2 the command could not run (bad arguments, configuration, audit log unavailable).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from audit.bootstrap import (
    AUDITOR_COMPONENT,
    DEFAULT_ZONES,
    export_evidence,
    known_services,
    open_audit_log,
    open_audit_reader,
    verify_evidence,
)
from audit.config import auditor_name
from audit.domain import (
    Actor,
    ActorType,
    AuditError,
    AuditRecord,
    EventType,
    Outcome,
    StreamReport,
    format_time,
    parse_time,
)
from audit.service import AuditLog, ReviewPolicy, SearchQuery, review_day
from audit.service.review import ATTENTION
from fincore.settings import SettingsError

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class Refused(Exception):
    """The command cannot run; the message says why (exit 2)."""


# ---------------------------------------------------------------- arguments


def _time(value: str, *, end_of_day: bool = False) -> str:
    """A CLI time: `YYYY-MM-DD` (UTC midnight; the next midnight for --to) or RFC 3339."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return format_time(moment + timedelta(days=1) if end_of_day else moment)
        return format_time(parse_time(value))
    except (ValueError, AuditError) as exc:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date (YYYY-MM-DD) or an RFC 3339 time with a zone"
        ) from exc


def _from(value: str) -> str:
    return _time(value)


def _to(value: str) -> str:
    return _time(value, end_of_day=True)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--zone",
        action="append",
        choices=DEFAULT_ZONES,
        help="zone(s) to read (repeatable; default: all)",
    )
    common.add_argument(
        "--actor", help="who is auditing (default: $FINCORE_AUDIT_ACTOR or the login name)"
    )
    parser = argparse.ArgumentParser(
        prog="python -m audit",
        description="FinCore audit logs: verify, search, review, export (every use is audited).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    verify = sub.add_parser("verify", parents=[common], help="verify the hash chains")
    verify.add_argument("--from", dest="time_from", type=_from, help="count records from")
    verify.add_argument("--to", dest="time_to", type=_to, help="count records before")
    verify.add_argument("--json", action="store_true", help="machine-readable report")

    search = sub.add_parser("search", parents=[common], help="find records")
    search.add_argument("--by", dest="by_actor", help="actor id (or on-behalf-of id)")
    search.add_argument(
        "--event-type", action="append", default=[], help="event type; `card.*` for a prefix"
    )
    search.add_argument("--outcome", choices=[o.value for o in Outcome])
    search.add_argument("--target", help="affected data id (token, merchant, key id...)")
    search.add_argument("--request-id")
    search.add_argument("--from", dest="time_from", type=_from)
    search.add_argument("--to", dest="time_to", type=_to)
    search.add_argument("--limit", type=int, default=1000)
    search.add_argument("--format", choices=("table", "json", "csv"), default="table")

    review = sub.add_parser("review", parents=[common], help="daily review (PCI DSS 10.4.1)")
    review.add_argument("--date", required=True, type=date.fromisoformat, help="YYYY-MM-DD (UTC)")
    review.add_argument("--baseline-days", type=int, default=7)
    review.add_argument(
        "--expected-detokenizer",
        action="append",
        help="service allowed to detokenize (repeatable; default: gateway)",
    )
    review.add_argument("--json", action="store_true")

    export = sub.add_parser("export", parents=[common], help="write an evidence bundle")
    export.add_argument("--from", dest="time_from", type=_from, required=True)
    export.add_argument("--to", dest="time_to", type=_to, required=True)
    export.add_argument("out", type=Path, help="new folder for the bundle")

    bundle = sub.add_parser("verify-bundle", help="verify an evidence bundle (offline)")
    bundle.add_argument("path", type=Path)
    bundle.add_argument(
        "--trust-key-id", action="append", default=[], help="accept only these key ids"
    )
    bundle.add_argument(
        "--public-key", action="append", type=Path, default=[], help="accept only these keys"
    )
    bundle.add_argument("--json", action="store_true")
    return parser


# ---------------------------------------------------------------- the audit trail of the CLI


class AccessRecorder:
    """Opens the writer of every zone read, so the access can be recorded before results show."""

    def __init__(self, zones: Sequence[str], actor: str, stack: ExitStack) -> None:
        self._actor = Actor(actor, ActorType.USER)
        self._logs: dict[str, AuditLog] = {}
        try:
            for zone in zones:
                log = open_audit_log(
                    zone,
                    AUDITOR_COMPONENT,
                    lifecycle=False,
                    create_signing_key=False,
                    require_signing_key=False,
                )
                stack.callback(log.close)
                self._logs[zone] = log
        except AuditError as exc:
            raise Refused(f"cannot record this access in the {zone} audit log ({exc})") from exc

    def record(
        self,
        event_type: EventType,
        outcome: Outcome,
        details: dict[str, Any],
        target: str | None = None,
    ) -> None:
        for zone, log in self._logs.items():
            try:
                log.record(
                    event_type,
                    actor=self._actor,
                    outcome=outcome,
                    target=target,
                    resource=f"audit:{zone}",
                    details=details,
                )
            except AuditError as exc:
                raise Refused(f"cannot record this access in the {zone} audit log ({exc})") from exc


# ---------------------------------------------------------------- commands


def _stream_line(report: StreamReport, ranged: bool) -> str:
    span = f"{report.first_seq}..{report.last_seq}" if report.first_seq else "-"
    in_range = f", {report.in_range} in range" if ranged else ""
    unsigned = f", {report.unsigned_tail} after it" if report.unsigned_tail else ""
    status = "OK" if report.ok else "FAILED"
    return (
        f"  {report.zone}/{report.stream}: records {span} ({report.records}{in_range}); "
        f"checkpoints {report.valid_checkpoints}/{report.checkpoints} valid, last at "
        f"{report.last_checkpoint_seq}{unsigned}  {status}"
    )


def _print_streams(reports: Sequence[StreamReport], out: TextIO, *, ranged: bool) -> None:
    for report in reports:
        print(_stream_line(report, ranged), file=out)
        for issue in sorted(report.issues, key=lambda i: (i.seq or 0, i.kind.value)):
            where = f" at seq {issue.seq}" if issue.seq is not None else ""
            print(f"    - {issue.kind.value}{where}: {issue.message}", file=out)


def cmd_verify(args: argparse.Namespace, zones: list[str], actor: str, out: TextIO) -> int:
    with ExitStack() as stack:
        recorder = AccessRecorder(zones, actor, stack)
        reader = open_audit_reader(zones)
        stack.callback(reader.close)
        report = reader.verify(zones, time_from=args.time_from, time_to=args.time_to)
        first = report.first_bad
        recorder.record(
            EventType.AUDIT_LOG_VERIFY,
            Outcome.SUCCESS if report.ok else Outcome.FAILURE,
            {
                "from": args.time_from,
                "to": args.time_to,
                "records": report.records,
                "issues": len(report.issues),
                "first_bad_seq": first[2] if first else None,
            },
        )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2), file=out)
    else:
        window = ""
        if args.time_from or args.time_to:
            window = f", counting {args.time_from or '-'} .. {args.time_to or '-'}"
        print(
            f"Audit log verification: {len(zones)} zone(s), {len(report.streams)} stream(s)"
            f"{window}",
            file=out,
        )
        _print_streams(report.streams, out, ranged=bool(window))
        for zone in zones:
            if not any(s.zone == zone for s in report.streams):
                print(f"  {zone}: no records yet", file=out)
        if report.ok:
            print(
                f"Result: OK, {report.records} records: every record matches its hash, links to "
                "the one before it and agrees with the signed checkpoints.",
                file=out,
            )
        else:
            assert first is not None
            print(
                f"Result: FAILED, first bad record: {first[0]}/{first[1]} seq {first[2]}", file=out
            )
    return EXIT_OK if report.ok else EXIT_FINDINGS


_COLUMNS = (
    "time",
    "zone",
    "seq",
    "event_type",
    "outcome",
    "actor",
    "target",
    "request_id",
)


def _row(record: AuditRecord) -> dict[str, str]:
    actor = record.actor.id + (
        f" (for {record.actor.on_behalf_of})" if record.actor.on_behalf_of else ""
    )
    return {
        "time": record.time,
        "zone": record.zone,
        "seq": str(record.seq),
        "event_type": record.event_type,
        "outcome": record.outcome,
        "actor": actor,
        "target": record.target or "",
        "request_id": record.request_id or "",
    }


def _csv(records: Sequence[AuditRecord]) -> str:
    buffer = io.StringIO()
    fields = [
        "time", "zone", "stream", "seq", "event_type", "outcome", "reason", "actor_id",
        "actor_type", "on_behalf_of", "target", "resource", "component", "origin_ip",
        "origin_service", "origin_host", "origin_pid", "request_id", "details", "hash",
    ]  # fmt: skip
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow(
            {
                "time": r.time,
                "zone": r.zone,
                "stream": r.stream,
                "seq": r.seq,
                "event_type": r.event_type,
                "outcome": r.outcome,
                "reason": r.reason or "",
                "actor_id": r.actor.id,
                "actor_type": r.actor.type,
                "on_behalf_of": r.actor.on_behalf_of or "",
                "target": r.target or "",
                "resource": r.resource or "",
                "component": r.component,
                "origin_ip": r.origin.ip or "",
                "origin_service": r.origin.service,
                "origin_host": r.origin.host,
                "origin_pid": r.origin.pid,
                "request_id": r.request_id or "",
                "details": json.dumps(r.details, sort_keys=True),
                "hash": r.hash,
            }
        )
    return buffer.getvalue()


def _table(records: Sequence[AuditRecord]) -> str:
    rows = [_row(r) for r in records]
    widths = {c: max([len(c), *(len(row[c]) for row in rows)]) for c in _COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in _COLUMNS).rstrip()]
    lines.extend("  ".join(row[c].ljust(widths[c]) for c in _COLUMNS).rstrip() for row in rows)
    return "\n".join(lines)


def cmd_search(args: argparse.Namespace, zones: list[str], actor: str, out: TextIO) -> int:
    query = SearchQuery(
        actor=args.by_actor,
        event_types=tuple(args.event_type),
        outcome=args.outcome,
        target=args.target,
        zones=tuple(zones),
        time_from=args.time_from,
        time_to=args.time_to,
        request_id=args.request_id,
        limit=args.limit,
    )
    with ExitStack() as stack:
        recorder = AccessRecorder(zones, actor, stack)
        reader = open_audit_reader(zones)
        stack.callback(reader.close)
        found = reader.search(query)
        recorder.record(
            EventType.AUDIT_LOG_SEARCH,
            Outcome.SUCCESS,
            {"query": query.to_dict(), "results": len(found), "format": args.format},
        )
    if args.format == "json":
        print(json.dumps([r.to_dict() for r in found], indent=2), file=out)
    elif args.format == "csv":
        out.write(_csv(found))
    else:
        print(_table(found), file=out)
        print(f"{len(found)} record(s)", file=out)
    return EXIT_OK


def cmd_review(args: argparse.Namespace, zones: list[str], actor: str, out: TextIO) -> int:
    policy = ReviewPolicy(
        baseline_days=args.baseline_days,
        known_services=known_services(),
        expected_detokenizers=frozenset(args.expected_detokenizer or ["gateway"]),
    )
    with ExitStack() as stack:
        recorder = AccessRecorder(zones, actor, stack)
        reader = open_audit_reader(zones)
        stack.callback(reader.close)
        report = review_day(reader, args.date, policy, zones)
        attention = sum(f.severity == ATTENTION for f in report.findings)
        # PCI_CHECKLIST F6: an alarm fires when `log_review.completed` is older than 26 h.
        recorder.record(
            EventType.LOG_REVIEW_COMPLETED,
            Outcome.SUCCESS,
            {
                "day": report.day,
                "records": report.records,
                "verified": report.verified,
                "findings": len(report.findings),
                "attention": attention,
            },
            target=report.day,
        )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2), file=out)
    else:
        print(
            f"Daily log review (PCI DSS 10.4.1) of {report.day} (UTC), zones "
            f"{', '.join(report.zones)}: {report.records} records, chain "
            f"{'verified' if report.verified else 'NOT verified'}",
            file=out,
        )
        for finding in report.findings:
            refs = f"  [{', '.join(finding.records[:3])}]" if finding.records else ""
            label = "ATTENTION" if finding.severity == ATTENTION else "info"
            print(f"  {label:<9} {finding.check:<22} {finding.message}{refs}", file=out)
        if report.needs_attention:
            print(f"Result: {attention} finding(s) need a person.", file=out)
        else:
            print("Result: nothing needs a person.", file=out)
    return EXIT_FINDINGS if report.needs_attention else EXIT_OK


def cmd_export(args: argparse.Namespace, zones: list[str], actor: str, out: TextIO) -> int:
    if args.time_from >= args.time_to:
        raise Refused("--from must be before --to")
    with ExitStack() as stack:
        recorder = AccessRecorder(zones, actor, stack)
        reader = open_audit_reader(zones)
        stack.callback(reader.close)
        result = export_evidence(
            reader,
            args.out,
            time_from=args.time_from,
            time_to=args.time_to,
            zones=zones,
            exported_by=actor,
        )
        try:
            recorder.record(
                EventType.AUDIT_LOG_EXPORT,
                Outcome.SUCCESS,
                {
                    "from": args.time_from,
                    "to": args.time_to,
                    "bundle": str(args.out),
                    "manifest_sha256": result.manifest_sha256,
                    "records": result.records,
                },
            )
        except Refused:
            # The export could not be recorded: it must not leave the building (10.2.1.3).
            shutil.rmtree(args.out, ignore_errors=True)
            raise
    print(f"Evidence bundle written to {result.location}", file=out)
    print(f"  manifest.json SHA-256: {result.manifest_sha256}", file=out)
    for entry in result.streams:
        anchor = entry["anchor"]["seq"]
        start = f"signed checkpoint at seq {anchor}" if anchor else "the start of the log"
        print(
            f"  {entry['zone']}/{entry['stream']}: {entry['records_in_range']} record(s) in range, "
            f"{entry['records']} in the bundle (anchored at {start})",
            file=out,
        )
    print(f"Verify it anywhere with: python -m audit verify-bundle {result.location}", file=out)
    return EXIT_OK


def cmd_verify_bundle(args: argparse.Namespace, out: TextIO) -> int:
    report = verify_evidence(
        args.path,
        trusted_key_ids=set(args.trust_key_id) or None,
        public_key_files=args.public_key,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2), file=out)
    else:
        print(
            f"Evidence bundle {report.location}: {report.time_from} .. {report.time_to}", file=out
        )
        keys = "; ".join(
            f"{z}: {', '.join(ids) or 'none'}" for z, ids in sorted(report.key_ids.items())
        )
        print(f"  trusted key ids: {keys or 'none'}", file=out)
        for problem in report.manifest_problems:
            print(f"  - manifest: {problem}", file=out)
        _print_streams(report.streams, out, ranged=True)
        print(f"Result: {'OK' if report.ok else 'FAILED'}", file=out)
    return EXIT_OK if report.ok else EXIT_FINDINGS


Command = Callable[[argparse.Namespace, list[str], str, TextIO], int]
COMMANDS: dict[str, Command] = {
    "verify": cmd_verify,
    "search": cmd_search,
    "review": cmd_review,
    "export": cmd_export,
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        if args.command == "verify-bundle":
            return cmd_verify_bundle(args, stream)
        zones = list(dict.fromkeys(args.zone or DEFAULT_ZONES))
        actor = args.actor or auditor_name()
        return COMMANDS[args.command](args, zones, actor, stream)
    except (Refused, AuditError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # The reader went away (`... | head`): the access was recorded, the rest is not ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
