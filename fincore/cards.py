"""Shared by both zones: card-number detection (Luhn + issuer prefix) and masking.

This is the single detector behind log redaction, the non-CDE card-data guard, the audit
log's `details` check and the PAN sweep. It holds no business logic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

MIN_PAN_LENGTH = 13
MAX_PAN_LENGTH = 19

# A run of digits, optionally split into groups by one space or one dash (as people type cards).
# Log redaction also accepts the URL-encoded forms of a space (`+`, `%20`), as they reach
# request lines; the guards and the sweep do not (their inputs are decoded first, and `+` between
# digits is common in base64 text, where it would only cause false alarms).
_SEPARATOR = r"[ \-]"
_URL_SEPARATOR = r"(?:[ \-+]|%20)"


@dataclass(frozen=True, slots=True)
class _Grammar:
    candidate: re.Pattern[str]
    group: re.Pattern[str]
    # Necessary condition for any match: 13 digits with at most one separator between
    # neighbours. One C-level search rules out almost every string (ids, amounts) at once.
    quick: re.Pattern[str]
    # Necessary for `quick`: a digit and 12 more characters that digits and separators are
    # made of. A single character class, so 2-3x faster than `quick` on text with digit runs
    # (ids, timestamps), which it rules out first.
    prefilter: re.Pattern[str]

    def may_match(self, text: str) -> bool:
        return self.prefilter.search(text) is not None and self.quick.search(text) is not None


def _grammar(separator: str, characters: str) -> _Grammar:
    return _Grammar(
        candidate=re.compile(rf"(?<![0-9])[0-9]+(?:{separator}[0-9]+)*(?![0-9])"),
        group=re.compile(rf"([0-9]+){separator}?"),
        quick=re.compile(rf"[0-9](?:{separator}?[0-9]){{{MIN_PAN_LENGTH - 1}}}"),
        prefilter=re.compile(rf"[0-9][0-9{characters}]{{{MIN_PAN_LENGTH - 1}}}"),
    )


_TYPED = _grammar(_SEPARATOR, r" \-")
_TYPED_OR_URL = _grammar(_URL_SEPARATOR, r" \-+%")
# Longest group after the first in a typed card number (Amex and Diners: 4-6-5, 4-6-4).
_MAX_GROUP = 6

# Key names that carry card data wherever they appear (PCI DSS 3.3.1: SAD must never be kept).
_CARD_KEYS = (
    r"card[_\-]?number|number|pan|primary[_\-]?account[_\-]?number|cvc2?|cvv2?|cid|csc|"
    r"security[_\-]?code|card[_\-]?verification(?:[_\-]?(?:code|value))?|card[_\-]?cvc|card[_\-]?cvv"
)
CARD_KEY_PATTERN = re.compile(rf"^(?:{_CARD_KEYS})$", re.IGNORECASE)
# The same names as keys of a JSON document (`"pan": …`), for the fast path of find_card_data.
# Whitespace around a key may arrive JSON-escaped (`\n`, `\u001c`); str.strip() drops it.
_JSON_SPACE = r"(?:\s|\\[ntrfb]|\\u[0-9a-fA-F]{4})*"
_CARD_KEY_IN_JSON = re.compile(rf'"{_JSON_SPACE}(?:{_CARD_KEYS}){_JSON_SPACE}"\s*:', re.IGNORECASE)
# The same, case-sensitive, for ASCII text lowered first: for ASCII the two match alike, and this
# is ~2.5x faster (an IGNORECASE alternation is slow in `re`; it runs on every audit record).
_CARD_KEY_IN_LOWER_JSON = re.compile(_CARD_KEY_IN_JSON.pattern)


def luhn_valid(digits: str) -> bool:
    """True when `digits` (only 0-9) passes the Luhn mod-10 check."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def plausible_issuer(digits: str) -> bool:
    """True when the leading digits are a payment-card issuer prefix.

    Major industry identifiers 3-6 (Amex, JCB, Diners, Visa, Mastercard, Discover, UnionPay,
    Maestro), Mastercard's 2-series (2221-2720) and UnionPay's 81 range. Excluding the rest keeps
    millisecond timestamps (1...), date-stamped order ids (20...) and similar numbers from being
    reported as card numbers.
    """
    first = digits[0]
    if first in "3456":
        return True
    if first == "2":
        return 2221 <= int(digits[:4]) <= 2720
    return digits.startswith("81")


def is_card_number(digits: str) -> bool:
    """True when `digits` looks like a PAN: 13-19 digits, issuer prefix, Luhn-valid."""
    return (
        MIN_PAN_LENGTH <= len(digits) <= MAX_PAN_LENGTH
        and digits.isdigit()
        and plausible_issuer(digits)
        and luhn_valid(digits)
    )


@dataclass(frozen=True, slots=True)
class CardMatch:
    """A card-like number found in a text: its span in the text and its digits."""

    start: int
    end: int
    digits: str

    @property
    def masked(self) -> str:
        return mask_pan(self.digits)


def mask_pan(digits: str) -> str:
    """First six and last four digits, the rest as `*` (PCI DSS 3.4.1 display maximum)."""
    if len(digits) < MIN_PAN_LENGTH:
        return "*" * len(digits)
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


