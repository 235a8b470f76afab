"""Non-CDE platform adapters, Redis: idempotency records (`redis://`).

One key per merchant and idempotency key holding a small JSON record. `reserve` is one
`SET NX PX` (the lock TTL) when the key is new; `complete` and `release` are Lua scripts that
check the reservation token and act atomically, so a reservation taken over after its lock ran
out can never be completed by the old owner. Finished records live for the retention (>= 24 h)
via PX, so Redis expires them itself.
"""

from __future__ import annotations

import hashlib
from typing import Any

import redis as redis_lib

from fincore.ids import digest_text, random_token
from noncde.platform.domain import (
    MIN_IDEMPOTENCY_RETENTION_S,
    BackendUnavailable,
    InvalidArgument,
    Reservation,
    ReservationLost,
    ReservationStatus,
    StoredResponse,
    check_reservation_args,
    check_response,
    classify,
    dump_json,
    load_json,
)

# KEYS[1] record; ARGV: token, new record JSON, TTL ms. Replace the record iff the token matches.
_COMPLETE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
if rec['t'] ~= ARGV[1] or rec['r'] ~= nil then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
_RELEASE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
if cjson.decode(raw)['t'] ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


class RedisIdempotencyStore:
    """IdempotencyStore on Redis. The key name hashes the idempotency key (keeps key length
    bounded; the record itself carries no request data beyond the fingerprint)."""

    def __init__(
        self,
        client: redis_lib.Redis,
        *,
        retention_s: float = MIN_IDEMPOTENCY_RETENTION_S,
        lock_ttl_s: float = 60.0,
        prefix: str = "fincore:idem:",
    ) -> None:
        if retention_s < MIN_IDEMPOTENCY_RETENTION_S:
            raise InvalidArgument("idempotency retention must be at least 24 h")
        self.client = client
        self.retention_ms = int(retention_s * 1000)
        self.lock_ttl_ms = max(1, int(lock_ttl_s * 1000))
        self.prefix = prefix
        self._complete = client.register_script(_COMPLETE)
        self._release = client.register_script(_RELEASE)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisIdempotencyStore:
        client = redis_lib.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        return cls(client, **kwargs)

    def _key(self, merchant_id: str, key: str) -> str:
        digest = digest_text(hashlib.sha256(key.encode()).digest())
        return f"{self.prefix}{merchant_id}:{digest}"

    def reserve(self, merchant_id: str, key: str, fingerprint: str) -> Reservation:
        check_reservation_args(merchant_id, key, fingerprint)
        name = self._key(merchant_id, key)
        token = random_token()
        record = dump_json({"f": fingerprint, "t": token})
        try:
            # Two tries: the record can expire between the failed SET NX and the GET.
            for _ in range(2):
                if self.client.set(name, record, nx=True, px=self.lock_ttl_ms):
                    return Reservation(
                        merchant_id, key, fingerprint, ReservationStatus.NEW, token=token
                    )
                raw = self.client.get(name)
                if raw is None:
                    continue
                stored = load_json(raw)
                response = None if "r" not in stored else StoredResponse.from_json(stored["r"])
                status = classify(stored["f"], fingerprint, response)
                return Reservation(merchant_id, key, fingerprint, status, response=response)
        except redis_lib.RedisError as exc:
            raise BackendUnavailable(f"redis unavailable ({type(exc).__name__})") from exc
        raise ReservationLost(merchant_id)

    def complete(self, reservation: Reservation, response: StoredResponse) -> None:
        check_response(response)
        if reservation.token is None:
            raise ReservationLost(reservation.merchant_id)
        record = dump_json({"f": reservation.fingerprint, "r": response.to_json()})
        try:
            done = self._complete(
                keys=[self._key(reservation.merchant_id, reservation.key)],
                args=[reservation.token, record, self.retention_ms],
            )
        except redis_lib.RedisError as exc:
            raise BackendUnavailable(f"redis unavailable ({type(exc).__name__})") from exc
        if done != 1:
            raise ReservationLost(reservation.merchant_id)

    def release(self, reservation: Reservation) -> None:
        if reservation.token is None:
            return
        try:
            self._release(
                keys=[self._key(reservation.merchant_id, reservation.key)],
                args=[reservation.token],
            )
        except redis_lib.RedisError as exc:
            raise BackendUnavailable(f"redis unavailable ({type(exc).__name__})") from exc

    def purge_expired(self) -> int:
        return 0

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis_lib.RedisError:
            return False
