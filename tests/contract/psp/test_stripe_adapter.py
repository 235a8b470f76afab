"""The Stripe adapter's contract, run against the PSP sandbox and against localstripe (a
third-party fake Stripe), so that the sandbox stays honest about Stripe's shape.

`StripeAdapterContract` holds what both peers support (payment methods from cards,
PaymentIntent create/confirm/capture/cancel/refund, the decline card 4000000000000341, signed
payment-intent webhooks). The sandbox's class adds what localstripe lacks: idempotency, every
decline code, over-refund refusal, Checkout Sessions, search by reference, faults.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from cde.gateway.adapters.stripe import StripePaymentProvider
from cde.gateway.domain import (
    AuthorizationRequest,
    CardDetails,
    CardRejected,
    CheckoutRequest,
    CheckoutStatus,
    PaymentOutcome,
    PaymentStatus,
    PspIdempotencyError,
    PspRequestError,
    RefundStatus,
    WebhookVerificationError,
)
from fincore.ids import random_id
from fincore.netutil import free_port
from fincore.sensitive import Cvc, Pan, SecretKey
from psp_sandbox.domain import DECLINES, TEST_CARDS
from tests.harness.peers import LocalStripe
from tests.integration.psp_sandbox.peer import RecordingServer, SandboxServer, wait_until

pytestmark = pytest.mark.psp


@dataclass
class PspPeer:
    name: str
    url: str
    api_key: str
    webhook_secret: str
    register_webhook: Callable[[str], None]


def _reference() -> str:
    # Base 62 without long digit runs: a hex reference was, rarely, a Luhn-valid card-like
    # number, which the PSP sandbox refuses in metadata (seen once in CI).
    return random_id("ch", 8)


def _key() -> str:
    return secrets.token_hex(12)


def pi_of(outcome: PaymentOutcome) -> str:
    """The PSP reference of an outcome that must have one."""
    assert outcome.psp_reference is not None and outcome.psp_reference.startswith("pi_")
    return outcome.psp_reference


class StripeAdapterContract:
    """What every Stripe-compatible peer must do through `StripePaymentProvider`."""

    @pytest.fixture
    def peer(self) -> PspPeer:
        raise NotImplementedError

    @pytest.fixture
    def provider(self, peer: PspPeer) -> StripePaymentProvider:
        return StripePaymentProvider(
            api_key=SecretKey(peer.api_key),
            webhook_secret=SecretKey(peer.webhook_secret),
            api_base=peer.url,
            connect_timeout_s=2.0,
            read_timeout_s=10.0,
        )

    @pytest.fixture
    def hooks(self, peer: PspPeer) -> Iterator[RecordingServer]:
        server = RecordingServer().start()
        peer.register_webhook(server.url)
        yield server
        server.stop()

    @staticmethod
    def card(number: str = "4242424242424242") -> CardDetails:
        return CardDetails(Pan(number), 12, 2034, Cvc("123"))

    def pay(
        self,
        provider: StripePaymentProvider,
        *,
        amount: int = 2000,
        capture: bool = True,
        number: str = "4242424242424242",
        reference: str | None = None,
    ) -> tuple[str, PaymentOutcome]:
        pm = provider.create_payment_method(self.card(number))
        reference = reference or _reference()
        outcome = provider.authorize(
            AuthorizationRequest(reference, amount, "eur", pm.psp_reference, capture=capture),
            idempotency_key=_key(),
        )
        return reference, outcome

    # ------------------------------------------------------------------ tests

    def test_payment_method_from_card(self, provider: StripePaymentProvider) -> None:
        """A card becomes a pm_ token with display data; the adapter returns no card number."""
        pm = provider.create_payment_method(self.card())
        assert pm.psp_reference.startswith("pm_")
        assert (pm.last4, pm.exp_month, pm.exp_year) == ("4242", 12, 2034)
        assert pm.brand == "visa"
        assert "4242424242424242" not in repr(pm)

    def test_authorize_and_capture_at_once(self, provider: StripePaymentProvider) -> None:
        """capture=True: the payment succeeds with the full amount received."""
        reference, outcome = self.pay(provider, amount=1999)
        assert outcome.status is PaymentStatus.succeeded
        assert pi_of(outcome)
        assert outcome.reference == reference
        assert (outcome.amount, outcome.currency) == (1999, "eur")
        assert outcome.decline_code is None

    def test_authorize_then_capture_in_full(self, provider: StripePaymentProvider) -> None:
        """capture=False waits in requires_capture; capture() takes the whole amount."""
        _, held = self.pay(provider, capture=False)
        assert held.status is PaymentStatus.requires_capture
        captured = provider.capture(pi_of(held), idempotency_key=_key())
        assert captured.status is PaymentStatus.succeeded
        assert captured.psp_reference == held.psp_reference
        assert provider.retrieve(pi_of(captured) or "").status is PaymentStatus.succeeded

    def test_partial_capture(self, provider: StripePaymentProvider) -> None:
        """capture(amount=…) takes part of the authorization."""
        _, held = self.pay(provider, amount=2000, capture=False)
        captured = provider.capture(
            pi_of(held),
            amount=1500,
            idempotency_key=_key(),
        )
        assert captured.status is PaymentStatus.succeeded
        assert captured.amount_received in (1500, None)  # localstripe omits amount_received
        assert captured.amount == 2000

    def test_cancel_an_authorization(self, provider: StripePaymentProvider) -> None:
        """cancel() releases an uncaptured authorization."""
        _, held = self.pay(provider, capture=False)
        canceled = provider.cancel(pi_of(held), idempotency_key=_key())
        assert canceled.status is PaymentStatus.canceled

    def test_capturing_a_captured_payment_is_refused(self, provider: StripePaymentProvider) -> None:
        """A request the PSP refuses raises PspRequestError (nothing happened)."""
        _, paid = self.pay(provider)
        with pytest.raises(PspRequestError):
            provider.capture(pi_of(paid), idempotency_key=_key())

    def test_full_and_partial_refunds(self, provider: StripePaymentProvider) -> None:
        """A partial refund then the rest; each is a succeeded refund of the payment."""
        reference, paid = self.pay(provider, amount=3000)
        pi = pi_of(paid)
        part = provider.refund(pi, amount=1000, reference=reference, idempotency_key=_key())
        assert (part.status, part.amount, part.payment_reference) == (
            RefundStatus.succeeded,
            1000,
            pi,
        )
        assert part.psp_reference and part.psp_reference.startswith("re_")
        assert part.reference == reference
        rest = provider.refund(pi, amount=2000, idempotency_key=_key())
        assert (rest.status, rest.amount) == (RefundStatus.succeeded, 2000)

    def test_decline_is_a_failed_outcome(self, provider: StripePaymentProvider) -> None:
        """The decline card fails with Stripe's generic decline and a payer-fit message."""
        reference, outcome = self.pay(provider, number="4000000000000341")
        assert outcome.status is PaymentStatus.failed
        assert outcome.decline_code == "generic_decline"
        assert outcome.failure_code == "card_declined"
        assert outcome.failure_message == "Your card was declined."
        assert outcome.reference == reference

    def test_signed_payment_intent_webhook(
        self, provider: StripePaymentProvider, hooks: RecordingServer
    ) -> None:
        """A payment_intent.succeeded webhook verifies and normalizes to a token-only event."""
        reference, paid = self.pay(provider, amount=4200)
        pi = pi_of(paid)

        def arrived(events: list[dict[str, object]]) -> bool:
            return any(
                e["type"] == "payment_intent.succeeded" and e["data"]["object"]["id"] == pi  # type: ignore[index]
                for e in events
            )

        hooks.wait_for(arrived)
        received = next(
            r
            for r in hooks.for_object(pi)
            if json.loads(r.body)["type"] == "payment_intent.succeeded"
        )
        event = provider.parse_webhook(received.body, received.headers["Stripe-Signature"])
        assert event.id.startswith("evt_")
        assert event.type == "payment_intent.succeeded"
        assert event.payment is not None
        assert (event.payment.status, event.payment.psp_reference, event.payment.reference) == (
            PaymentStatus.succeeded,
            pi,
            reference,
        )
        assert event.payment.amount == 4200
        assert event.created.tzinfo is UTC
        header = received.headers["Stripe-Signature"]
        with pytest.raises(WebhookVerificationError):
            provider.parse_webhook(received.body.replace(b"4200", b"4201"), header)
        with pytest.raises(WebhookVerificationError):
            provider.parse_webhook(received.body, None)
        forged = header.split(",v1=")[0] + ",v1=" + "0" * 64
        with pytest.raises(WebhookVerificationError):
            provider.parse_webhook(received.body, forged)

    def test_stale_and_future_webhooks_are_refused(
        self, provider: StripePaymentProvider, peer: PspPeer
    ) -> None:
        """A correctly signed event outside the 300 s tolerance, either way, is refused."""
        import stripe

        body = json.dumps(
            {
                "id": "evt_x",
                "object": "event",
                "type": "payment_intent.created",
                "created": int(time.time()),
                "data": {
                    "object": {
                        "id": "pi_x",
                        "object": "payment_intent",
                        "status": "requires_payment_method",
                    }
                },
            }
        )
        for skew in (-301, 400):
            header = stripe.WebhookSignature.generate_signature_header(
                body, peer.webhook_secret, int(time.time()) + skew
            )
            with pytest.raises(WebhookVerificationError, match="tolerance"):
                provider.parse_webhook(body.encode(), header)
        fresh = stripe.WebhookSignature.generate_signature_header(body, peer.webhook_secret)
        assert provider.parse_webhook(body.encode(), fresh).payment is not None


