"""noncde.workers adapters, local files: a settlement folder (the local-run default), the
reconciliation reports, the log + file alert sink, and a JSON file of webhook endpoints (for
runs without the API).

Files are written to a temporary name and renamed (a reader never sees half a report), in
folders only the service account can read (0700 / 0600).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from datetime import date
from pathlib import Path
from typing import Any

from fincore.logs import get_logger
from noncde.workers.adapters.http import endpoint_from_json
from noncde.workers.domain.reconciliation import (
    MAX_FILE_BYTES,
    Alert,
    Report,
    SettlementUnavailable,
)
from noncde.workers.domain.webhooks import DirectoryUnavailable, Endpoint

FILE_NAME = "settlement-{day}.csv"


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class FolderSettlementSource:
    """`SettlementSource` on a local folder (the sandbox's `settlements/` in local runs)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def describe(self) -> str:
        return f"file://{self.folder}"

    def fetch(self, day: date) -> bytes | None:
        path = self.folder / FILE_NAME.format(day=day.isoformat())
        try:
            with path.open("rb") as handle:
                return handle.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SettlementUnavailable(f"{path} unreadable ({type(exc).__name__})") from None


class FileReportStore:
    """`ReportStore` under a folder: `<YYYY-MM-DD>/report.json`, `findings.csv`,
    `summary.txt`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def write(self, report: Report) -> str:
        where = self.folder / report.day.isoformat()
        body = json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"
        write_atomic(where / "findings.csv", report.findings_csv().encode())
        write_atomic(where / "summary.txt", report.summary().encode())
        write_atomic(where / "report.json", body.encode())
        return str(where)

    def read(self, day: date) -> dict[str, Any] | None:
        try:
            found = json.loads((self.folder / day.isoformat() / "report.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def days(self) -> list[date]:
        if not self.folder.is_dir():
            return []
        found = []
        for child in self.folder.iterdir():
            try:
                found.append(date.fromisoformat(child.name))
            except ValueError:
                continue
        return sorted(found)


class FileAlertSink:
    """Alerts to the log (warning) and a JSON-lines file; a fingerprint alerts once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.log = get_logger("workers.alerts")

    def seen(self, fingerprint: str) -> bool:
        try:
            with self.path.open(encoding="utf-8") as handle:
                for line in handle:
                    with contextlib.suppress(ValueError):
                        if json.loads(line).get("fingerprint") == fingerprint:
                            return True
        except FileNotFoundError:
            return False
        return False

    def raise_alert(self, alert: Alert) -> bool:
        with self._lock:
            if self.seen(alert.fingerprint):
                return False
            self.log.warning("reconciliation alert", **alert.to_dict())
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (json.dumps(alert.to_dict(), sort_keys=True) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        return True


class FileEndpointDirectory:
    """`EndpointDirectory` from a JSON file (`{"data": [{id, merchant_id, url,
    enabled_events, secret}]}`), re-read when it changes: for runs without the API. The file
    holds signing secrets: it must be 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: float | None = None
        self._endpoints: dict[str, Endpoint] = {}
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Endpoint]:
        with self._lock:
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                return {}
            if stat.st_mode & 0o077:
                raise DirectoryUnavailable(f"{self.path} holds secrets and must be mode 0600")
            if self._stamp != stat.st_mtime:
                try:
                    rows = json.loads(self.path.read_text()).get("data", [])
                except (ValueError, AttributeError):
                    raise DirectoryUnavailable(f"{self.path} is not valid JSON") from None
                self._endpoints = {
                    e.id: e for e in (endpoint_from_json(r) for r in rows) if e is not None
                }
                self._stamp = stat.st_mtime
            return self._endpoints

    def endpoints(self, merchant_id: str) -> list[Endpoint]:
        return [e for e in self._load().values() if e.merchant_id == merchant_id]

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        return self._load().get(endpoint_id)
