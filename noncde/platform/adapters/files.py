"""Non-CDE platform adapters, files: versioned risk rules in a JSON file (`file://<path>`).

`<path>` holds the active version (`{"version", "published_at", "rules"}`); every published
version is also kept as `<path>.versions/<n>.json`. A publish writes a temporary file, fsyncs
it and renames it over the old one, so readers see the old or the new file, never a part; a
lock file (`fcntl.flock`) serializes publishers. The hot-reload check is a `stat` of the file.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from noncde.platform.domain import (
    JSON,
    Clock,
    ConcurrencyConflict,
    InvalidArgument,
    RuleSet,
    from_micros,
    load_json,
    prepare_rules,
    to_micros,
)


def path_of(url: str) -> Path:
    """`file:///abs/rules.json` or `file://relative/rules.json` (relative to the working dir)."""
    parts = urlsplit(url)
    path = unquote(parts.netloc + parts.path)
    if not path:
        raise InvalidArgument("file URL needs a path: file:///path/to/rules.json")
    return Path(path)


class FileRulesStore:
    """RulesStore on a JSON file plus one file per published version."""

    def __init__(self, path: Path, clock: Clock = time.time) -> None:
        self.path = path
        self.versions = path.with_name(path.name + ".versions")
        self.clock = clock
        self._seen: tuple[int, int, int] | None = None
        self._cached = RuleSet.empty()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def active(self) -> RuleSet:
        seen = self._stat()
        if seen is None:
            return RuleSet.empty()
        if seen != self._seen:
            self._cached = _rule_set(self.path.read_text())
            self._seen = seen
        return self._cached

    def active_version(self) -> int:
        return self.active().version

    def get(self, version: int) -> RuleSet | None:
        try:
            return _rule_set((self.versions / f"{version}.json").read_text())
        except FileNotFoundError:
            return None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def publish(self, rules: Sequence[JSON], *, expected_version: int | None = None) -> RuleSet:
        text = prepare_rules(rules, expected_version)
        with self._locked():
            self._seen = None
            current = self.active().version
            if expected_version is not None and expected_version != current:
                raise ConcurrencyConflict("rules", expected_version, current)
            now = to_micros(self.clock())
            document = f'{{"published_at":{now},"rules":{text},"version":{current + 1}}}'
            self.versions.mkdir(exist_ok=True)
            _write_atomically(self.versions / f"{current + 1}.json", document)
            _write_atomically(self.path, document)
        return RuleSet(current + 1, tuple(load_json(text)), from_micros(now))


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _rule_set(text: str) -> RuleSet:
    raw = load_json(text)
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list):
        raise InvalidArgument("the rules file is not a FinCore rule set")
    return RuleSet(int(raw["version"]), tuple(raw["rules"]), from_micros(int(raw["published_at"])))
