"""Test data for the dashboard, written through the real components' public paths: merchants
through the API's directory service, charges as events in the platform's event store (as the
API and the job worker write them), PaymentDB and LedgerDB through the projectionist's code,
dead letters through the platform's job queue. Everything lives in SQLite files under one
`var` folder that the dashboard (and the API process) read too (`World.env`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fincore.sensitive import SecretKey
from noncde.api.bootstrap import build_runtime as build_api
from noncde.api.config import ApiConfig
from noncde.api.domain import (
    AuthorizeCharge,
    CardDisplay,
    ChargeAuthorized,
    ChargeCaptured,
    ChargeFailed,
    ChargeRequested,
    ChargeRiskAssessed,
    Flow,
    PaymentMethodRef,
    PaymentMethodType,
    RiskDecision,
    charge_stream,
    rfc3339,
)
from noncde.api.domain.ids import new_id
from noncde.platform.bootstrap import build_platform
from noncde.platform.config import PlatformConfig
from noncde.platform.domain import NewEvent, RetryPolicy
from noncde.readmodels.bootstrap import build_read_models
from noncde.workers.adapters.memory import MemoryEndpointDirectory
from noncde.workers.bootstrap import build_webhooks
from noncde.workers.domain.webhooks import Endpoint


@dataclass(frozen=True)
class SeededCharge:
    id: str
    merchant_id: str
    amount: int
    currency: str
    last4: str
    status: str
    created: datetime  # when the charge was requested (its day is the search's date)


def seed_merchant(env: dict[str, str], name: str) -> str:
    """A merchant created by the API's directory service (audited as `test.seed`)."""
    runtime = build_api(ApiConfig.from_env(env), env=env)
    try:
        return runtime.directory.create_merchant(name, actor="test.seed").merchant.id
    finally:
        runtime.close()


def seed_charges(
    env: dict[str, str],
    merchant_id: str,
    specs: list[tuple[int, str, str, str, int]],
) -> list[SeededCharge]:
    """Charges as the API and the job worker record them. Each spec is (amount, currency,
    last4, outcome "succeeded"|"failed", days ago)."""
    platform = build_platform(env=env)
    made = []
    try:
        for amount, currency, last4, outcome, days_ago in specs:
            charge_id = new_id("ch")
            created = datetime.now(UTC) - timedelta(days=days_ago, minutes=5)
            card = CardDisplay("visa", last4, 12, 2031, fingerprint="fp" + last4, bin="400000")
            events = [
                ChargeRequested(
                    charge_id,
                    amount,
                    currency,
                    True,
                    PaymentMethodRef(PaymentMethodType.VAULT_TOKEN, new_id("tok"), card),
                    Flow.S2S,
                    rfc3339(created),
                    description="Order " + charge_id[-6:],
                ),
                ChargeRiskAssessed(charge_id, RiskDecision.ALLOW, [], 1, []),
            ]
            if outcome == "succeeded":
                reference = "pi_" + charge_id[3:]
                events += [
                    ChargeAuthorized(charge_id, amount, reference),
                    ChargeCaptured(charge_id, amount, amount, reference),
                ]
            else:
                events.append(ChargeFailed(charge_id, "card_declined", "Declined.", "do_not_honor"))
            platform.events.append(
                charge_stream(charge_id),
                [
                    NewEvent(
                        e.type, e.to_data(), merchant_id=merchant_id, correlation_id="req_seed"
                    )
                    for e in events
                ],
                expected_version=0,
            )
            made.append(
                SeededCharge(charge_id, merchant_id, amount, currency, last4, outcome, created)
            )
    finally:
        platform.close()
    return made


def project(env: dict[str, str]) -> None:
    """Run the projectionist's code once: PaymentDB and LedgerDB catch up with the store."""
    models = build_read_models(env=env)
    try:
        models.payment_projector.catch_up()
        models.ledger_projector.catch_up()
    finally:
        models.close()


def seed_dead_letter(env: dict[str, str], charge: SeededCharge) -> str:
    """A `charge.authorize` job that failed its last attempt (the job queue's own path)."""
    config = PlatformConfig.from_env(env)
    platform = build_platform(
        PlatformConfig(
            db_url=config.db_url,
            event_store_url=config.event_store_url,
            job_queue_url=config.job_queue_url,
            idempotency_url=config.idempotency_url,
            rules_url=config.rules_url,
            retry=RetryPolicy(max_attempts=1),
        ),
        env=env,
    )
    try:
        job = AuthorizeCharge(
            charge.id,
            charge.merchant_id,
            charge.amount,
            charge.currency,
            True,
            {"type": "vault_token", "token": new_id("tok")},
        )
        job_id = platform.jobs.enqueue(job.type, job.to_payload(), dedup_id=job.dedup_id)
        (leased,) = platform.jobs.lease("test-seed", 1, 30.0)
        outcome = platform.jobs.nack(leased, "gateway unavailable: connect timeout after 10 s")
        assert outcome.dead_lettered
        return job_id
    finally:
        platform.close()


def seed_webhook_deliveries(api_env: dict[str, str], env: dict[str, str], merchant_id: str) -> str:
    """A webhook endpoint in the API's directory and the deliveries the webhook worker's own
    fan-out makes of the merchant's events (not sent: no deliverer runs). Its id."""
    runtime = build_api(ApiConfig.from_env(api_env), env=api_env)
    try:
        endpoint, secret = runtime.directory.add_webhook_endpoint(
            merchant_id, "https://merchant.example/hooks", ["*"], actor="test.seed"
        )
    finally:
        runtime.close()
    directory = MemoryEndpointDirectory(
        [Endpoint(endpoint.id, merchant_id, endpoint.url, ("*",), SecretKey(secret))]
    )
    role = build_webhooks(env=env, credentials=None, ca_file=None, directory=directory)
    try:
        assert role.dispatcher is not None
        while role.dispatcher.fan_out_once():
            pass
    finally:
        role.close()
    return endpoint.id
