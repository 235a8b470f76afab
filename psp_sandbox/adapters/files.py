"""PSP sandbox: daily settlement files as CSV in a folder (which the SFTP adapter serves).

Outside both zones. One file per UTC day, `settlement-YYYY-MM-DD.csv`, written to a temporary
name and renamed so that a reader (SFTP client) never sees half a file.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

from psp_sandbox.domain import SettlementRow


class CsvSettlementSink:
    """`SettlementSink` writing CSV files under one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @staticmethod
    def name(day: date) -> str:
        return f"settlement-{day.isoformat()}.csv"

    def write(self, day: date, rows: Sequence[SettlementRow]) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(SettlementRow.HEADER)
        for row in rows:
            writer.writerow(row.cells())
        name = self.name(day)
        temporary = self.folder / f".{name}.tmp"
        temporary.write_text(buffer.getvalue(), encoding="utf-8")
        os.replace(temporary, self.folder / name)
        return name

    def exists(self, day: date) -> bool:
        return (self.folder / self.name(day)).exists()

    def files(self) -> Iterator[str]:
        if self.folder.exists():
            yield from sorted(p.name for p in self.folder.glob("settlement-*.csv"))
