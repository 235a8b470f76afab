"""Shared tool (both zones): the PAN sweep, data discovery for card numbers and canary values.

Scans files and folders, SQLite, PostgreSQL and Redis for Luhn-valid card numbers (the single
detector in `fincore.cards`) and exact canary values, raw or encoded (JSON escapes, URL encoding,
base64, hex, UTF-16, and chains of them), and reports every finding masked, with its location.
PCI DSS 3.5.1 / 12.5.2 / A3.2.5 (checklist rows A1-A3): PAN must exist nowhere outside the CDE.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import contextlib
import functools
import gzip
import io
import itertools
import json
import multiprocessing
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

from fincore.cards import MAX_PAN_LENGTH, MIN_PAN_LENGTH, find_card_numbers, is_card_number
from fincore.cards import mask_pan as _mask_pan

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "Detector",
    "Finding",
    "SweepError",
    "SweepResult",
    "Sweeper",
    "main",
    "sweep",
    "sweep_bytes",
    "sweep_path",
    "sweep_postgres",
    "sweep_redis",
    "sweep_sqlite",
    "sweep_text",
]

# ---------------------------------------------------------------- limits

#: Decoding nests at most this deep (e.g. base64 > json-escape > url is depth 3).
DEFAULT_MAX_DEPTH = 3
MAX_DEPTH_LIMIT = 8
#: Files and big values are scanned in windows of this size, so memory stays flat.
CHUNK_SIZE = 8 << 20
#: Bytes of context kept on both sides of a window (a finding may start near its edge).
CONTEXT = 64 << 10
#: An encoded run (base64, hex, UTF-16) longer than this is decoded in overlapping windows.
MAX_SEGMENT = 1 << 20
SEGMENT_OVERLAP = 1024
#: Values from databases are scanned together in batches of about this many bytes.
BATCH_BYTES = 4 << 20
#: A gzip file stops being decompressed after this many bytes (a decompression bomb stays cheap).
MAX_GZIP_BYTES = 2 << 30
#: Folders at least this big are swept by several processes when jobs > 1.
PARALLEL_MIN_BYTES = 16 << 20
#: Shortest canary accepted: anything shorter would match everywhere.
MIN_CANARY_LENGTH = 3

# Shortest encoded forms that can hold a 13-digit PAN.
_B64_MIN = 16  # 13 bytes are 17.3 base64 characters
_HEX_MIN = 2 * MIN_PAN_LENGTH
# Big-endian text ends without its last NUL, so one unit less than the characters needed.
_U16_MIN = MIN_PAN_LENGTH - 1
#: Context scanned around each decoded escape: a PAN straddling an escape lies well within it.
_MARGIN = 64
#: At most this many alignment probes per encoded run (enough to see every alignment in use).
_PROBES = 64

# ---------------------------------------------------------------- byte patterns

# Runs of digits, spaces and dashes long enough to hold a PAN. A cheap superset (one character
# class, fast in `re`): `fincore.cards` then finds the card numbers in each run exactly.
_DIGIT_RUN = re.compile(rb"[0-9][0-9 \-]{%d,}" % (MIN_PAN_LENGTH - 1))
_ISSUER_FIRST = frozenset(b"234568")
_HEX_BYTES = frozenset(b"0123456789abcdefABCDEF")
_ALNUM = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_HEX_LETTERS = frozenset(b"abcdefABCDEF")
#: Digits glued to hex letters inside a hex token this long, with two or more letters (a sha256
#: digest, a trace id, `ch_ed52144240907447`), or inside a uuid, are part of that token, not a
#: card number: about one sha256 digest in ten holds a Luhn-valid run with an issuer prefix.
_HEX_TOKEN = 16
_UUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

# Characters whose escaped form can hide part of a PAN or of a nested encoding: digits, letters,
# separators, base64 symbols, and `%` and `\` for double encoding. Escapes of anything else
# (`\u003c`, `%3A`) cannot, so they are left alone and cost nothing.
_USEFUL = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz +-/=_%\\")

_B64_CHARS = rb"A-Za-z0-9+/_\-"
_HEXDASH_ONLY = re.compile(rb"[0-9a-fA-F\-]+=*")
_URLSAFE_TO_STD = bytes.maketrans(b"-_", b"+/")
# Alignment evidence in a base64 run. Three ASCII digits encode as one of these quads; and
# ASCII text (any bytes < 0x80: also UTF-16, JSON, hex) puts [A-Za-f] first and
# [A-HQ-Xg-nw-z0-3] second in every quad. Random bytes rarely show either, so they are not
# decoded at all.
_B64_DIGITS = rb"[MNO][DTjz][AEIMQUYcgk][w-z0-5]"
_B64_TEXT = rb"(?:[A-Za-f][A-HQ-Xg-nw-z0-3][A-Za-z0-9+/]{2}){5}"
# The same for hex: ASCII digits are 3x, ASCII text has 0-7 first.
_HEX_DIGITS = rb"(?:3[0-9]){3}"
_HEX_TEXT = rb"(?:[0-7][0-9a-fA-F]){10}"

_DIGITS = b"0123456789"
# Printable ASCII, whitespace and NUL (UTF-16 text is half NUL): "text-like" bytes.
_TEXTISH = bytes(range(0x20, 0x7F)) + b"\t\n\r\x00"
_UTF16_UNIT = rb"[\t\n\r\x20-\x7e]\x00"
_TEXT_BYTES = frozenset(b"\t\n\r" + bytes(range(0x20, 0x7F)))

# Separates database values scanned as one batch; no pattern above can match across it.
_CELL_SEPARATOR = b"\n\x01\n"

_Spans = list[tuple[int, int]]


# No lookbehind in the run patterns: a leftmost-first scan starts every match at the beginning
# of its run anyway, and a leading lookbehind makes `re` several times slower.
def _b64_run_pattern(minimum: int) -> re.Pattern[bytes]:
    return re.compile(rb"[%s]{%d,}={0,2}" % (_B64_CHARS, minimum))


def _hex_run_pattern(minimum: int) -> re.Pattern[bytes]:
    return re.compile(rb"[0-9a-fA-F]{%d,}" % minimum)


def _utf16_pattern(minimum: int) -> re.Pattern[bytes]:
    return re.compile(rb"(?:%s){%d,}" % (_UTF16_UNIT, minimum))


def _code_class(codes: Iterable[int]) -> bytes:
    """A regex for the two hex digits of any of `codes` (printable ASCII), in either case."""
    by_high: dict[int, set[int]] = {}
    for code in codes:
        if 0x20 <= code < 0x7F:
            by_high.setdefault(code >> 4, set()).add(code & 15)
    parts = []
    for high, lows in sorted(by_high.items()):
        chars = {f"{low:x}" for low in lows} | {f"{low:X}" for low in lows}
        parts.append(f"{high:x}[{''.join(sorted(chars))}]".encode())
    return b"(?:" + b"|".join(parts) + b")"


_B64_LONG = _b64_run_pattern(_B64_MIN)
_HEX_LONG = _hex_run_pattern(_HEX_MIN)
_U16_LONG = _utf16_pattern(_U16_MIN)
_U16_ANY = _utf16_pattern(1)
_B64_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-")
#: How far around a canary's encoded core its run is followed (longer runs are found anyway).
_CORE_REACH = 4096

# ---------------------------------------------------------------- results


class SweepError(Exception):
    """A target could not be swept (missing, unreadable, connection refused, driver missing)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One card number or canary found at rest. It never holds the clear value.

    `masked` is the PAN as first six / last four, or `canary#N` (N = the canary's position in
    the list given). `encoding` is the chain of decodings that exposed it, outermost first
    (`raw`, `base64`, `base64>json-escape`, ...). The location fields that apply to the store
    are set; every location text is itself masked.
    """

    kind: str  # "pan" | "canary"
    masked: str
    encoding: str
    store: str  # "file" | "sqlite" | "postgres" | "redis" | "bytes"
    target: str
    location: str
    path: str | None = None
    line: int | None = None
    offset: int | None = None
    schema: str | None = None
    table: str | None = None
    column: str | None = None
    row: str | None = None
    key: str | None = None
    part: str | None = None
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class SweepResult:
    """Findings, the targets that could not be swept, and what was covered."""

    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """1 on any finding (even if a target failed), else 2 when one failed, else 0."""
        if self.findings:
            return 1
        return 2 if self.errors else 0


# ---------------------------------------------------------------- the detector


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    kind: str
    value: str  # the PAN digits (never printed) or the canary index
    chain: tuple[str, ...]


class _Focus:
    """Where a nested scan must look: near the escapes just decoded (None: everywhere)."""

    __slots__ = ("spans", "starts", "windows")

    def __init__(self, spans: _Spans, size: int) -> None:
        self.spans = spans
        self.starts = [s for s, _ in spans]
        windows: _Spans = []
        for s, e in spans:
            low, high = max(0, s - _MARGIN), min(size, e + _MARGIN)
            if windows and low <= windows[-1][1]:
                windows[-1] = (windows[-1][0], high)
            else:
                windows.append((low, high))
        self.windows = windows

    def overlaps(self, s: int, e: int) -> bool:
        """True when [s, e) overlaps one of the (sorted, disjoint) decoded spans."""
        index = bisect.bisect_left(self.starts, e) - 1
        return index >= 0 and self.spans[index][1] > s


def _finditer(
    pattern: re.Pattern[bytes], data: bytes, focus: _Focus | None
) -> Iterator[re.Match[bytes]]:
    """Matches of `pattern` in `data`, or only those overlapping the focus."""
    if focus is None:
        return pattern.finditer(data)
    return _focused(pattern, data, focus)


def _focused(pattern: re.Pattern[bytes], data: bytes, focus: _Focus) -> Iterator[re.Match[bytes]]:
    for low, high in focus.windows:
        for match in pattern.finditer(data, low, high):
            if focus.overlaps(match.start(), match.end()):
                yield match


class _Evidence:
    """Signs of digits or text in an encoded run (so it is worth decoding), and where."""

    def __init__(self, *patterns: bytes) -> None:
        # Separate searches are several times faster in `re` than one alternation.
        self.quick = [re.compile(p) for p in patterns]
        # Zero-width, so every position is tried: gives the alignments in use.
        self.exact = re.compile(b"(?=" + b"|".join(patterns) + b")")


def _b64_body(run: bytes) -> tuple[bytes, str]:
    """The run without padding, in the standard alphabet, and its name."""
    body = run.rstrip(b"=")
    if b"-" in body or b"_" in body:
        return body.translate(_URLSAFE_TO_STD), "base64url"
    return body, "base64"


def _find_literals(
    data: bytes, literals: tuple[bytes, ...], focus: _Focus | None
) -> Iterator[tuple[int, int]]:
    """Every (start, end) of each literal in `data` (or near the focus), via bytes.find."""
    windows = focus.windows if focus is not None else [(0, len(data))]
    for literal in literals:
        for low, high in windows:
            at = data.find(literal, low, high)
            while at >= 0:
                if focus is None or focus.overlaps(at, at + len(literal)):
                    yield at, at + len(literal)
                at = data.find(literal, at + 1, high)


def _alignments(body: bytes, unit: int, pattern: re.Pattern[bytes]) -> set[int]:
    """The alignments (start offset modulo `unit`) at which `pattern` finds evidence."""
    found: set[int] = set()
    for count, match in enumerate(pattern.finditer(body)):
        found.add(match.start() % unit)
        if len(found) == unit or count >= _PROBES:
            break
    return found


_B64_EVIDENCE = _Evidence(_B64_DIGITS, _B64_TEXT)
_HEX_EVIDENCE = _Evidence(_HEX_DIGITS, _HEX_TEXT)


def _is_phone_number(data: bytes, s: int, e: int) -> bool:
    """True for an international phone number: `+` then at most 15 digits (E.164), the `+`
    starting a token ("+4917612345678"). A PAN glued to a word by `+` is still a PAN."""
    return (
        e - s <= 15
        and s > 0
        and data[s - 1] == 43  # "+"
        and (s < 2 or data[s - 2] not in _ALNUM)
    )


def _in_hex_token(data: bytes, s: int, e: int) -> bool:
    """True when the digits at [s, e) are part of a hex token (digest, hex id) or a uuid."""
    size = len(data)
    before = data[s - 1] if s > 0 else 0
    after = data[e] if e < size else 0
    if before == 45 or after == 45:  # "-": maybe inside a uuid
        low, high = max(0, s - 36), min(size, e + 36)
        for match in _UUID.finditer(data, low, high):
            if match.start() <= s and e <= match.end():
                return True
    if before not in _HEX_LETTERS and after not in _HEX_LETTERS:
        return False
    low = s
    while low > 0 and data[low - 1] in _HEX_BYTES and s - low < 64:
        low -= 1
    high = e
    while high < size and data[high] in _HEX_BYTES and high - e < 64:
        high += 1
    if high - low < _HEX_TOKEN:
        return False
    token = data[low:high]
    return len(token) - len(token.translate(None, _DIGITS)) <= len(token) - 2


class Detector:
    """Finds PANs and canaries in bytes, raw and through nested decodings (bounded depth).

    PANs: Luhn-valid 13-19 digit runs with an issuer prefix (`fincore.cards`), raw or grouped by
    single spaces or dashes. Not PANs: digits glued inside a hex token of 16+ characters with
    two or more hex letters (a digest, a `token_hex` id) or inside a uuid, and 13-15 digits
    right after a `+` that starts a token (an E.164 phone number).

    Canary rule: a canary matches exactly (case-sensitive) where it is a whole token,
    that is not directly preceded or followed by an ASCII letter or digit on a side where the
    canary itself begins or ends with a letter or digit (the regex `\\b` rule). So the CVC
    canary `7391` matches in `"cvc":"7391"` and `cvc=7391&` but not inside `1739120` or
    `a7391f`. A canary of 12 or more digits also matches grouped by single spaces or dashes.
    A canary given as bytes (a binary marker such as a ciphertext header) matches anywhere.
    Both are found in every encoding decoded: JSON escapes, URL encoding, base64 (standard and
    urlsafe), hex (either case), UTF-16 (LE/BE), nested up to `max_depth` decodings.
    """

    def __init__(
        self,
        canaries: Iterable[str | bytes] = (),
        *,
        allow: Iterable[str] = (),
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        given = list(canaries)
        self.canaries: tuple[bytes, ...] = tuple(
            c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in given
        )
        # Text canaries match as whole tokens; binary ones (bytes: a ciphertext header) anywhere.
        self._as_token = tuple(isinstance(c, str) for c in given)
        for index, canary in enumerate(self.canaries, 1):
            if len(canary) < MIN_CANARY_LENGTH:
                raise ValueError(
                    f"canary#{index} is shorter than {MIN_CANARY_LENGTH} bytes "
                    "and would match everywhere"
                )
        self.allow = frozenset(a for a in allow if a.isdigit())
        self.max_depth = max_depth
        useful = set(_USEFUL)
        for canary in self.canaries:
            useful.update(canary)
        codes = _code_class(useful - {0x20})
        # A decoded space matters between digits ("4242%204242"), or inside a canary; each
        # pattern starts with a literal so `re` scans fast.
        self._space_anywhere = any(b" " in canary for canary in self.canaries)
        before_digit = b"" if self._space_anywhere else rb"(?=[0-9%\\+])"
        # `\\u0034` too: JSON escaped again inside a JSON string. "\\\\*", not "\\+": a
        # literal first character keeps the scan fast.
        self._json_escapes = [
            re.compile(rb"\\\\*u00(%s)" % codes),
            re.compile(rb"\\\\*u0020%s" % before_digit),
            re.compile(rb"\\\\*/"),
        ]
        self._url_escapes = [
            re.compile(rb"%%(%s)" % codes),
            re.compile(rb"(?:%%20|\+)%s" % before_digit),
        ]
        # One pattern per canary: each starts with a literal, which `re` finds fast.
        self._canary_res: list[tuple[str, re.Pattern[bytes]]] = []
        # Literal cores, searched with bytes.find (a regex alternation of literals is slow).
        self._b64_core: tuple[bytes, ...] = ()
        self._hex_core: tuple[bytes, ...] = ()
        self._u16_core: tuple[bytes, ...] = ()
        if self.canaries:
            self._compile_canaries()

    # -------------------------------------------------------- canaries

    def _compile_canaries(self) -> None:
        b64_cores: set[bytes] = set()
        hex_cores: set[bytes] = set()
        u16_cores: set[bytes] = set()
        for index, canary in enumerate(self.canaries):
            pattern = _canary_regex(canary) if self._as_token[index] else re.escape(canary)
            self._canary_res.append((str(index), re.compile(pattern)))
            # Fixed substrings every encoding of the canary contains, whatever its alignment:
            # where one is present, the short encoded run around it is decoded too (a 4-digit
            # CVC in base64 is only 6-8 characters), at every alignment.
            for shift in range(3):
                encoded = base64.b64encode(b"\0" * shift + canary)
                core = encoded[-(-8 * shift // 6) : (8 * (shift + len(canary))) // 6]
                b64_cores.add(core)
                b64_cores.add(core.translate(bytes.maketrans(b"+/", b"-_")))
            hex_cores.add(canary.hex().encode("ascii"))
            hex_cores.add(canary.hex().upper().encode("ascii"))
            u16_cores.add(canary.decode("latin-1").encode("utf-16-le")[:-1])
        self._b64_core = tuple(sorted(b64_cores))
        self._hex_core = tuple(sorted(hex_cores))
        self._u16_core = tuple(sorted(u16_cores))

    def canary_label(self, value: str) -> str:
        return f"canary#{int(value) + 1}"

    # -------------------------------------------------------- scanning

    def scan(self, data: bytes) -> list[_Hit]:
        """Every finding in `data`, deduplicated, sorted by position."""
        return _dedupe(self._scan(data, 0, None))

    def _scan(self, data: bytes, depth: int, focus: _Focus | None) -> list[_Hit]:
        hits: list[_Hit] = []
        self._plain(data, focus, hits)
        if depth >= self.max_depth or len(data) < MIN_CANARY_LENGTH:
            return hits
        # Each pass runs only when a cheap test says its encoding may be present.
        if b"\\" in data:
            self._substitution(data, depth, focus, hits, "json-escape", self._json_escapes)
        if b"%" in data or b"+" in data:
            self._substitution(data, depth, focus, hits, "url", self._url_escapes)
        self._base64(data, depth, focus, hits)
        self._hex(data, depth, focus, hits)
        if b"\x00" in data:
            self._utf16(data, depth, focus, hits)
        return hits

    def _plain(self, data: bytes, focus: _Focus | None, hits: list[_Hit]) -> None:
        for match in _finditer(_DIGIT_RUN, data, focus):
            s = match.start()
            run = match.group().rstrip(b" -")
            e = s + len(run)
            if run.isdigit():
                # Fast path for an unbroken run (most numbers in logs): one check, no regex.
                if len(run) > MAX_PAN_LENGTH or run[0] not in _ISSUER_FIRST:
                    continue
                digits = run.decode("ascii")
                if (
                    is_card_number(digits)
                    and digits not in self.allow
                    and not _in_hex_token(data, s, e)
                    and not _is_phone_number(data, s, e)
                ):
                    hits.append(_Hit(s, e, "pan", digits, ()))
                continue
            if len(run) - run.count(b" ") - run.count(b"-") < MIN_PAN_LENGTH:
                continue
            for card in find_card_numbers(run.decode("ascii")):
                cs, ce = s + card.start, s + card.end
                if card.digits not in self.allow and not _in_hex_token(data, cs, ce):
                    hits.append(_Hit(cs, ce, "pan", card.digits, ()))
        for index, pattern in self._canary_res:
            for match in _finditer(pattern, data, focus):
                hits.append(_Hit(match.start(), match.end(), "canary", index, ()))

    def _substitution(
        self,
        data: bytes,
        depth: int,
        focus: _Focus | None,
        hits: list[_Hit],
        name: str,
        patterns: list[re.Pattern[bytes]],
    ) -> None:
        """Decode escapes in place, then scan only around what changed (no duplicate hits)."""
        found: list[tuple[int, int, bytes]] = []
        for pattern in patterns:
            for match in _finditer(pattern, data, focus):
                s, e = match.span()
                code = match.group(1) if pattern.groups else None
                if code:
                    found.append((s, e, bytes([int(code, 16)])))
                elif match.group().endswith(b"/"):
                    found.append((s, e, b"/"))
                elif self._space_anywhere or (s > 0 and data[s - 1] in _HEX_BYTES):
                    found.append((s, e, b" "))
        if not found:
            return
        found.sort()
        pieces: list[bytes] = []
        new_marks = [0]
        old_marks = [0]
        changed: _Spans = []
        last = 0
        position = 0
        for s, e, replacement in found:
            if s < last:
                continue
            pieces.append(data[last:s])
            position += s - last
            new_marks.append(position)
            old_marks.append(s)
            if changed and changed[-1][1] == position:
                changed[-1] = (changed[-1][0], position + len(replacement))
            else:
                changed.append((position, position + len(replacement)))
            pieces.append(replacement)
            position += len(replacement)
            new_marks.append(position)
            old_marks.append(e)
            last = e
        if not changed:
            return
        pieces.append(data[last:])
        decoded = b"".join(pieces)

        def back(p: int) -> int:
            i = bisect.bisect_right(new_marks, p) - 1
            return old_marks[i] + (p - new_marks[i])

        for hit in self._scan(decoded, depth + 1, _Focus(changed, len(decoded))):
            start = back(hit.start)
            end = max(start + 1, back(hit.end))
            hits.append(_Hit(start, end, hit.kind, hit.value, (name, *hit.chain)))

    def _segment(
        self,
        decoded: bytes,
        depth: int,
        hits: list[_Hit],
        name: str,
        to_outer: Callable[[int], int],
    ) -> None:
        if not self._worth(decoded):
            return
        for hit in self._scan(decoded, depth + 1, None):
            start = to_outer(hit.start)
            end = max(start + 1, to_outer(hit.end))
            hits.append(_Hit(start, end, hit.kind, hit.value, (name, *hit.chain)))

    def _worth(self, decoded: bytes) -> bool:
        """Cheap gate before a nested scan: enough digits, a canary, or text-like bytes."""
        if len(decoded) - len(decoded.translate(None, _DIGITS)) >= MIN_PAN_LENGTH:
            return True
        if any(canary in decoded for canary in self.canaries):
            return True
        # Mostly text: the decoded value may hold a further encoding (base64 of hex, JWT JSON).
        return len(decoded.translate(None, _TEXTISH)) * 8 <= len(decoded)

    def _core_runs(
        self,
        data: bytes,
        focus: _Focus | None,
        cores: tuple[bytes, ...],
        allowed: frozenset[int],
    ) -> Iterator[tuple[int, int]]:
        """The encoded runs (of `allowed` bytes) around each occurrence of a canary's core."""
        size = len(data)
        for low, high in _find_literals(data, cores, focus):
            floor, ceiling = max(0, low - _CORE_REACH), min(size, high + _CORE_REACH)
            while low > floor and data[low - 1] in allowed:
                low -= 1
            while high < ceiling and data[high] in allowed:
                high += 1
            yield low, high

    def _base64(self, data: bytes, depth: int, focus: _Focus | None, hits: list[_Hit]) -> None:
        hexdash = _HEXDASH_ONLY.fullmatch
        digits_seen = _B64_EVIDENCE.quick[0].search
        text_seen = _B64_EVIDENCE.quick[1].search
        done: dict[int, set[int]] = {}  # run start -> the alignments already decoded
        for match in _finditer(_B64_LONG, data, focus):
            run = match.group()
            # Hex digests, uuids and plain numbers are not base64 of text (base64 of ASCII
            # always has characters outside [0-9a-fA-F-]).
            if hexdash(run):
                continue
            body, name = _b64_body(run)
            if digits_seen(body) is None and text_seen(body) is None:
                continue  # random bytes (signatures, keys): nothing to decode
            alignments = _alignments(body, 4, _B64_EVIDENCE.exact)
            done[match.start()] = set(alignments)
            self._decode_b64(match.start(), run, body, name, alignments, depth, hits)
        # Short runs (a 4-digit CVC is 6-8 base64 characters) only where a canary's core is,
        # at every alignment.
        for low, high in self._core_runs(data, focus, self._b64_core, _B64_BYTES):
            padding = 0
            while high < len(data) and data[high] == 61 and padding < 2:  # "="
                high += 1
                padding += 1
            # A long run decoded above only at the alignments its digit or text evidence
            # pointed to: random bytes can show such evidence by chance at another alignment
            # than a binary canary's, so the canary's run gets the alignments not yet tried.
            remaining = {0, 1, 2, 3} - done.get(low, set())
            if remaining:
                run = data[low:high]
                body, name = _b64_body(run)
                self._decode_b64(low, run, body, name, remaining, depth, hits)

    def _decode_b64(
        self,
        s: int,
        run: bytes,
        body: bytes,
        name: str,
        alignments: set[int],
        depth: int,
        hits: list[_Hit],
    ) -> None:
        if len(run) != len(body):
            # A padded run ends where its encoding ends, so its alignment is known; an
            # unpadded one may carry a glued prefix ("/v1/", "id-").
            alignments &= {len(run) % 4}
        for base, window in _windows(len(body), MAX_SEGMENT, SEGMENT_OVERLAP, 4):
            for k in sorted(alignments):
                piece = body[base + k : base + window]
                rest = len(piece) % 4
                if rest == 1:
                    piece = piece[:-1]
                elif rest:
                    piece += b"=" * (4 - rest)
                if len(piece) < 4:
                    continue
                try:
                    decoded = binascii.a2b_base64(piece)
                except binascii.Error:
                    continue
                to_outer = functools.partial(_scale, s + base + k, 4, 3)
                self._segment(decoded, depth, hits, name, to_outer)

    def _hex(self, data: bytes, depth: int, focus: _Focus | None, hits: list[_Hit]) -> None:
        digits_seen = _HEX_EVIDENCE.quick[0].search
        text_seen = _HEX_EVIDENCE.quick[1].search
        runs: dict[int, tuple[bytes, set[int]]] = {}
        for match in _finditer(_HEX_LONG, data, focus):
            run = match.group()
            if digits_seen(run) is None and text_seen(run) is None:
                continue  # a digest or random id: nothing to decode
            runs[match.start()] = (run, _alignments(run, 2, _HEX_EVIDENCE.exact))
        for low, high in self._core_runs(data, focus, self._hex_core, _HEX_BYTES):
            runs[low] = (data[low:high], {0, 1})
        for s, (run, alignments) in runs.items():
            for base, window in _windows(len(run), MAX_SEGMENT, SEGMENT_OVERLAP, 2):
                for k in sorted(alignments):
                    piece = run[base + k : base + window]
                    piece = piece[: len(piece) & ~1]
                    if len(piece) < 2 * MIN_CANARY_LENGTH:
                        continue
                    decoded = binascii.a2b_hex(piece)
                    to_outer = functools.partial(_scale, s + base + k, 2, 1)
                    self._segment(decoded, depth, hits, "hex", to_outer)

    def _utf16(self, data: bytes, depth: int, focus: _Focus | None, hits: list[_Hit]) -> None:
        size = len(data)
        runs: dict[int, int] = {m.start(): m.end() for m in _finditer(_U16_LONG, data, focus)}
        for start, end in _find_literals(data, self._u16_core, focus):
            low, high = max(0, start - _CORE_REACH), min(size, end + _CORE_REACH)
            for match in _U16_ANY.finditer(data, low, high):
                if match.start() <= start < match.end():
                    runs[match.start()] = max(runs.get(match.start(), 0), match.end())
        for s, e in runs.items():
            # Big-endian text is the same alternation shifted by one byte: its NUL comes first,
            # so its last character is not followed by a NUL. Bytes alone cannot tell
            # `"` + BE("4242...") from LE("4242...") + `"`; taking every other byte from the
            # first character through that trailing one reads both correctly.
            big_endian = s > 0 and data[s - 1] == 0
            extended = e < size and data[e] != 0 and data[e] in _TEXT_BYTES
            stop = e + 1 if extended else e
            text = data[s:stop:2]
            for base, window in _windows(len(text), MAX_SEGMENT, SEGMENT_OVERLAP, 1):
                decoded = text[base : base + window]
                if not self._worth(decoded):
                    continue
                at_end = extended and base + window == len(text)
                for hit in self._scan(decoded, depth + 1, None):
                    # The last character belongs to big-endian text only.
                    be = big_endian or (at_end and hit.end == len(decoded))
                    name = "utf-16be" if be else "utf-16le"
                    start = s + 2 * (base + hit.start)
                    end = s + 2 * (base + hit.end)
                    hits.append(_Hit(start, end, hit.kind, hit.value, (name, *hit.chain)))


