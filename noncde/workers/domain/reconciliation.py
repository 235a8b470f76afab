"""noncde.workers (non-CDE): reconciliation of the PSP's daily settlement file against the
ledger; pure, no I/O.

Each settlement line (a capture or a refund at the PSP) is matched to the ledger by PSP
reference: the PaymentIntent id of a charge (`charge.captured.psp_reference`), the PSP's refund
id of a refund (`refund.succeeded.psp_reference`). Outcomes: matched; missing in the ledger;
missing at the PSP (a ledger capture/refund of the day absent from the file and from the
neighbouring days' files that exist); amount mismatch; currency mismatch; duplicate (a
reference or balance transaction twice in the file, or a reference captured twice in the
ledger); malformed (a line that cannot be read). Fees of lines whose reference resolves to a
merchant are posted to the ledger. The report holds no clock reading, so a re-run for the same
day writes the same report.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from fincore.cards import find_card_numbers

HEADER = (
    "psp_reference",
    "type",
    "amount",
    "fee",
    "net",
    "currency",
    "date",
    "payment_intent",
    "balance_transaction",
    "reference",
)
REQUIRED = ("psp_reference", "type", "amount", "fee", "net", "currency")
MAX_FILE_BYTES = 64 * 1024 * 1024


class SettlementUnavailable(Exception):
    """The settlement source could not be reached, or refused us (e.g. an unknown host key)."""


class SettlementFormatError(ValueError):
    """The file is not a settlement file at all (no header, too big, not text)."""


class FindingKind(StrEnum):
    MISSING_IN_LEDGER = "missing_in_ledger"
    MISSING_AT_PSP = "missing_at_psp"
    AMOUNT_MISMATCH = "amount_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    DUPLICATE = "duplicate"
    MALFORMED = "malformed"


class LineType(StrEnum):
    CHARGE = "charge"
    REFUND = "refund"


@dataclass(frozen=True, slots=True)
class SettlementLine:
    """One row of the settlement CSV (amounts signed minor units: refunds are negative)."""

    line: int
    psp_reference: str
    type: LineType
    amount: int
    fee: int
    net: int
    currency: str
    date: str
    payment_intent: str
    balance_transaction: str
    reference: str


@dataclass(frozen=True, slots=True)
class LedgerItem:
    """A capture or refund as the ledger holds it for one PSP reference (net of reversals)."""

    kind: LineType
    psp_reference: str
    amount: int
    currency: str
    merchant_id: str | None
    charge_id: str | None
    refund_id: str | None
    transactions: tuple[int, ...]
    posted_at: datetime


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    psp_reference: str
    type: str | None = None
    settlement_amount: int | None = None
    ledger_amount: int | None = None
    settlement_currency: str | None = None
    ledger_currency: str | None = None
    lines: tuple[int, ...] = ()
    ledger_transactions: tuple[int, ...] = ()
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = str(self.kind)
        data["lines"] = list(self.lines)
        data["ledger_transactions"] = list(self.ledger_transactions)
        return data


@dataclass(frozen=True, slots=True)
class FeeLine:
    """A fee to post: from a settlement line whose reference the ledger knows."""

    settlement_date: str
    balance_transaction: str
    psp_reference: str
    merchant_id: str
    amount: int
    currency: str
    charge_id: str | None


@dataclass
class Report:
    day: date
    source: str
    lines: int = 0
    matched: int = 0
    findings: list[Finding] = field(default_factory=list)
    fees: list[FeeLine] = field(default_factory=list)
    timing: list[str] = field(default_factory=list)
    file_totals: dict[str, dict[str, int]] = field(default_factory=dict)
    file_found: bool = True

    @property
    def clean(self) -> bool:
        """No findings. A day without a file is clean only if the ledger has nothing for it
        either (its captures would be findings: missing at the PSP)."""
        return not self.findings

    def counts(self) -> dict[str, int]:
        counts = {str(kind): 0 for kind in FindingKind}
        for finding in self.findings:
            counts[str(finding.kind)] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "source": self.source,
            "file_found": self.file_found,
            "lines": self.lines,
            "matched": self.matched,
            "clean": self.clean,
            "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
            "fees": [asdict(f) for f in self.fees],
            "fees_total": _fee_totals(self.fees),
            "matched_on_adjacent_day": list(self.timing),
            "file_totals": self.file_totals,
        }

    def fingerprint(self) -> str:
        """Identifies the findings (not the run): an alert is raised once per distinct set."""
        body = json.dumps(
            {
                "day": self.day.isoformat(),
                "findings": [f.to_dict() for f in self.findings],
                "file_found": self.file_found,
            },
            sort_keys=True,
        )
        return hashlib.sha256(body.encode()).hexdigest()

    def findings_csv(self) -> str:
        out = io.StringIO()
        columns = [
            "kind",
            "psp_reference",
            "type",
            "settlement_amount",
            "ledger_amount",
            "settlement_currency",
            "ledger_currency",
            "lines",
            "ledger_transactions",
            "detail",
        ]
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for finding in self.findings:
            row = finding.to_dict()
            row["lines"] = " ".join(str(n) for n in finding.lines)
            row["ledger_transactions"] = " ".join(str(n) for n in finding.ledger_transactions)
            writer.writerow(["" if row[c] is None else row[c] for c in columns])
        return out.getvalue()

    def summary(self) -> str:
        counts = self.counts()
        lines = [f"Reconciliation of {self.day.isoformat()} ({self.source})"]
        if not self.file_found:
            lines.append("NO SETTLEMENT FILE for this day.")
        lines.append(f"  settlement lines: {self.lines}, matched: {self.matched}")
        for currency, totals in sorted(self.file_totals.items()):
            lines.append(
                f"  {currency}: gross {totals['amount']}, fees {totals['fee']}, "
                f"net {totals['net']} (minor units)"
            )
        for currency, total in _fee_totals(self.fees).items():
            lines.append(f"  fees posted to the ledger ({currency}): {total}")
        if self.timing:
            lines.append(f"  matched on an adjacent day's file: {len(self.timing)}")
        if self.clean:
            lines.append("  CLEAN: no findings.")
        else:
            lines.append(f"  FINDINGS: {len(self.findings)}")
            for kind, count in counts.items():
                if count:
                    lines.append(f"    {kind}: {count}")
            for finding in self.findings[:50]:
                lines.append(
                    f"    - {finding.kind} {finding.psp_reference}"
                    + (f" ({finding.detail})" if finding.detail else "")
                )
            if len(self.findings) > 50:
                lines.append(f"    … and {len(self.findings) - 50} more (see findings.csv)")
        return "\n".join(lines) + "\n"


def _fee_totals(fees: Iterable[FeeLine]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for fee in fees:
        totals[fee.currency] = totals.get(fee.currency, 0) + fee.amount
    return dict(sorted(totals.items()))


# ---------------------------------------------------------------- parsing


def parse_settlement(data: bytes) -> tuple[list[SettlementLine], list[Finding]]:
    """Read a settlement CSV; unreadable rows come back as `malformed` findings.

    Raises `SettlementFormatError` when the file is not a settlement file. A cell that looks
    like a card number is treated as malformed and never echoed (PCI DSS 3.3.1: a PSP file
    never carries PANs, and our reports must not either).
    """
    if len(data) > MAX_FILE_BYTES:
        raise SettlementFormatError("the settlement file is larger than 64 MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SettlementFormatError("the settlement file is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not set(REQUIRED) <= set(reader.fieldnames):
        raise SettlementFormatError("the settlement file lacks the expected header")
    lines: list[SettlementLine] = []
    problems: list[Finding] = []
    for number, row in enumerate(reader, start=2):
        if any(find_card_numbers(str(v)) for v in row.values() if v):
            problems.append(
                Finding(
                    FindingKind.MALFORMED,
                    "(withheld)",
                    lines=(number,),
                    detail="a cell looks like a card number; the line was not read",
                )
            )
            continue
        try:
            kind = LineType(str(row.get("type", "")).strip())
            line = SettlementLine(
                line=number,
                psp_reference=_cell(row, "psp_reference"),
                type=kind,
                amount=int(_cell(row, "amount")),
                fee=int(_cell(row, "fee")),
                net=int(_cell(row, "net")),
                currency=_cell(row, "currency").lower(),
                date=str(row.get("date") or "").strip(),
                payment_intent=str(row.get("payment_intent") or "").strip(),
                balance_transaction=str(row.get("balance_transaction") or "").strip(),
                reference=str(row.get("reference") or "").strip(),
            )
        except (ValueError, KeyError) as exc:
            reference = str(row.get("psp_reference") or "").strip()[:100] or "(none)"
            problems.append(
                Finding(
                    FindingKind.MALFORMED,
                    reference,
                    lines=(number,),
                    detail=f"unreadable line: {type(exc).__name__}",
                )
            )
            continue
        if line.net != line.amount - line.fee:
            problems.append(
                Finding(
                    FindingKind.MALFORMED,
                    line.psp_reference,
                    type=str(line.type),
                    lines=(number,),
                    detail="net is not amount - fee",
                )
            )
            continue
        lines.append(line)
    return lines, problems


def _cell(row: Mapping[str, Any], name: str) -> str:
    value = str(row.get(name) or "").strip()
    if not value:
        raise KeyError(name)
    return value[:100]


# ---------------------------------------------------------------- matching


def reconcile(
    day: date,
    source: str,
    lines: Sequence[SettlementLine],
    problems: Sequence[Finding],
    ledger_by_reference: Mapping[tuple[LineType, str], Sequence[LedgerItem]],
    ledger_of_day: Sequence[LedgerItem],
    adjacent_references: frozenset[str] = frozenset(),
) -> Report:
    """Match `lines` (the day's file) to the ledger.

    `ledger_by_reference`: every ledger item (any day) for the references in the file, by
    (kind, reference), net of reversals (an item reversed in full is absent). `ledger_of_day`:
    the ledger's captures and refunds posted during `day`. `adjacent_references`: the
    references in the previous and next days' files when those exist (timing tolerance).
    """
    report = Report(day=day, source=source, lines=len(lines) + len(problems))
    report.findings.extend(problems)
    seen_refs: dict[tuple[LineType, str], SettlementLine] = {}
    seen_txns: dict[str, SettlementLine] = {}
    for line in lines:
        totals = report.file_totals.setdefault(line.currency, {"amount": 0, "fee": 0, "net": 0})
        totals["amount"] += line.amount
        totals["fee"] += line.fee
        totals["net"] += line.net
        key = (line.type, line.psp_reference)
        first = seen_refs.get(key) or (
            seen_txns.get(line.balance_transaction) if line.balance_transaction else None
        )
        if first is not None:
            report.findings.append(
                Finding(
                    FindingKind.DUPLICATE,
                    line.psp_reference,
                    type=str(line.type),
                    settlement_amount=line.amount,
                    settlement_currency=line.currency,
                    lines=(first.line, line.line),
                    detail="the same PSP reference or balance transaction is in the file twice",
                )
            )
            continue
        seen_refs[key] = line
        if line.balance_transaction:
            seen_txns[line.balance_transaction] = line
        _match(line, ledger_by_reference.get(key, ()), report)
    in_file = {ref for _, ref in seen_refs}
    for item in ledger_of_day:
        if item.psp_reference in in_file:
            continue
        if item.psp_reference in adjacent_references:
            report.timing.append(item.psp_reference)
            continue
        report.findings.append(
            Finding(
                FindingKind.MISSING_AT_PSP,
                item.psp_reference,
                type=str(item.kind),
                ledger_amount=_signed(item),
                ledger_currency=item.currency,
                ledger_transactions=item.transactions,
                detail=f"in the ledger ({item.charge_id or item.refund_id}) but not settled",
            )
        )
    report.findings.sort(key=lambda f: (str(f.kind), f.psp_reference, f.lines))
    report.timing.sort()
    return report


def _signed(item: LedgerItem) -> int:
    """The ledger amount as the file signs it (refunds negative)."""
    return -item.amount if item.kind is LineType.REFUND else item.amount


def _match(line: SettlementLine, items: Sequence[LedgerItem], report: Report) -> None:
    if not items:
        report.findings.append(
            Finding(
                FindingKind.MISSING_IN_LEDGER,
                line.psp_reference,
                type=str(line.type),
                settlement_amount=line.amount,
                settlement_currency=line.currency,
                lines=(line.line,),
                detail=f"settled by the PSP ({line.balance_transaction}) but not in the ledger",
            )
        )
        return
    item = items[0]
    if item.merchant_id and line.fee:
        report.fees.append(
            FeeLine(
                settlement_date=report.day.isoformat(),
                balance_transaction=line.balance_transaction or f"line-{line.line}",
                psp_reference=line.psp_reference,
                merchant_id=item.merchant_id,
                amount=line.fee,
                currency=line.currency,
                charge_id=item.charge_id,
            )
        )
    if len(items) > 1:
        found = _against(
            line,
            FindingKind.DUPLICATE,
            items,
            "the ledger records this PSP reference more than once",
        )
    elif item.currency != line.currency:
        found = _against(line, FindingKind.CURRENCY_MISMATCH, items, "")
    elif _signed(item) != line.amount:
        found = _against(
            line, FindingKind.AMOUNT_MISMATCH, items, f"difference {line.amount - _signed(item)}"
        )
    else:
        found = None
    if found is not None:
        report.findings.append(found)
        return
    report.matched += 1


def _against(
    line: SettlementLine, kind: FindingKind, items: Sequence[LedgerItem], detail: str
) -> Finding:
    """A finding that sets a settlement line against the ledger's items for its reference."""
    return Finding(
        kind,
        line.psp_reference,
        type=str(line.type),
        settlement_amount=line.amount,
        ledger_amount=sum(_signed(i) for i in items),
        settlement_currency=line.currency,
        ledger_currency=items[0].currency,
        lines=(line.line,),
        ledger_transactions=tuple(t for i in items for t in i.transactions),
        detail=detail,
    )


@dataclass(frozen=True, slots=True)
class Alert:
    """Raised when a day does not reconcile (or has no file)."""

    day: str
    title: str
    counts: Mapping[str, int]
    report_path: str
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "title": self.title,
            "counts": dict(self.counts),
            "report": self.report_path,
            "fingerprint": self.fingerprint,
        }
