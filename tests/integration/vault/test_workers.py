"""Two vault workers (the production shape) share the Redis CVC store and rate limiter: a CVC
is returned once whichever worker answers, and the per-merchant limit holds across workers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.integration.vault.conftest import Cde, make_cde, tokenize

AMEX = {"number": "378282246310005", "exp_month": 3, "exp_year": 2032, "cvc": "7391"}


@pytest.fixture
def two_workers(tmp_path: Path, redis_url: str) -> Iterator[Cde]:
    cde = make_cde(
        tmp_path,
        FINCORE_VAULT_WORKERS="2",
        FINCORE_VAULT_CVC_URL=redis_url,
        FINCORE_VAULT_RATE_URL=redis_url,
        FINCORE_VAULT_RATE_PER_S="0.01",
        FINCORE_VAULT_RATE_BURST="12",
    )
    cde.cli("attest", "mer_alpha", "--expires", "2099-12-31")
    cde.start("vault")
    try:
        _both_workers_serving(cde)
        yield cde
    finally:
        cde.stop("vault")


def _both_workers_serving(cde: Cde, timeout_s: float = 60.0) -> None:
    """The server answers once its first worker is up; wait until the second serves too.
    Probe: concurrent requests without a service identity, which each worker refuses (401)
    and audits with its pid, changing nothing else."""

    def probe(_: int) -> int:
        with cde.client() as client:
            return client.get(cde.url("vault") + "/v1/tokens/tok_probe").status_code

    deadline = time.monotonic() + timeout_s
    with ThreadPoolExecutor(max_workers=8) as pool:
        while True:
            assert set(pool.map(probe, range(16))) == {401}
            refusals = cde.audit_events("access.service_identity_refused")
            if len({r["origin"]["pid"] for r in refusals}) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.5)


def test_cvc_once_and_one_limit_across_workers(two_workers: Cde) -> None:
    """Concurrent connections land on both workers; each CVC comes back exactly once (two
    concurrent reads per token) and the twelve-card burst is one budget for the merchant."""
    cde = two_workers

    def tokenize_one(_: int) -> httpx.Response:
        with cde.client() as client:
            return tokenize(cde, client, "mer_alpha", AMEX)

    def detokenize(token: str) -> str | None:
        with cde.client() as client:
            answer = client.post(
                cde.url("vault") + f"/v1/tokens/{token}/detokenize",
                json={"merchant_id": "mer_alpha"},
                headers=cde.headers("gateway"),
            )
        assert answer.status_code == 200
        cvc = answer.json()["cvc"]
        return cvc if isinstance(cvc, str) else None

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(tokenize_one, range(16)))
        statuses = sorted(a.status_code for a in answers)
        tokens = [a.json()["token"] for a in answers if a.status_code == 201]
        served = list(pool.map(detokenize, tokens + tokens))
    assert statuses == [201] * 12 + [429] * 4
    for token in tokens:
        got = [cvc for t, cvc in zip(tokens + tokens, served, strict=True) if t == token]
        assert sorted(got, key=str) == ["7391", None]
    pids = {r["origin"]["pid"] for r in cde.audit_records() if r["event_type"].startswith("card.")}
    assert len(pids) == 2, "both workers should have served requests"


def test_workers_report_ready(two_workers: Cde) -> None:
    """Every worker checks keys, store, CVC store (Redis) and audit."""
    with two_workers.client() as client:
        for _ in range(4):
            ready = client.get(two_workers.url("vault") + "/readyz")
            assert ready.status_code == 200
            assert all(ready.json()["checks"].values())
