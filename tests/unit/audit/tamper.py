"""Test helpers: what an attacker (or a crash) does to stored audit lines.

Each function takes stored lines (bytes ending in a newline) and returns changed lines, built
with the same canonical form the writer uses, so a forgery is as good as an attacker's can be
without the checkpoint key.
"""

from __future__ import annotations

import json
from typing import Any

from audit.domain import canonical_json, digest_b64
from audit.domain.records import line_for


def body(line: bytes) -> dict[str, Any]:
    data = json.loads(line)
    data.pop("hash")
    return dict(data)


def sealed(data: dict[str, Any]) -> bytes:
    """A line whose stored hash matches its content (what anyone can compute)."""
    raw = canonical_json(data)
    return line_for(raw, digest_b64(raw))


def seq_of(line: bytes) -> int:
    return int(json.loads(line)["seq"])


def index_of(lines: list[bytes], seq: int) -> int:
    return next(i for i, line in enumerate(lines) if seq_of(line) == seq)


def edited(line: bytes, **changes: Any) -> bytes:
    """Change fields but keep the stored hash (a careless edit)."""
    claimed = json.loads(line)["hash"]
    data = {**body(line), **changes}
    return line_for(canonical_json(data), claimed)


def edited_rehashed(line: bytes, **changes: Any) -> bytes:
    """Change fields and recompute the record's own hash (the links after it still break)."""
    return sealed({**body(line), **changes})


def modify(lines: list[bytes], seq: int) -> list[bytes]:
    out = list(lines)
    i = index_of(out, seq)
    out[i] = edited(out[i], outcome="success", target="tok_innocent")
    return out


def modify_rehashed(lines: list[bytes], seq: int) -> list[bytes]:
    out = list(lines)
    i = index_of(out, seq)
    out[i] = edited_rehashed(out[i], target="tok_innocent")
    return out


def delete(lines: list[bytes], seq: int, count: int = 1) -> list[bytes]:
    i = index_of(lines, seq)
    return lines[:i] + lines[i + count :]


def forged_after(lines: list[bytes], seq: int, **changes: Any) -> bytes:
    """A self-consistent record claiming seq+1 and linking to record `seq`."""
    previous = lines[index_of(lines, seq)]
    data = {
        **body(previous),
        "seq": seq + 1,
        "prev_hash": json.loads(previous)["hash"],
        "event_type": "card.detokenize",
        "actor": {"id": "gateway", "on_behalf_of": None, "type": "service"},
        "target": "tok_forged",
        **changes,
    }
    return sealed(data)


def insert(lines: list[bytes], after_seq: int) -> list[bytes]:
    i = index_of(lines, after_seq)
    return [*lines[: i + 1], forged_after(lines, after_seq), *lines[i + 1 :]]


def swap(lines: list[bytes], seq: int) -> list[bytes]:
    """Records seq and seq+1 change places."""
    out = list(lines)
    i = index_of(out, seq)
    out[i], out[i + 1] = out[i + 1], out[i]
    return out


def truncate(lines: list[bytes], keep_through_seq: int) -> list[bytes]:
    return lines[: index_of(lines, keep_through_seq) + 1]


def torn(lines: list[bytes]) -> list[bytes]:
    """A crash half-way through writing one more line."""
    extra = forged_after(lines, seq_of(lines[-1]))
    return [*lines, extra[: len(extra) // 2]]


def rewrite_from(lines: list[bytes], seq: int) -> list[bytes]:
    """Change record `seq` and recompute every hash and link after it (a careful forger)."""
    out = list(lines)
    i = index_of(out, seq)
    out[i] = edited_rehashed(out[i], target="tok_innocent")
    for j in range(i + 1, len(out)):
        previous_hash = json.loads(out[j - 1])["hash"]
        out[j] = sealed({**body(out[j]), "prev_hash": previous_hash})
    return out