def _scale(origin: int, numerator: int, denominator: int, position: int) -> int:
    """Offset in the encoded text of `position` in the decoded bytes."""
    return origin + (numerator * position) // denominator


def _canary_regex(canary: bytes) -> bytes:
    """The canary as a whole token; the boundary check sits after the first literal (fast)."""
    first = re.escape(canary[:1])
    if canary.isdigit() and len(canary) >= 12:
        rest = b"".join(rb"[ \-]?" + re.escape(canary[i : i + 1]) for i in range(1, len(canary)))
    else:
        rest = re.escape(canary[1:])
    before = rb"(?<![A-Za-z0-9]%s)" % first if canary[:1].isalnum() else b""
    after = rb"(?![A-Za-z0-9])" if canary[-1:].isalnum() else b""
    return first + before + rest + after


def _windows(length: int, size: int, overlap: int, unit: int) -> Iterator[tuple[int, int]]:
    """(start, length) windows over `length` bytes, starts aligned to `unit`, overlapping."""
    if length <= size:
        yield 0, length
        return
    step = (size - overlap) // unit * unit
    start = 0
    while start < length:
        yield start, min(size, length - start)
        if start + size >= length:
            return
        start += step


def _dedupe(hits: list[_Hit]) -> list[_Hit]:
    """One hit per value and place: the shortest decoding chain wins, a canary beats a PAN."""
    if len(hits) < 2:
        return hits
    ordered = sorted(hits, key=lambda h: (h.kind, h.value, h.start, len(h.chain)))
    kept: list[_Hit] = []
    for hit in ordered:
        previous = kept[-1] if kept else None
        if (
            previous is not None
            and previous.kind == hit.kind
            and previous.value == hit.value
            and hit.start < previous.end
        ):
            if len(hit.chain) < len(previous.chain):
                kept[-1] = _Hit(
                    previous.start, max(previous.end, hit.end), hit.kind, hit.value, hit.chain
                )
            continue
        kept.append(hit)
    canaries = [(h.start, h.end) for h in kept if h.kind == "canary"]
    if canaries:
        # A PAN that is (part of) a canary is reported as the canary, once.
        kept = [
            h
            for h in kept
            if h.kind != "pan" or not any(s < h.end and h.start < e for s, e in canaries)
        ]
    kept.sort(key=lambda h: (h.start, h.kind))
    return kept


