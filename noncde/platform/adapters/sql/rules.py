"""Non-CDE platform adapters, SQL: versioned risk rule sets (one row per version)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from noncde.platform.adapters.sql.schema import SqlDatabase, rule_sets
from noncde.platform.domain import (
    JSON,
    Clock,
    ConcurrencyConflict,
    RuleSet,
    from_micros,
    load_json,
    prepare_rules,
    to_micros,
)

_ACTIVE_VERSION = select(func.coalesce(func.max(rule_sets.c.version), 0))


def _rule_set(row: Any) -> RuleSet:
    return RuleSet(row.version, tuple(load_json(row.rules)), from_micros(row.published_at))


class SqlRulesStore:
    """RulesStore on `rule_sets`: the active set is the highest version (an index lookup)."""

    def __init__(self, db: SqlDatabase, clock: Clock = time.time) -> None:
        self.db = db
        self.clock = clock

    def active(self) -> RuleSet:
        query = select(rule_sets).order_by(rule_sets.c.version.desc()).limit(1)
        with self.db.read() as conn:
            row = conn.execute(query).one_or_none()
        return RuleSet.empty() if row is None else _rule_set(row)

    def active_version(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(_ACTIVE_VERSION).scalar_one())

    def publish(self, rules: Sequence[JSON], *, expected_version: int | None = None) -> RuleSet:
        text = prepare_rules(rules, expected_version)
        # Two PostgreSQL publishers may read the same version; the primary key lets one win.
        # Without an expected version the loser simply tries again on top of the winner.
        for _ in range(5):
            try:
                with self.db.write() as conn:
                    current = int(conn.execute(_ACTIVE_VERSION).scalar_one())
                    if expected_version is not None and expected_version != current:
                        raise ConcurrencyConflict("rules", expected_version, current)
                    now = to_micros(self.clock())
                    conn.execute(
                        rule_sets.insert().values(version=current + 1, rules=text, published_at=now)
                    )
                return RuleSet(current + 1, tuple(load_json(text)), from_micros(now))
            except IntegrityError:
                if expected_version is not None:
                    raise ConcurrencyConflict("rules", expected_version, None) from None
        raise ConcurrencyConflict("rules", expected_version, None)

    def get(self, version: int) -> RuleSet | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(rule_sets).where(rule_sets.c.version == version)
            ).one_or_none()
        return None if row is None else _rule_set(row)
