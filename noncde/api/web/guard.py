"""noncde.api (non-CDE): the card-data guard, the outermost ASGI middleware of the API.

PCI DSS checklist A2 (S1 §4 "CHD received via an unintended channel", 3.2.1): a request that
carries a card-like number (Luhn-valid 13-19 digits with an issuer prefix, raw or grouped) or a
card field name (`number`, `pan`, `cvc`, `cvv`, `security_code`…) anywhere — path, query string,
header names and values, JSON body keys and values (metadata, description), form bodies, or the
Idempotency-Key — is answered with a generic 400 before any other code sees it: before the
access log, the metrics, the request-id binding, validation, authentication or storage. Nothing
of the request is logged; only the kind of place (`path`, `query`, `header`, `body`) is counted.

The rules are the shared kernel's (`fincore.card_guard`, used by every non-CDE entry point);
the API's refusal names the card ingress, where raw cards belong.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp

from fincore import card_guard
from fincore.card_guard import inspect_body, inspect_head

__all__ = ["CardDataGuard", "inspect_body", "inspect_head"]


class CardDataGuard(card_guard.CardDataGuard):
    """`fincore.card_guard.CardDataGuard` with a JSON refusal that points to the card ingress."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        ingress_url: str,
        max_body: int,
        on_refusal: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(
            app,
            max_body=max_body,
            on_refusal=on_refusal,
            message=(
                "Card data is not accepted by this API and was discarded unread. Send raw card "
                f"data only to the card ingress ({ingress_url}/v1/charges) if your account is "
                "permitted, or use a PSP token or a payment session."
            ),
        )
