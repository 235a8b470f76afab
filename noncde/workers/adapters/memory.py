"""noncde.workers adapters, in memory: an endpoint directory, a settlement source and an alert
sink held in this process (embedded runs and the services' unit tests)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import date

from noncde.workers.domain.reconciliation import Alert
from noncde.workers.domain.webhooks import Endpoint


class MemoryEndpointDirectory:
    """`EndpointDirectory` over a dict; `put`/`remove` change it at once."""

    def __init__(self, endpoints: Iterable[Endpoint] = ()) -> None:
        self._lock = threading.Lock()
        self._endpoints = {e.id: e for e in endpoints}

    def put(self, endpoint: Endpoint) -> None:
        with self._lock:
            self._endpoints[endpoint.id] = endpoint

    def remove(self, endpoint_id: str) -> None:
        with self._lock:
            self._endpoints.pop(endpoint_id, None)

    def endpoints(self, merchant_id: str) -> list[Endpoint]:
        with self._lock:
            return [e for e in self._endpoints.values() if e.merchant_id == merchant_id]

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        with self._lock:
            return self._endpoints.get(endpoint_id)


class MemorySettlementSource:
    """`SettlementSource` over a dict of day -> file bytes."""

    def __init__(self) -> None:
        self.files: dict[date, bytes] = {}

    def describe(self) -> str:
        return "memory://settlements"

    def fetch(self, day: date) -> bytes | None:
        return self.files.get(day)


class MemoryAlertSink:
    """`AlertSink` keeping the alerts it was given (one per fingerprint)."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def raise_alert(self, alert: Alert) -> bool:
        if any(a.fingerprint == alert.fingerprint for a in self.alerts):
            return False
        self.alerts.append(alert)
        return True