@functools.lru_cache(maxsize=16)
def _detector(
    canaries: tuple[str | bytes, ...], allow: tuple[str, ...], max_depth: int
) -> Detector:
    return Detector(canaries, allow=allow, max_depth=max_depth)


# ---------------------------------------------------------------- locations


@dataclass(frozen=True, slots=True)
class _Where:
    store: str
    target: str
    path: str | None = None
    schema: str | None = None
    table: str | None = None
    column: str | None = None
    row: str | None = None
    key: str | None = None
    part: str | None = None
    field: str | None = None
    lines: bool = False
    chain: tuple[str, ...] = ()


def _printable(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value


def _redact_url(url: str) -> str:
    """The URL with any password replaced (PCI DSS 8.3.2: credentials never in output)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = quote(parts.username or "", safe="")
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


# ---------------------------------------------------------------- the sweeper


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Sweeper:
    """Sweeps targets with one detector, collecting findings, errors and coverage counts."""

    def __init__(
        self,
        canaries: Iterable[str | bytes] = (),
        *,
        allow: Iterable[str] = (),
        max_depth: int = DEFAULT_MAX_DEPTH,
        exclude: Sequence[str] = (),
        batch_rows: int = 2000,
        jobs: int = 1,
    ) -> None:
        self.detector = _detector(tuple(canaries), tuple(allow), max_depth)
        self.exclude = tuple(exclude)
        self.batch_rows = batch_rows
        self.jobs = max(1, jobs)
        self.result = SweepResult(
            stats={"files": 0, "bytes": 0, "tables": 0, "rows": 0, "keys": 0, "values": 0}
        )

    @property
    def findings(self) -> list[Finding]:
        return self.result.findings

    # -------------------------------------------------------- dispatch

    def target(self, target: str) -> None:
        """Sweep one target: a path, `sqlite:///path`, `postgresql://...` or `redis://...`."""
        scheme = target.split("://", 1)[0].lower() if "://" in target else ""
        if scheme.startswith(("postgresql", "postgres")):
            self.postgres(target)
        elif scheme in {"redis", "rediss", "unix"}:
            self.redis(target)
        elif scheme.startswith("sqlite"):
            self.sqlite(_sqlite_path(target), display=target)
        elif scheme == "file":
            self.path(urlsplit(target).path)
        elif scheme:
            raise SweepError(f"unsupported target scheme {scheme!r}")
        else:
            self.path(target)

    # -------------------------------------------------------- findings

    def _emit(self, hit: _Hit, where: _Where, offset: int | None, line: int | None) -> None:
        if hit.kind == "pan":
            masked = _mask_pan(hit.value)
        else:
            masked = self.detector.canary_label(hit.value)
        chain = where.chain + hit.chain
        encoding = ">".join(chain) if chain else "raw"
        red = self.redact
        path = red(where.path) if where.path is not None else None
        key = red(where.key) if where.key is not None else None
        row = red(where.row) if where.row is not None else None
        fld = red(where.field) if where.field is not None else None
        table = red(where.table) if where.table is not None else None
        column = red(where.column) if where.column is not None else None
        schema = red(where.schema) if where.schema is not None else None
        target = red(where.target)
        if where.store == "file":
            if where.part == "file name":
                location = f"{path} (file name)"
            else:
                location = f"{path}:{line} (byte {offset})" if line else f"{path} (byte {offset})"
        elif where.store == "sqlite":
            location = f"{path} table {table} column {column} {row} (byte {offset})"
        elif where.store == "postgres":
            location = f"{target} {schema}.{table}.{column} [{row}] (byte {offset})"
        elif where.store == "redis":
            location = f"{target} key {key} {where.part}"
            if fld is not None:
                location += f" {fld}"
            location += f" (byte {offset})"
        else:
            location = f"{target} (byte {offset})"
        self.result.findings.append(
            Finding(
                kind=hit.kind,
                masked=masked,
                encoding=encoding,
                store=where.store,
                target=target,
                location=location,
                path=path,
                line=line,
                offset=offset,
                schema=schema,
                table=table,
                column=column,
                row=row,
                key=key,
                part=where.part,
                field=fld,
            )
        )

    def redact(self, text: str) -> str:
        """`text` with every PAN masked and every canary (in any encoding) replaced."""
        data = text.encode("utf-8", "surrogateescape")
        hits = self.detector.scan(data)
        if not hits:
            return text
        pieces: list[bytes] = []
        last = 0
        for hit in hits:
            if hit.start < last:
                continue
            pieces.append(data[last : hit.start])
            if hit.kind == "pan" and not hit.chain:
                pieces.append(_mask_pan(hit.value).encode())
            else:
                label = (
                    _mask_pan(hit.value) if hit.kind == "pan" else f"canary#{int(hit.value) + 1}"
                )
                pieces.append(f"[{label}]".encode())
            last = hit.end
        pieces.append(data[last:])
        return b"".join(pieces).decode("utf-8", "backslashreplace")

    # -------------------------------------------------------- bytes and streams

    def buffer(self, data: bytes, *, label: str = "bytes") -> None:
        """Sweep an in-memory value (any size; big values are scanned in windows)."""
        self._stream(io.BytesIO(data), _Where("bytes", label))

    def _stream(self, handle: _Readable, where: _Where, limit: int | None = None) -> int:
        """Scan a stream in overlapping windows; returns the bytes read."""
        buffer = b""
        buffer_start = 0  # absolute offset of buffer[0]
        nominal = 0  # findings starting before this were reported by an earlier window
        lines_before = 0  # newlines before `nominal`
        total = 0
        eof = False
        while not eof:
            want = CHUNK_SIZE if limit is None else min(CHUNK_SIZE, limit - total + 1)
            data = handle.read(want) if want > 0 else b""
            total += len(data)
            eof = not data or (limit is not None and total > limit)
            buffer += data
            end = buffer_start + len(buffer)
            if not eof and end - nominal < CHUNK_SIZE + CONTEXT:
                continue
            nominal_end = end if eof else end - CONTEXT
            for hit in self.detector.scan(buffer):
                absolute = buffer_start + hit.start
                if nominal <= absolute < nominal_end:
                    line = None
                    if where.lines:
                        line = lines_before + buffer.count(b"\n", nominal - buffer_start, hit.start)
                        line += 1
                    self._emit(hit, where, absolute, line)
            if where.lines:
                lines_before += buffer.count(
                    b"\n", nominal - buffer_start, nominal_end - buffer_start
                )
            nominal = nominal_end
            cut = max(0, nominal - CONTEXT - buffer_start)
            buffer = buffer[cut:]
            buffer_start += cut
        if limit is not None and total > limit:
            self.result.errors.append(
                f"{self.redact(where.path or where.target)}: stopped after {limit} bytes"
            )
        self.result.stats["bytes"] += min(total, limit) if limit is not None else total
        return total

    # -------------------------------------------------------- files and folders

    def path(self, target: str | os.PathLike[str]) -> None:
        """Sweep a file or every file under a folder (symlinked folders are not followed)."""
        root = Path(target)
        if not root.exists():
            raise SweepError(f"{self.redact(str(root))}: no such file or folder")
        if not root.is_dir():
            self._file(root, set())
            return
        paths = list(self._walk(root))
        if self.jobs > 1 and len(paths) > 1 and _total_size(paths) >= PARALLEL_MIN_BYTES:
            self._parallel(paths)
            return
        seen: set[tuple[int, int]] = set()
        for path in paths:
            self._file(path, seen)

    def _walk(self, root: Path) -> Iterator[Path]:
        def failed(error: OSError) -> None:
            self.result.errors.append(f"{self.redact(str(error.filename))}: unreadable")

        for folder, dirs, files in os.walk(root, onerror=failed):
            dirs.sort()
            for name in sorted(files):
                path = Path(folder) / name
                relative = path.relative_to(root).as_posix()
                if not any(fnmatch(relative, p) or fnmatch(name, p) for p in self.exclude):
                    yield path

    def _parallel(self, paths: list[Path]) -> None:
        """Sweep files in worker processes (the detector is CPU-bound), in the same order."""
        unique: list[str] = []
        seen: set[tuple[int, int]] = set()
        for path in paths:
            try:
                status = path.stat()
            except OSError:
                unique.append(str(path))  # the worker reports it (or skips a dangling link)
                continue
            if (status.st_dev, status.st_ino) not in seen:
                seen.add((status.st_dev, status.st_ino))
                unique.append(str(path))
        spec = (self.detector.canaries, tuple(sorted(self.detector.allow)), self.detector.max_depth)
        # "spawn": a clean interpreter per worker, safe whatever threads this process runs.
        context = multiprocessing.get_context("spawn")
        # Small tasks keep the workers evenly loaded; several files per task when there are many.
        chunksize = max(1, len(unique) // (self.jobs * 16))
        with ProcessPoolExecutor(max_workers=self.jobs, mp_context=context) as pool:
            tasks = pool.map(_sweep_file, unique, itertools.repeat(spec), chunksize=chunksize)
            for result in tasks:
                self.result.findings.extend(result.findings)
                self.result.errors.extend(result.errors)
                for key, value in result.stats.items():
                    self.result.stats[key] += value

    def _file(self, path: Path, seen: set[tuple[int, int]]) -> None:
        shown = str(path)
        if path.is_symlink() and not path.exists():
            return  # a dangling link holds no data
        try:
            status = path.stat()
        except OSError as exc:
            self.result.errors.append(f"{self.redact(shown)}: {exc.strerror}")
            return
        # Only regular files: a FIFO or device would block or never end.
        if not path.is_file() or (status.st_dev, status.st_ino) in seen:
            return
        seen.add((status.st_dev, status.st_ino))
        self.result.stats["files"] += 1
        name_hits = self.detector.scan(path.name.encode("utf-8", "surrogateescape"))
        for hit in name_hits:
            self._emit(hit, _Where("file", shown, path=shown, part="file name"), None, None)
        try:
            with path.open("rb") as handle:
                head = handle.read(16)
                handle.seek(0)
                if head == b"SQLite format 3\x00":
                    is_sqlite = True
                elif head[:2] == b"\x1f\x8b":
                    # Rotated logs are gzipped: sweep what they hold (bounded, see MAX_GZIP_BYTES).
                    is_sqlite = False
                    where = _Where("file", shown, path=shown, lines=True, chain=("gzip",))
                    with gzip.GzipFile(fileobj=handle) as unzipped:
                        self._stream(unzipped, where, limit=MAX_GZIP_BYTES)
                else:
                    is_sqlite = False
                    self._stream(handle, _Where("file", shown, path=shown, lines=True))
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            self.result.errors.append(f"{self.redact(shown)}: {exc.__class__.__name__}")
            return
        if is_sqlite:
            # Swept by table and column; its raw pages are not (adjacent values would run
            # together into false card numbers).
            try:
                self.sqlite(path, display=shown)
            except SweepError as exc:
                self.result.errors.append(str(exc))

    # -------------------------------------------------------- batches of values

    def _batch(self) -> _Batch:
        return _Batch(self)

    # -------------------------------------------------------- SQLite

    def sqlite(self, path: str | os.PathLike[str], *, display: str | None = None) -> None:
        """Sweep every column of every table (SQLite types are per value, so all columns)."""
        file = Path(path)
        shown = display or str(file)
        if not file.is_file():
            raise SweepError(f"{self.redact(shown)}: no such SQLite file")
        uri = f"file:{quote(str(file.resolve()))}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True)
        except sqlite3.Error as exc:
            raise SweepError(f"{self.redact(shown)}: {exc}") from exc
        batch = self._batch()
        try:
            try:
                tables = conn.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name"
                ).fetchall()
            except sqlite3.DatabaseError as exc:
                raise SweepError(f"{self.redact(shown)}: {exc}") from exc
            for name, sql in tables:
                if (sql or "").upper().startswith("CREATE VIRTUAL"):
                    continue  # its rows live in shadow tables, which are swept themselves
                try:
                    self._sqlite_table(conn, shown, str(file), name, batch)
                except sqlite3.DatabaseError as exc:
                    self.result.errors.append(
                        f"{self.redact(shown)} table {self.redact(name)}: {exc.__class__.__name__}"
                    )
        finally:
            batch.flush()
            conn.close()

    def _sqlite_table(
        self, conn: sqlite3.Connection, shown: str, path: str, name: str, batch: _Batch
    ) -> None:
        quoted = '"' + name.replace('"', '""') + '"'
        info = conn.execute(f"PRAGMA table_info({quoted})").fetchall()
        columns = [str(row[1]) for row in info]
        pk = [str(row[1]) for row in sorted(info, key=lambda r: r[5]) if row[5]]
        select = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
        try:
            cursor = conn.execute(f"SELECT rowid, {select} FROM {quoted}")  # noqa: S608
            ids: Callable[[tuple[Any, ...]], str] = lambda r: f"rowid {r[0]}"  # noqa: E731
            skip = 1
        except sqlite3.OperationalError:
            # WITHOUT ROWID tables: identify rows by their primary key instead.
            cursor = conn.execute(f"SELECT {select} FROM {quoted}")  # noqa: S608
            positions = [columns.index(c) for c in pk]

            def ids(r: tuple[Any, ...]) -> str:
                return ",".join(f"{columns[i]}={r[i]}" for i in positions)

            skip = 0
        self.result.stats["tables"] += 1
        for row in cursor:
            self.result.stats["rows"] += 1
            identity: str | None = None
            for index, column in enumerate(columns):
                value = _as_bytes(row[index + skip])
                if value is None:
                    continue
                if identity is None:
                    identity = ids(row)
                batch.add(
                    value,
                    _Where("sqlite", shown, path=path, table=name, column=column, row=identity),
                )

    # -------------------------------------------------------- PostgreSQL

    def postgres(self, url: str) -> None:
        """Sweep every table of every non-system schema, streaming rows with a server cursor."""
        shown = _redact_url(url)
        try:
            import psycopg
            from psycopg import sql
        except ImportError as exc:
            raise SweepError(
                "PostgreSQL sweep needs the driver: pip install 'fincore[postgres]'"
            ) from exc
        conninfo = re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url)
        try:
            conn = psycopg.connect(conninfo, connect_timeout=10)
        except psycopg.Error as exc:
            raise SweepError(f"{shown}: cannot connect ({exc.__class__.__name__})") from exc
        batch = self._batch()
        try:
            conn.read_only = True
            tables = conn.execute(_PG_TABLES).fetchall()
            conn.rollback()
            for oid, schema, table in tables:
                columns = conn.execute(_PG_COLUMNS, (oid,)).fetchall()
                pk = [r[0] for r in conn.execute(_PG_PRIMARY_KEY, (oid,)).fetchall()]
                conn.rollback()
                wanted = [(n, t) for n, t, cat in columns if _pg_sweeps(t, cat)]
                if not wanted:
                    continue
                ident: list[sql.Composable] = [
                    sql.SQL("{}::text").format(sql.Identifier(c)) for c in pk
                ] or [sql.SQL("ctid::text")]
                values = [
                    sql.Identifier(n)
                    if t == "bytea"
                    else sql.SQL("{}::text").format(sql.Identifier(n))
                    for n, t in wanted
                ]
                query = sql.SQL("SELECT {} FROM ONLY {}.{}").format(
                    sql.SQL(", ").join([*ident, *values]),
                    sql.Identifier(schema),
                    sql.Identifier(table),
                )
                labels = pk or ["ctid"]
                try:
                    self._pg_rows(conn, query, shown, schema, table, labels, wanted, batch)
                except psycopg.Error as exc:
                    conn.rollback()
                    self.result.errors.append(
                        f"{shown} {self.redact(schema)}.{self.redact(table)}: "
                        f"{exc.__class__.__name__}"
                    )
        except psycopg.Error as exc:
            raise SweepError(f"{shown}: {exc.__class__.__name__}") from exc
        finally:
            batch.flush()
            conn.close()

    def _pg_rows(
        self,
        conn: Any,
        query: Any,
        shown: str,
        schema: str,
        table: str,
        labels: list[str],
        wanted: list[tuple[str, str]],
        batch: _Batch,
    ) -> None:
        width = len(labels)
        self.result.stats["tables"] += 1
        with conn.transaction(), conn.cursor(name="fincore_pan_sweep") as cursor:
            cursor.itersize = self.batch_rows
            cursor.execute(query)
            while True:
                rows = cursor.fetchmany(self.batch_rows)
                if not rows:
                    break
                for row in rows:
                    self.result.stats["rows"] += 1
                    identity = ",".join(
                        f"{n}={v}" for n, v in zip(labels, row[:width], strict=True)
                    )
                    for (column, _), value in zip(wanted, row[width:], strict=True):
                        data = _as_bytes(value)
                        if data is None:
                            continue
                        batch.add(
                            data,
                            _Where(
                                "postgres",
                                shown,
                                schema=schema,
                                table=table,
                                column=column,
                                row=identity,
                            ),
                        )
        batch.flush()

    # -------------------------------------------------------- Redis

    def redis(self, url: str) -> None:
        """Sweep every key (SCAN): key names and the values of every data type."""
        shown = _redact_url(url)
        try:
            import redis
        except ImportError as exc:
            raise SweepError("Redis sweep needs the client: pip install 'fincore[redis]'") from exc
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=60)
            client.ping()
        except (redis.RedisError, ValueError) as exc:
            raise SweepError(f"{shown}: cannot connect ({exc.__class__.__name__})") from exc
        batch = self._batch()
        try:
            cursor = 0
            while True:
                cursor, keys = client.scan(cursor=cursor, count=500)
                if keys:
                    self._redis_keys(
                        client,
                        shown,
                        [k.encode() if isinstance(k, str) else bytes(k) for k in keys],
                        batch,
                    )
                if cursor == 0:
                    break
        except redis.RedisError as exc:
            raise SweepError(f"{shown}: {exc.__class__.__name__}") from exc
        finally:
            batch.flush()
            client.close()

    def _redis_keys(self, client: Any, shown: str, keys: list[bytes], batch: _Batch) -> None:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        types = pipe.execute()
        strings = [k for k, t in zip(keys, types, strict=True) if t == b"string"]
        values: dict[bytes, Any] = {}
        if strings:
            pipe = client.pipeline(transaction=False)
            for key in strings:
                pipe.get(key)
            values = dict(zip(strings, pipe.execute(), strict=True))
        for key, kind in zip(keys, types, strict=True):
            self.result.stats["keys"] += 1
            name = _printable(key)

            def where(part: str, field_: str | None = None, name: str = name) -> _Where:
                return _Where("redis", shown, key=name, part=part, field=field_)

            batch.add(key, where("key name"))
            if kind == b"string":
                value = values.get(key)
                if value is not None:
                    batch.add(value, where("value"))
            elif kind == b"hash":
                for fld, value in client.hscan_iter(key, count=1000):
                    label = _printable(fld)
                    batch.add(fld, where("field name", label))
                    batch.add(value, where("field value", label))
            elif kind == b"list":
                index = 0
                while True:
                    items = client.lrange(key, index, index + 999)
                    for item in items:
                        batch.add(item, where("list item", f"index {index}"))
                        index += 1
                    if len(items) < 1000:
                        break
            elif kind == b"set":
                for member in client.sscan_iter(key, count=1000):
                    batch.add(member, where("set member"))
            elif kind == b"zset":
                for member, score in client.zscan_iter(key, count=1000):
                    batch.add(member, where("sorted-set member"))
                    if float(score).is_integer() and abs(score) >= 10 ** (MIN_PAN_LENGTH - 1):
                        batch.add(str(int(score)).encode(), where("score", _printable(member)))
            elif kind == b"stream":
                last = b"-"
                while True:
                    entries = client.xrange(key, min=last, max="+", count=1000)
                    if last != b"-" and entries and entries[0][0] == last:
                        entries = entries[1:]
                    for entry_id, fields in entries:
                        entry = _printable(entry_id)
                        for fld, value in fields.items():
                            label = f"entry {entry} {_printable(fld)}"
                            batch.add(fld, where("stream field name", label))
                            batch.add(value, where("stream field value", label))
                    if not entries:
                        break
                    last = entries[-1][0]
            elif kind != b"none":
                self.result.errors.append(
                    f"{shown} key {self.redact(name)}: type {_printable(kind)} not swept"
                )


def _total_size(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


def _sweep_file(path: str, spec: tuple[tuple[bytes, ...], tuple[str, ...], int]) -> SweepResult:
    """One file, in a worker process."""
    canaries, allow, max_depth = spec
    sweeper = Sweeper(canaries, allow=allow, max_depth=max_depth)
    sweeper._file(Path(path), set())
    return sweeper.result


class _Batch:
    """Many small values scanned as one buffer (one detector pass), mapped back per value."""

    def __init__(self, sweeper: Sweeper) -> None:
        self.sweeper = sweeper
        self.values: list[bytes] = []
        self.wheres: list[_Where] = []
        self.size = 0

    def add(self, value: bytes, where: _Where) -> None:
        self.sweeper.result.stats["values"] += 1
        if len(value) > CHUNK_SIZE:
            self.sweeper._stream(io.BytesIO(value), where)
            return
        self.values.append(value)
        self.wheres.append(where)
        self.size += len(value) + len(_CELL_SEPARATOR)
        if self.size >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.values:
            return
        starts: list[int] = []
        position = 0
        for value in self.values:
            starts.append(position)
            position += len(value) + len(_CELL_SEPARATOR)
        data = _CELL_SEPARATOR.join(self.values)
        self.sweeper.result.stats["bytes"] += len(data)
        for hit in self.sweeper.detector.scan(data):
            index = bisect.bisect_right(starts, hit.start) - 1
            self.sweeper._emit(hit, self.wheres[index], hit.start - starts[index], None)
        self.values = []
        self.wheres = []
        self.size = 0


def _as_bytes(value: object) -> bytes | None:
    if value is None or isinstance(value, bool | float):
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, int):
        return str(value).encode("ascii") if abs(value) >= 10 ** (MIN_PAN_LENGTH - 1) else None
    return str(value).encode("utf-8", "backslashreplace")


def _sqlite_path(url: str) -> str:
    # SQLAlchemy style: sqlite:///relative/path, sqlite:////absolute/path.
    rest = url.split("://", 1)[1]
    if not rest.startswith("/"):
        raise SweepError("SQLite URLs look like sqlite:///relative.db or sqlite:////abs.db")
    return rest[1:].split("?", 1)[0]


_PG_TABLES = """
SELECT c.oid, n.nspname, c.relname
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
ORDER BY n.nspname, c.relname
"""

_PG_COLUMNS = """
SELECT a.attname, t.typname, t.typcategory
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = (
  CASE WHEN (SELECT typtype FROM pg_catalog.pg_type WHERE oid = a.atttypid) = 'd'
       THEN (SELECT typbasetype FROM pg_catalog.pg_type WHERE oid = a.atttypid)
       ELSE a.atttypid END)
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_PG_PRIMARY_KEY = """
SELECT a.attname
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = %s AND i.indisprimary
ORDER BY array_position(i.indkey::int2[], a.attnum)
"""

# Text-like, JSON, binary, arrays, composites and the integers wide enough for 13+ digits.
_PG_CATEGORIES = frozenset("SUAC")
_PG_NUMERIC = frozenset({"int8", "numeric"})
_PG_SKIP = frozenset({"uuid", "tsquery", "txid_snapshot", "pg_lsn"})


def _pg_sweeps(typname: str, category: str) -> bool:
    if typname in _PG_SKIP:
        return False
    return category in _PG_CATEGORIES or typname in _PG_NUMERIC


# ---------------------------------------------------------------- library functions


def sweep(
    targets: Iterable[str],
    canaries: Iterable[str | bytes] = (),
    *,
    allow: Iterable[str] = (),
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> list[Finding]:
    """Sweep every target; raise SweepError if any could not be swept completely."""
    sweeper = Sweeper(canaries, allow=allow, max_depth=max_depth)
    for target in targets:
        sweeper.target(target)
    if sweeper.result.errors:
        raise SweepError("; ".join(sweeper.result.errors))
    return sweeper.findings


def _one(
    action: Callable[[Sweeper], None],
    canaries: Iterable[str | bytes],
    allow: Iterable[str],
    max_depth: int,
) -> list[Finding]:
    sweeper = Sweeper(canaries, allow=allow, max_depth=max_depth)
    action(sweeper)
    if sweeper.result.errors:
        raise SweepError("; ".join(sweeper.result.errors))
    return sweeper.findings


def sweep_path(
    path: str | os.PathLike[str],
    canaries: Iterable[str | bytes] = (),
    *,
    allow: Iterable[str] = (),
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> list[Finding]:
    """Findings in a file or in every file under a folder (SQLite files by table and column)."""
    return _one(lambda s: s.path(path), canaries, allow, max_depth)


def sweep_sqlite(
    path: str | os.PathLike[str],
    canaries: Iterable[str | bytes] = (),
    *,
    allow: Iterable[str] = (),
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> list[Finding]:
    """Findings in every column of every table of a SQLite file (path or sqlite:/// URL)."""
    text = os.fspath(path)
    if text.startswith("sqlite:"):
        return _one(
            lambda s: s.sqlite(_sqlite_path(text), display=text), canaries, allow, max_depth
        )
    return _one(lambda s: s.sqlite(text), canaries, allow, max_depth)


def sweep_postgres(
    url: str,
    canaries: Iterable[str | bytes] = (),
    *,
    allow: Iterable[str] = (),
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> list[Finding]:
    """Findings in a PostgreSQL database (postgresql:// or SQLAlchemy postgresql+psycopg://)."""
    return _one(lambda s: s.postgres(url), canaries, allow, max_depth)


def sweep_redis(
    url: str,
    canaries: Iterable[str | bytes] = (),
    *,
    allow: Iterable[str] = (),
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> list[Finding]:
    """Findings in one Redis database (redis://host:port/db): key names and all values."""
    return _one(lambda s: s.redis(url), canaries, allow, max_depth)


def sweep_bytes(
    data: bytes,
    canaries: Iterable[str | bytes] = (),
    *,
    label: str = "bytes",
    allow: Iterable[str] = (),
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> list[Finding]:
    """Findings in an in-memory value; `offset` is the byte offset of each."""
    return _one(lambda s: s.buffer(data, label=label), canaries, allow, max_depth)


def sweep_text(
    text: str,
    canaries: Iterable[str | bytes] = (),
    *,
    label: str = "text",
    allow: Iterable[str] = (),
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> list[Finding]:
    """Findings in a text (swept as its UTF-8 bytes)."""
    return sweep_bytes(
        text.encode("utf-8", "surrogatepass"),
        canaries,
        label=label,
        allow=allow,
        max_depth=max_depth,
    )


# ---------------------------------------------------------------- CLI


class _Parser(argparse.ArgumentParser):
    """argparse that never echoes argument values in its errors (they may be canaries)."""

    values: tuple[str, ...] = ()

    def error(self, message: str) -> Any:
        secrets = []
        for value in self.values:
            if value.startswith("-"):
                value = value.partition("=")[2]  # --canary=VALUE
            if value:
                secrets.append(value)
        for value in sorted(secrets, key=len, reverse=True):
            message = message.replace(value, "<value>")
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _depth(text: str) -> int:
    # The message never repeats the value: argparse errors must not echo arguments.
    if not text.isdigit() or not 0 <= int(text) <= MAX_DEPTH_LIMIT:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {MAX_DEPTH_LIMIT}")
    return int(text)


def _jobs(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError("must be a whole number from 1 to 64")
    return int(text)


def _parser() -> _Parser:
    parser = _Parser(
        prog="fincore sweep",
        description=(
            "PAN sweep: find card numbers (Luhn + issuer prefix) and canary values in files, "
            "folders, SQLite, PostgreSQL and Redis, raw or JSON-escaped, URL-encoded, base64, "
            "hex or UTF-16. Exit 0 clean, 1 on any finding, 2 on usage or connection errors."
        ),
    )
    parser.add_argument(
        "targets",
        nargs="+",
        metavar="PATH|URL",
        help="file, folder, sqlite:///file.db, postgresql://..., redis://host:port/db",
    )
    parser.add_argument(
        "--canary",
        action="append",
        default=[],
        metavar="VALUE",
        help="exact value to find (repeatable); prefer --canary-file: argv is visible in ps",
    )
    parser.add_argument(
        "--canary-file", action="append", default=[], metavar="FILE", help="one canary per line"
    )
    parser.add_argument(
        "--canary-hex",
        action="append",
        default=[],
        metavar="HEX",
        help="a binary canary in hex (e.g. a ciphertext header), numbered after the others",
    )
    parser.add_argument(
        "--allow", action="append", default=[], metavar="PAN", help="a PAN not to report"
    )
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="skip matching files"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument(
        "--jobs",
        type=_jobs,
        default=1,
        help="worker processes for folders of 16 MB or more (default 1)",
    )
    parser.add_argument(
        "--max-depth",
        type=_depth,
        default=DEFAULT_MAX_DEPTH,
        help=f"nested decodings, 0-{MAX_DEPTH_LIMIT} (default {DEFAULT_MAX_DEPTH})",
    )
    return parser


def _format_human(result: SweepResult, targets: int, seconds: float) -> str:
    lines = []
    for f in result.findings:
        lines.append(f"FOUND {f.kind:<6} {f.masked:<19} {f.encoding:<24} {f.location}")
    stats = result.stats
    summary = (
        f"swept {targets} target(s) in {seconds:.2f}s: {stats['files']} files, "
        f"{stats['tables']} tables, {stats['rows']} rows, {stats['keys']} keys, "
        f"{stats['bytes'] / 1e6:.1f} MB; {len(result.findings)} finding(s), "
        f"{len(result.errors)} error(s)"
    )
    lines.append(summary)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`fincore sweep PATH|URL...`: exit 0 clean, 1 on any finding, 2 on usage/connection errors."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    parser.values = tuple(args_list)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    canaries: list[str | bytes] = list(args.canary)
    try:
        for name in args.canary_file:
            text = Path(name).read_text(encoding="utf-8")
            canaries.extend(line.strip() for line in text.splitlines() if line.strip())
    except OSError as exc:
        print(f"fincore sweep: cannot read canary file: {exc.strerror}", file=sys.stderr)
        return 2
    for index, value in enumerate(args.canary_hex, len(canaries) + 1):
        try:
            canaries.append(bytes.fromhex(value))
        except ValueError:
            print(f"fincore sweep: canary#{index} is not hex", file=sys.stderr)
            return 2
    try:
        sweeper = Sweeper(
            canaries,
            allow=args.allow,
            max_depth=args.max_depth,
            exclude=args.exclude,
            jobs=args.jobs,
        )
    except ValueError as exc:
        print(f"fincore sweep: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    for target in args.targets:
        try:
            sweeper.target(target)
        except SweepError as exc:
            sweeper.result.errors.append(str(exc))
    result = sweeper.result
    seconds = time.perf_counter() - started
    if args.json:
        document = {
            "findings": [f.as_dict() for f in result.findings],
            "errors": result.errors,
            "stats": result.stats,
            "seconds": round(seconds, 3),
            "exit_code": result.exit_code,
        }
        print(json.dumps(document, indent=None))
    else:
        print(_format_human(result, len(args.targets), seconds))
    for error in result.errors:
        print(f"fincore sweep: error: {error}", file=sys.stderr)
    return result.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
