"""cde.vault (CDE): the card ingress: merchant-facing edge for server-to-server raw cards.

Order matters (docs/vault.md "Card ingress"): the merchant is authenticated and its raw-card
permission checked from the request headers alone, BEFORE the body (the card) is read. Only
then is the card tokenized by the vault and the charge forwarded to the non-CDE API with the
card replaced by the token. A refused merchant's card is never parsed, stored or logged
(PCI DSS 3.2.1: no storage without a business need; 12.8: only attested merchants).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from audit.domain import Actor, ActorType, EventType, Outcome
from cde.vault.domain import (
    InvalidCard,
    InvalidRequest,
    MerchantAuthorization,
    MerchantUnauthenticated,
    RawCardDataNotPermitted,
    UpstreamUnavailable,
)
from cde.vault.domain.merchants import raw_card_refusal
from cde.vault.ports import ApiAnswer, AuditTrail, CardVault, ChargeApi, MerchantDirectory
from cde.vault.service.vault import Caller
from fincore.cards import find_card_data
from fincore.sensitive import SecretKey

Clock = Callable[[], datetime]
_BEARER = re.compile(r"^Bearer (sk_(?:test|live)_[A-Za-z0-9_]{8,200})$")
_CARD_FIELDS = frozenset({"number", "exp_month", "exp_year", "cvc", "name"})


class IngressService:
    """Authorize the merchant, tokenize the card, forward the charge, return the API's answer."""

    def __init__(
        self,
        *,
        directory: MerchantDirectory,
        vault: CardVault,
        api: ChargeApi,
        audit: AuditTrail,
        clock: Clock,
    ) -> None:
        self.directory = directory
        self.vault = vault
        self.api = api
        self.audit = audit
        self.clock = clock

    async def _audit(
        self,
        event: EventType,
        caller: Caller,
        outcome: Outcome,
        *,
        merchant_id: str | None,
        reason: str | None = None,
        target: str | None = None,
    ) -> None:
        await self.audit.arecord(
            event,
            actor=Actor(
                id=merchant_id or "unknown",
                type=ActorType.MERCHANT if merchant_id else ActorType.ANONYMOUS,
            ),
            outcome=outcome,
            target=target or merchant_id,
            resource="ingress.charges",
            details={},
            request_id=caller.request_id,
            origin_ip=caller.origin_ip,
            reason=reason,
        )

    async def authorize(self, authorization: str | None, caller: Caller) -> MerchantAuthorization:
        """The merchant behind the `Authorization` header, if it may send raw cards today.

        Raises `MerchantUnauthenticated` (401), `RawCardDataNotPermitted` (403) and
        `UpstreamUnavailable` (503). Reads nothing of the request body.
        """
        match = _BEARER.match(authorization or "")
        if match is None:
            await self._audit(
                EventType.AUTHENTICATION_FAILURE,
                caller,
                Outcome.FAILURE,
                merchant_id=None,
                reason="missing_or_malformed_api_key",
            )
            raise MerchantUnauthenticated("A valid secret API key is required.")
        try:
            merchant = await self.directory.authenticate(SecretKey(match.group(1)))
        except MerchantUnauthenticated:
            await self._audit(
                EventType.API_KEY_INVALID,
                caller,
                Outcome.FAILURE,
                merchant_id=None,
                reason="unknown_or_revoked_api_key",
            )
            raise
        register = await self.vault.attestation(merchant.merchant_id)
        refusal = raw_card_refusal(merchant, register, self.clock().date())
        if refusal is not None:
            await self._audit(
                EventType.ACCESS_DENIED,
                caller,
                Outcome.FAILURE,
                merchant_id=merchant.merchant_id,
                reason=refusal,
            )
            raise RawCardDataNotPermitted(
                "This account may not send raw card data; use the PSP's SDK or hosted page.",
                code="raw_card_data_not_permitted",
            )
        return merchant

    async def charge(
        self,
        merchant: MerchantAuthorization,
        body: object,
        *,
        authorization: str,
        idempotency_key: str | None,
        caller: Caller,
    ) -> ApiAnswer:
        """Tokenize the body's card and forward the charge; the API's answer, unchanged."""
        if not isinstance(body, Mapping):
            raise InvalidRequest("The request body must be a JSON object.")
        method = body.get("payment_method")
        if not isinstance(method, Mapping) or method.get("type") != "card":
            raise InvalidRequest(
                "payment_method must be {type: card, card: {...}} on this endpoint.",
                param="payment_method",
            )
        card = method.get("card")
        if not isinstance(card, Mapping):
            raise InvalidRequest(
                "Missing required param: payment_method[card].", param="payment_method[card]"
            )
        unknown = sorted(set(card) - _CARD_FIELDS)
        if unknown:
            raise InvalidRequest(
                "Unknown card field.", param=f"payment_method[card][{unknown[0][:40]}]"
            )
        rest = {k: v for k, v in body.items() if k != "payment_method"}
        rest_method = {k: v for k, v in method.items() if k not in {"card", "type"}}
        if find_card_data(rest) or find_card_data(rest_method):
            # Card data outside payment_method.card would reach the non-CDE zone: refuse it.
            raise InvalidRequest(
                "Card data is accepted only in payment_method[card].",
                param="payment_method",
            )
        try:
            token, display = await self.vault.tokenize(merchant.merchant_id, card)
        except (InvalidCard, InvalidRequest) as exc:
            # The vault names `card[number]`; the merchant sent `payment_method[card][number]`.
            if exc.param and exc.param.startswith("card"):
                exc.param = "payment_method[card]" + exc.param[len("card") :]
            raise
        forwarded: dict[str, Any] = dict(rest)
        forwarded["payment_method"] = {
            "type": "vault_token",
            "token": token,
            "card": display.as_dict(),
        }
        try:
            answer = await self.api.create_charge(authorization, idempotency_key, forwarded)
        except UpstreamUnavailable:
            # Unknown outcome: the API may hold the charge (and the token); keep both. An unused
            # token is removed by the retention purge.
            raise
        if answer.replayed or 400 <= answer.status < 500:
            # The API did not take this token (refused, or replayed an earlier charge that used
            # its own token): delete it now rather than keep card data nobody needs.
            await self.vault.delete(token, merchant.merchant_id)
        return answer
