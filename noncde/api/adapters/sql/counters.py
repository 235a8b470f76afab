"""noncde.api adapters, SQL: windowed counters for rate limits and risk velocity.

One row per (key, bucket); an increment is one `INSERT … ON CONFLICT DO UPDATE … RETURNING`,
atomic on SQLite (one writer) and PostgreSQL (row lock), so processes never lose a count.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select

from noncde.api.adapters.sql.schema import counters
from noncde.api.domain.risk import VelocitySeries
from noncde.platform.adapters.sql.schema import SqlDatabase


def _series_key(series: VelocitySeries) -> str:
    return f"v:{series.bucket_s}:{series.key}"


class SqlCounters:
    """Counters on the API database (`api_counters`)."""

    def __init__(self, db: SqlDatabase) -> None:
        self.db = db

    def _increment(self, conn: object, key: str, bucket: int, expires_at: int) -> int:
        statement = (
            self.db.insert(counters)
            .values(key=key, bucket=bucket, count=1, expires_at=expires_at)
            .on_conflict_do_update(
                index_elements=["key", "bucket"], set_={"count": counters.c.count + 1}
            )
            .returning(counters.c.count)
        )
        return int(conn.execute(statement).scalar_one())  # type: ignore[attr-defined]

    def hit(self, key: str, window_s: int, now: float) -> int:
        bucket = int(now // window_s)
        with self.db.write() as conn:
            return self._increment(conn, f"r:{window_s}:{key}", bucket, (bucket + 2) * window_s)

    def count(self, series: Sequence[VelocitySeries], now: float) -> dict[tuple[str, int], int]:
        found: dict[tuple[str, int], int] = {}
        if not series:
            return found
        with self.db.read() as conn:
            for item in series:
                current = int(now // item.bucket_s)
                first = current - item.window_s // item.bucket_s
                total = conn.execute(
                    select(func.coalesce(func.sum(counters.c.count), 0)).where(
                        counters.c.key == _series_key(item),
                        counters.c.bucket > first,
                        counters.c.bucket <= current,
                    )
                ).scalar_one()
                found[(item.key, item.window_s)] = int(total)
        return found

    def add(self, series: Sequence[VelocitySeries], now: float) -> None:
        if not series:
            return
        with self.db.write() as conn:
            for item in series:
                bucket = int(now // item.bucket_s)
                expires = (bucket + 1) * item.bucket_s + item.window_s
                self._increment(conn, _series_key(item), bucket, expires)

    def purge(self, now: float) -> int:
        with self.db.write() as conn:
            return int(conn.execute(delete(counters).where(counters.c.expires_at < now)).rowcount)