def _matches_in_run(run: str, offset: int, grammar: _Grammar) -> Iterator[CardMatch]:
    if run.isdigit():
        # An unbroken run longer than 19 digits is not a card number (ids, hashes, timestamps).
        if is_card_number(run):
            yield CardMatch(offset, offset + len(run), run)
        return
    # Grouped: try each window of consecutive groups that starts with a 4-digit group, goes on
    # with groups of at most 6 digits (every card layout: 4-4-4-4, 4-6-5, 4-6-4, 4-4-4-4-3) and
    # adds up to 13-19 digits ("4242 4242 4242 4242", "3782-822463-10005"). A longer group is a
    # number of its own: "sku-2250-1764249490250" is a 4-digit code and a ms timestamp.
    groups: list[tuple[int, str]] = []
    for group in grammar.group.finditer(run):
        groups.append((group.start(1), group.group(1)))
    index = 0
    while index < len(groups):
        start_pos, first = groups[index]
        found = False
        if len(first) == 4:
            digits = ""
            for end_index in range(index, len(groups)):
                part = groups[end_index][1]
                digits += part
                if len(digits) > MAX_PAN_LENGTH or len(part) > _MAX_GROUP:
                    break
                if len(digits) >= MIN_PAN_LENGTH and is_card_number(digits):
                    end_pos = groups[end_index][0] + len(groups[end_index][1])
                    yield CardMatch(offset + start_pos, offset + end_pos, digits)
                    index = end_index + 1
                    found = True
                    break
        if not found:
            # A single group may itself be a card number ("ref 12 4242424242424242").
            if is_card_number(first):
                yield CardMatch(offset + start_pos, offset + start_pos + len(first), first)
            index += 1


def find_card_numbers(text: str, *, url_separators: bool = False) -> list[CardMatch]:
    """Every card-like number in `text`, raw or grouped by spaces or dashes (and, with
    `url_separators`, by `+` or `%20`)."""
    grammar = _TYPED_OR_URL if url_separators else _TYPED
    if len(text) < MIN_PAN_LENGTH or not grammar.may_match(text):
        return []
    found: list[CardMatch] = []
    for candidate in grammar.candidate.finditer(text):
        run = candidate.group()
        if len(run) < MIN_PAN_LENGTH or sum(map(str.isdigit, run)) < MIN_PAN_LENGTH:
            continue
        found.extend(_matches_in_run(run, candidate.start(), grammar))
    return found


def contains_card_number(text: str) -> bool:
    """True when `text` holds at least one card-like number."""
    return bool(find_card_numbers(text))


def mask_card_numbers(text: str) -> str:
    """`text` with every card-like number replaced by its masked form (for logs: also numbers
    grouped by the URL-encoded spaces `+` and `%20`)."""
    matches = find_card_numbers(text, url_separators=True)
    if not matches:
        return text
    pieces: list[str] = []
    last = 0
    for match in matches:
        pieces.append(text[last : match.start])
        pieces.append(match.masked)
        last = match.end
    pieces.append(text[last:])
    return "".join(pieces)


def is_card_key(name: str) -> bool:
    """True when a field name is one that carries card data (`number`, `pan`, `cvc`, ...)."""
    return bool(CARD_KEY_PATTERN.match(name.strip()))


def _json_default(value: object) -> object:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


def find_card_data(value: object, path: str = "$") -> list[str]:
    """Paths inside a JSON-like value that hold card data: a card-like number or a card key.

    Used by the non-CDE guard, the platform's stores and the audit log to refuse a payload
    before it is stored. Returns the paths only, never the values.
    """
    if path == "$" and not isinstance(value, str | bytes | bytearray | int):
        # Fast path: one JSON rendering and two C-level searches clear almost every payload.
        # Digits and key names survive JSON rendering unchanged, so a miss here is a miss
        # below; only a hit needs the walk that names the paths.
        try:
            text = json.dumps(value, default=_json_default, ensure_ascii=False)
        except (TypeError, ValueError):
            text = None
        if text is not None and not may_hold_card_data(text):
            return []
    return _walk(value, path)


def may_hold_card_data(rendered: str) -> bool:
    """False when a JSON rendering of a value (`ensure_ascii` or not) certainly holds no card
    data: no 13-digit run and no card key. True means `find_card_data` must look.

    For callers that already have the rendering (the audit log's canonical JSON): two C-level
    searches instead of a second rendering.
    """
    if _TYPED.may_match(rendered):
        return True
    if rendered.isascii():
        return _CARD_KEY_IN_LOWER_JSON.search(rendered.lower()) is not None
    return _CARD_KEY_IN_JSON.search(rendered) is not None


def _walk(value: object, path: str) -> list[str]:
    hits: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            key_text = str(key)
            child = f"{path}.{key_text}"
            if is_card_key(key_text) or contains_card_number(key_text):
                hits.append(child)
                continue
            hits.extend(_walk(item, child))
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            hits.extend(_walk(item, f"{path}[{index}]"))
    elif isinstance(value, str):
        if contains_card_number(value):
            hits.append(path)
    elif isinstance(value, bytes | bytearray):
        if contains_card_number(bytes(value).decode("latin-1")):
            hits.append(path)
    elif isinstance(value, int) and not isinstance(value, bool) and is_card_number(str(value)):
        hits.append(path)
    return hits