class TestStripeAdapterOnLocalstripe(StripeAdapterContract):
    """The contract against localstripe."""

    @pytest.fixture
    def peer(self, localstripe: LocalStripe) -> PspPeer:
        secret = "whsec_contract_" + secrets.token_hex(8)

        def register(url: str) -> None:
            httpx.post(
                localstripe.url + "/_config/webhooks/contract",
                data={"url": url, "secret": secret},
                timeout=10,
            ).raise_for_status()

        return PspPeer("localstripe", localstripe.url, localstripe.api_key, secret, register)


class TestStripeAdapterOnSandbox(StripeAdapterContract):
    """The contract against the PSP sandbox, plus what only the sandbox implements."""

    @pytest.fixture
    def peer(self, psp_sandbox: SandboxServer) -> Iterator[PspPeer]:
        def register(url: str) -> None:
            psp_sandbox.set_endpoints(url)

        yield PspPeer(
            "sandbox",
            psp_sandbox.url,
            psp_sandbox.secret_key,
            psp_sandbox.webhook_secret,
            register,
        )
        psp_sandbox.clear_faults()

    @pytest.mark.parametrize(
        "number",
        [
            c.number
            for c in TEST_CARDS
            if c.outcome != "succeeded" and c.outcome != "test_mode_live_card"
        ],
    )
    def test_every_decline_card(self, provider: StripePaymentProvider, number: str) -> None:
        """Each decline card maps to its Stripe decline code and message, with the pi_ id."""
        expected = DECLINES[next(c.outcome for c in TEST_CARDS if c.number == number)]
        _, outcome = self.pay(provider, number=number)
        assert outcome.status is PaymentStatus.failed
        assert outcome.decline_code == expected.decline_code
        assert outcome.failure_code == expected.code
        assert outcome.failure_message == expected.message
        assert pi_of(outcome)
        assert provider.retrieve(pi_of(outcome)).status is PaymentStatus.failed

    def test_a_bad_card_is_rejected(self, provider: StripePaymentProvider) -> None:
        """A Luhn-invalid number is refused at tokenization with incorrect_number."""
        with pytest.raises(CardRejected) as caught:
            provider.create_payment_method(self.card("4242424242424241"))
        assert caught.value.code == "incorrect_number"
        assert "4242" not in str(caught.value)

    def test_authorize_is_idempotent(self, provider: StripePaymentProvider) -> None:
        """The same key replays the same payment; reused with other values it is refused."""
        pm = provider.create_payment_method(self.card())
        key, reference = _key(), _reference()
        request = AuthorizationRequest(reference, 1000, "eur", pm.psp_reference)
        first = provider.authorize(request, idempotency_key=key)
        again = provider.authorize(request, idempotency_key=key)
        assert first == again
        with pytest.raises(PspIdempotencyError):
            provider.authorize(
                AuthorizationRequest(reference, 1001, "eur", pm.psp_reference),
                idempotency_key=key,
            )

    def test_over_refund_is_refused(self, provider: StripePaymentProvider) -> None:
        """Refunding more than was captured raises PspRequestError amount_too_large."""
        _, paid = self.pay(provider, amount=1000)
        with pytest.raises(PspRequestError) as caught:
            provider.refund(pi_of(paid), amount=1001, idempotency_key=_key())
        assert (caught.value.code, caught.value.param) == ("amount_too_large", "amount")

    def test_retrieve_by_reference(self, provider: StripePaymentProvider) -> None:
        """Our reference finds the payment (search on metadata); an unknown one finds nothing."""
        reference, paid = self.pay(provider, capture=False)
        found = provider.retrieve_by_reference(reference)
        assert found is not None
        assert (found.psp_reference, found.status) == (
            paid.psp_reference,
            PaymentStatus.requires_capture,
        )
        assert provider.retrieve_by_reference(_reference()) is None
        with pytest.raises(PspRequestError):
            provider.retrieve_by_reference("x' OR status:'succeeded")

    def test_checkout_session(self, provider: StripePaymentProvider) -> None:
        """A checkout session has a hosted URL, our reference and its expiry."""
        expires = datetime.now(UTC) + timedelta(hours=2)
        session = provider.create_checkout_session(
            CheckoutRequest(
                reference="ps_" + secrets.token_hex(6),
                amount=2599,
                currency="EUR",
                success_url="https://merchant.example/ok",
                cancel_url="https://merchant.example/cancel",
                description="Order 42",
                expires_at=expires,
            ),
            idempotency_key=_key(),
        )
        assert session.psp_reference.startswith("cs_test_")
        assert session.status is CheckoutStatus.open
        assert session.url and session.url.endswith(session.psp_reference)
        assert (session.amount, session.currency) == (2599, "eur")
        assert session.expires_at == expires.replace(microsecond=0)
        assert session.reference and session.reference.startswith("ps_")

    def test_timeout_is_unknown_and_retrieve_resolves_it(
        self, provider: StripePaymentProvider, psp_sandbox: SandboxServer, peer: PspPeer
    ) -> None:
        """A PSP answer lost to a timeout is `unknown`; retrieve_by_reference finds the truth."""
        impatient = StripePaymentProvider(
            api_key=SecretKey(peer.api_key),
            webhook_secret=SecretKey(peer.webhook_secret),
            api_base=peer.url,
            connect_timeout_s=1.0,
            read_timeout_s=0.5,
        )
        pm = provider.create_payment_method(self.card())
        psp_sandbox.fault(kind="timeout", next=1, hold_s=3, execute=True)
        reference = _reference()
        outcome = impatient.authorize(
            AuthorizationRequest(reference, 1200, "eur", pm.psp_reference),
            idempotency_key=_key(),
        )
        assert outcome.status is PaymentStatus.unknown
        assert outcome.psp_reference is None and outcome.reference == reference
        resolved = provider.retrieve_by_reference(reference)
        assert resolved is not None and resolved.status is PaymentStatus.succeeded

    def test_5xx_is_unknown(
        self, provider: StripePaymentProvider, psp_sandbox: SandboxServer
    ) -> None:
        """A 5xx from the PSP is an unknown outcome, not a failure."""
        _, held = self.pay(provider, capture=False)
        psp_sandbox.fault(kind="error", status=502, next=1)
        outcome = provider.capture(pi_of(held), idempotency_key=_key())
        assert outcome.status is PaymentStatus.unknown
        assert outcome.psp_reference == held.psp_reference

    def test_connection_refused_is_unknown(self, peer: PspPeer) -> None:
        """No PSP listening: the outcome is unknown, never guessed."""
        gone = StripePaymentProvider(
            api_key=SecretKey(peer.api_key),
            webhook_secret=SecretKey(peer.webhook_secret),
            api_base=f"http://127.0.0.1:{free_port()}",
            connect_timeout_s=0.5,
        )
        outcome = gone.authorize(
            AuthorizationRequest(_reference(), 100, "eur", "pm_x"), idempotency_key=_key()
        )
        assert outcome.status is PaymentStatus.unknown

    def test_checkout_completed_webhook(
        self, provider: StripePaymentProvider, hooks: RecordingServer
    ) -> None:
        """Paying the hosted page sends checkout.session.completed, normalized with our ids."""
        reference = "ps_" + secrets.token_hex(6)
        session = provider.create_checkout_session(
            CheckoutRequest(reference, 500, "eur", "http://127.0.0.1:9/ok"),
            idempotency_key=_key(),
        )
        assert session.url is not None
        paid = httpx.post(
            session.url, data={"number": "4242424242424242", "exp": "12/34", "cvc": "123"}
        )
        assert paid.status_code == 303
        wait_until(
            lambda: any(
                json.loads(r.body)["type"] == "checkout.session.completed"
                for r in hooks.for_object(session.psp_reference)
            )
        )
        received = next(
            r
            for r in hooks.for_object(session.psp_reference)
            if json.loads(r.body)["type"] == "checkout.session.completed"
        )
        event = provider.parse_webhook(received.body, received.headers["Stripe-Signature"])
        assert event.checkout_session is not None
        assert event.checkout_session.status is CheckoutStatus.complete
        assert event.checkout_session.reference == reference
        assert event.checkout_session.payment_reference
        outcome = provider.retrieve(event.checkout_session.payment_reference)
        assert (outcome.status, outcome.reference) == (PaymentStatus.succeeded, reference)

    def test_an_unconfirmed_payment_is_unknown_not_failed(
        self, provider: StripePaymentProvider, psp_sandbox: SandboxServer
    ) -> None:
        """A PaymentIntent that never reached a final state is `unknown`, with the PSP's word."""
        pi = psp_sandbox.stripe_client().v1.payment_intents.create(
            params={"amount": 100, "currency": "eur", "metadata": {"reference": "ch_pending"}}
        )
        outcome = provider.retrieve(pi.id)
        assert outcome.status is PaymentStatus.unknown
        assert outcome.psp_status == "requires_payment_method"
        assert outcome.reference == "ch_pending"

    def test_sdk_body_logging_is_refused(
        self, peer: PspPeer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """STRIPE_LOG=debug would print card data to stderr: the adapter refuses to start."""
        from fincore.settings import SettingsError

        monkeypatch.setenv("STRIPE_LOG", "debug")
        with pytest.raises(SettingsError):
            StripePaymentProvider(
                api_key=SecretKey(peer.api_key),
                webhook_secret=SecretKey(peer.webhook_secret),
                api_base=peer.url,
            )

    def test_plain_http_only_on_loopback(self, peer: PspPeer) -> None:
        """Card data never goes to a PSP over plain HTTP off this machine."""
        from fincore.settings import SettingsError

        with pytest.raises(SettingsError):
            StripePaymentProvider(
                api_key=SecretKey(peer.api_key),
                webhook_secret=SecretKey(peer.webhook_secret),
                api_base="http://psp.example.com",
            )
