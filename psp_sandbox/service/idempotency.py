"""psp_sandbox: Stripe's Idempotency-Key semantics over the store port.

Outside both zones.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from psp_sandbox.domain import (
    StripeError,
    invalid,
)
from psp_sandbox.ports import (
    IdempotencyRecord,
    SandboxStore,
)

Params = Mapping[str, Any]
Json = dict[str, Any]


class Idempotency:
    """Stripe's Idempotency-Key: same key + same request → the saved response (replayed);
    same key + different parameters → 400 idempotency_error; a key whose first request is still
    running → 409. Only requests that began executing are saved (validation errors are not)."""

    def __init__(self, store: SandboxStore, ttl_s: int, now: Callable[[], float] = time.time):
        self._store = store
        self._ttl_s = ttl_s
        self._now = now

    @staticmethod
    def fingerprint(method: str, path: str, params: Params) -> str:
        canonical = json.dumps([method, path, params], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def begin(self, account: str, key: str, fingerprint: str) -> IdempotencyRecord | None:
        """Claim the key (None: go ahead) or return the saved result to replay."""
        if len(key) > 255:
            raise invalid("Idempotency keys are at most 255 characters.", param="Idempotency-Key")
        if self._store.idempotency_begin(account, key, fingerprint, self._now()):
            return None
        record = self._store.idempotency_get(account, key)
        if record is None:  # purged between the two calls
            return self.begin(account, key, fingerprint)
        if record.created < self._now() - self._ttl_s:
            self._store.idempotency_forget(account, key)
            return self.begin(account, key, fingerprint)
        if record.fingerprint != fingerprint:
            raise StripeError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they "
                "were first used with. Try using a key other than the one you sent if you "
                "meant to execute a different request.",
                type="idempotency_error",
            )
        if record.state != "done":
            raise StripeError(
                409,
                "There is currently another in-progress request using this Idempotent Key "
                "(that probably means you submitted twice, and the other request is still "
                "going through). Please try again later.",
                type="idempotency_error",
                code="idempotency_key_in_use",
            )
        return record

    def finish(self, account: str, key: str, status: int, body: bytes) -> None:
        self._store.idempotency_finish(account, key, status, body)

    def forget(self, account: str, key: str) -> None:
        self._store.idempotency_forget(account, key)

    def purge(self) -> int:
        return self._store.idempotency_purge(self._now() - self._ttl_s)
