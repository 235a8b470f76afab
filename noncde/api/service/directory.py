"""noncde.api (non-CDE): the merchant directory's use cases: merchants, API keys, the raw-card
capability, webhook endpoints and risk rules, each change audited (PCI DSS 10.2.1.2 admin
actions, 10.2.1.5 credential changes, 10.2.1.7 system objects), and API-key authentication.

Secret keys are returned exactly once, by the call that creates them; afterwards only their
keyed digest exists (PCI DSS 8.3.2). Every change names the staff member who made it (8.2.1).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from audit.domain import Actor, ActorType, EventType, Outcome
from noncde.api.domain.errors import InvalidRequest, ResourceMissing
from noncde.api.domain.ids import API_KEY, MERCHANT, WEBHOOK_ENDPOINT, is_id, new_id
from noncde.api.domain.merchants import (
    ApiKey,
    KeyKind,
    Merchant,
    MerchantAuth,
    MerchantStatus,
    RawCardCapability,
    WebhookEndpoint,
    is_publishable_key,
    is_secret_key,
    key_digest,
    key_hint,
    new_publishable_key,
    new_secret_key,
    new_webhook_secret,
)
from noncde.api.domain.risk import DEFAULT_RULES, parse_rules
from noncde.api.ports import AuditTrail, Keyring, MerchantDirectory
from noncde.platform.domain import RuleSet
from noncde.platform.ports import RulesStore

Clock = Callable[[], datetime]
MAX_OVERLAP = timedelta(days=30)
_AUTH_CACHE_SIZE = 10_000


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key as shown once at creation: its record and its value."""

    key: ApiKey
    value: str


@dataclass(frozen=True, slots=True)
class NewMerchant:
    merchant: Merchant
    secret_key: IssuedKey
    publishable_key: IssuedKey


class DirectoryService:
    """Merchant directory administration (the admin CLI) and key authentication (the API)."""

    def __init__(
        self,
        directory: MerchantDirectory,
        keyring: Keyring,
        audit: AuditTrail,
        rules: RulesStore,
        *,
        livemode: bool = False,
        clock: Clock = utc_now,
        auth_cache_s: float = 1.0,
    ) -> None:
        self.directory = directory
        self.keyring = keyring
        self.audit = audit
        self.rules = rules
        self.livemode = livemode
        self.clock = clock
        self._pepper = keyring.pepper()
        # digest -> (answer, monotonic expiry): a key checked in the last `auth_cache_s`
        # seconds is not looked up again, so a revocation takes effect within that time.
        self._auth_cache: dict[str, tuple[MerchantAuth | None, float]] = {}
        self._auth_cache_s = auth_cache_s
        self._cache_lock = threading.Lock()

    # ------------------------------------------------------------ authentication

    def authenticate(self, key: str) -> MerchantAuth | None:
        """The merchant behind an API key, if the key is well-formed, known and usable."""
        if not (is_secret_key(key) or is_publishable_key(key)):
            return None
        digest = key_digest(self._pepper, key)
        now = time.monotonic()
        with self._cache_lock:
            cached = self._auth_cache.get(digest)
        if cached is not None and now < cached[1]:
            return cached[0]
        found = self.directory.authenticate(digest, self.clock())
        if self._auth_cache_s > 0:
            with self._cache_lock:
                if len(self._auth_cache) >= _AUTH_CACHE_SIZE:
                    self._auth_cache.clear()
                self._auth_cache[digest] = (found, now + self._auth_cache_s)
        return found

    def forget_cached_keys(self) -> None:
        """Drop the authentication cache (after a change made in this process)."""
        with self._cache_lock:
            self._auth_cache.clear()

    # ------------------------------------------------------------ helpers

    def _audit(
        self,
        event: EventType,
        actor: str,
        *,
        target: str,
        resource: str,
        details: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        self.audit.record(
            event,
            actor=Actor(actor, ActorType.USER),
            outcome=Outcome.SUCCESS,
            target=target,
            resource=resource,
            details=dict(details or {}),
            reason=reason,
        )

    def _merchant(self, merchant_id: str) -> Merchant:
        merchant = (
            self.directory.get_merchant(merchant_id) if is_id(merchant_id, MERCHANT) else None
        )
        if merchant is None:
            raise ResourceMissing("No such merchant.", param="merchant")
        return merchant

    def _issue(
        self, merchant: Merchant, kind: KeyKind, expires_at: datetime | None = None
    ) -> IssuedKey:
        if kind is KeyKind.SECRET:
            value = new_secret_key(merchant.livemode)
        else:
            value = new_publishable_key(merchant.livemode)
        record = ApiKey(
            id=new_id(API_KEY),
            merchant_id=merchant.id,
            kind=kind,
            hint=key_hint(value),
            created=self.clock(),
            expires_at=expires_at,
        )
        self.directory.add_key(
            record,
            key_digest(self._pepper, value),
            publishable_value=value if kind is KeyKind.PUBLISHABLE else None,
        )
        return IssuedKey(record, value)

    # ------------------------------------------------------------ merchants

    def create_merchant(self, name: str, *, actor: str) -> NewMerchant:
        """A new merchant with one secret and one publishable key (shown once)."""
        name = name.strip()
        if not 0 < len(name) <= 200:
            raise InvalidRequest("A merchant name is 1-200 characters.", param="name")
        merchant = Merchant(
            id=new_id(MERCHANT),
            name=name,
            livemode=self.livemode,
            status=MerchantStatus.ACTIVE,
            created=self.clock(),
        )
        self.directory.create_merchant(merchant)
        self._audit(
            EventType.MERCHANT_CREATE,
            actor,
            target=merchant.id,
            resource="merchant",
            details={"livemode": merchant.livemode},
        )
        secret = self._issue(merchant, KeyKind.SECRET)
        self._audit(
            EventType.API_KEY_CREATE,
            actor,
            target=secret.key.id,
            resource=f"merchant:{merchant.id}",
            details={"kind": "secret", "hint": secret.key.hint},
        )
        publishable = self._issue(merchant, KeyKind.PUBLISHABLE)
        self._audit(
            EventType.API_KEY_CREATE,
            actor,
            target=publishable.key.id,
            resource=f"merchant:{merchant.id}",
            details={"kind": "publishable", "hint": publishable.key.hint},
        )
        return NewMerchant(merchant, secret, publishable)

    def merchants(self) -> list[Merchant]:
        return self.directory.list_merchants()

    def merchant(self, merchant_id: str) -> Merchant:
        return self._merchant(merchant_id)

    def set_merchant_status(self, merchant_id: str, status: str, *, actor: str) -> None:
        self._merchant(merchant_id)
        try:
            chosen = MerchantStatus(status)
        except ValueError:
            raise InvalidRequest("status must be active or disabled", param="status") from None
        self.directory.set_merchant_status(merchant_id, chosen)
        self.forget_cached_keys()
        self._audit(
            EventType.MERCHANT_CONFIG_CHANGE,
            actor,
            target=merchant_id,
            resource="merchant",
            details={"status": str(chosen)},
        )

    # ------------------------------------------------------------ keys

    def create_key(self, merchant_id: str, kind: str, *, actor: str) -> IssuedKey:
        merchant = self._merchant(merchant_id)
        issued = self._issue(merchant, KeyKind(kind))
        self._audit(
            EventType.API_KEY_CREATE,
            actor,
            target=issued.key.id,
            resource=f"merchant:{merchant.id}",
            details={"kind": str(issued.key.kind), "hint": issued.key.hint},
        )
        return issued

    def keys(self, merchant_id: str) -> list[ApiKey]:
        self._merchant(merchant_id)
        return self.directory.list_keys(merchant_id)

    def publishable_key(self, key_id: str) -> str | None:
        return self.directory.publishable_key(key_id)

    def _key(self, key_id: str) -> ApiKey:
        key = self.directory.get_key(key_id) if is_id(key_id, API_KEY) else None
        if key is None:
            raise ResourceMissing("No such API key.", param="key")
        return key

    def rotate_key(
        self, key_id: str, *, overlap: timedelta, actor: str
    ) -> tuple[IssuedKey, ApiKey]:
        """A new key of the same kind; the old one keeps working for `overlap`, then expires."""
        if not timedelta(0) <= overlap <= MAX_OVERLAP:
            raise InvalidRequest("The overlap must be between 0 and 30 days.", param="overlap")
        old = self._key(key_id)
        if old.revoked_at is not None:
            raise InvalidRequest("A revoked key cannot be rotated.", param="key")
        merchant = self._merchant(old.merchant_id)
        issued = self._issue(merchant, old.kind)
        ends = self.clock() + overlap
        self.directory.expire_key(old.id, ends)
        self.forget_cached_keys()
        self._audit(
            EventType.API_KEY_ROTATE,
            actor,
            target=old.id,
            resource=f"merchant:{merchant.id}",
            details={
                "new_key": issued.key.id,
                "new_hint": issued.key.hint,
                "old_expires_at": ends.isoformat(),
                "overlap_s": int(overlap.total_seconds()),
            },
        )
        refreshed = self.directory.get_key(old.id)
        assert refreshed is not None
        return issued, refreshed

    def revoke_key(self, key_id: str, *, actor: str, reason: str | None = None) -> ApiKey:
        key = self._key(key_id)
        self.directory.revoke_key(key.id, self.clock())
        self.forget_cached_keys()
        self._audit(
            EventType.API_KEY_REVOKE,
            actor,
            target=key.id,
            resource=f"merchant:{key.merchant_id}",
            details={"kind": str(key.kind), "hint": key.hint},
            reason=reason,
        )
        revoked = self.directory.get_key(key.id)
        assert revoked is not None
        return revoked

    # ------------------------------------------------------------ capabilities

    def raw_card(self, merchant_id: str) -> RawCardCapability:
        self._merchant(merchant_id)
        return self.directory.raw_card(merchant_id)

    def grant_raw_card(
        self, merchant_id: str, *, attestation_expires_on: date, actor: str, reason: str | None
    ) -> RawCardCapability:
        """Allow S2S raw card data until the PCI attestation expires (PCI DSS 12.8)."""
        self._merchant(merchant_id)
        if attestation_expires_on < self.clock().date():
            raise InvalidRequest(
                "The attestation has already expired.", param="attestation_expires_on"
            )
        self.directory.set_raw_card(merchant_id, True, attestation_expires_on, self.clock())
        self.forget_cached_keys()
        for event in (EventType.CAPABILITY_GRANT, EventType.RAW_CARD_API_ENABLE):
            self._audit(
                event,
                actor,
                target=merchant_id,
                resource="capability:raw_card_data",
                details={"attestation_expires_on": attestation_expires_on.isoformat()},
                reason=reason,
            )
        return self.directory.raw_card(merchant_id)

    def revoke_raw_card(
        self, merchant_id: str, *, actor: str, reason: str | None
    ) -> RawCardCapability:
        self._merchant(merchant_id)
        current = self.directory.raw_card(merchant_id)
        self.directory.set_raw_card(
            merchant_id, False, current.attestation_expires_on, self.clock()
        )
        self.forget_cached_keys()
        for event in (EventType.CAPABILITY_REVOKE, EventType.RAW_CARD_API_DISABLE):
            self._audit(
                event,
                actor,
                target=merchant_id,
                resource="capability:raw_card_data",
                details={},
                reason=reason,
            )
        return self.directory.raw_card(merchant_id)

    # ------------------------------------------------------------ webhook endpoints

    def add_webhook_endpoint(
        self, merchant_id: str, url: str, events: Sequence[str], *, actor: str
    ) -> tuple[WebhookEndpoint, str]:
        """A webhook endpoint and its signing secret (shown now; sealed at rest)."""
        self._merchant(merchant_id)
        parts = urlsplit(url)
        if parts.scheme not in {"https", "http"} or not parts.hostname or len(url) > 2000:
            raise InvalidRequest("The webhook URL must be an absolute http(s) URL.", param="url")
        if parts.scheme == "http" and self.livemode:
            raise InvalidRequest("Live webhook endpoints must use https.", param="url")
        chosen = tuple(sorted(set(events))) or ("*",)
        endpoint = WebhookEndpoint(
            id=new_id(WEBHOOK_ENDPOINT),
            merchant_id=merchant_id,
            url=url,
            enabled_events=chosen,
            created=self.clock(),
        )
        secret = new_webhook_secret()
        self.directory.add_webhook_endpoint(endpoint, self.keyring.seal(secret, endpoint.id))
        self._audit(
            EventType.MERCHANT_CONFIG_CHANGE,
            actor,
            target=endpoint.id,
            resource=f"merchant:{merchant_id}",
            details={"webhook_endpoint": "created", "enabled_events": list(chosen)},
        )
        return endpoint, secret

    def webhook_endpoints(
        self, merchant_id: str | None = None, *, with_secrets: bool = False
    ) -> list[tuple[WebhookEndpoint, str | None]]:
        found = self.directory.list_webhook_endpoints(merchant_id)
        return [
            (endpoint, self.keyring.open(sealed, endpoint.id) if with_secrets else None)
            for endpoint, sealed in found
        ]

    def disable_webhook_endpoint(self, endpoint_id: str, *, actor: str) -> None:
        if not is_id(endpoint_id, WEBHOOK_ENDPOINT):
            raise ResourceMissing("No such webhook endpoint.", param="endpoint")
        try:
            self.directory.disable_webhook_endpoint(endpoint_id, self.clock())
        except LookupError:
            raise ResourceMissing("No such webhook endpoint.", param="endpoint") from None
        self._audit(
            EventType.MERCHANT_CONFIG_CHANGE,
            actor,
            target=endpoint_id,
            resource="webhook_endpoint",
            details={"webhook_endpoint": "disabled"},
        )

    # ------------------------------------------------------------ risk rules

    def active_rules(self) -> RuleSet:
        return self.rules.active()

    def publish_rules(
        self, rules: Sequence[Mapping[str, Any]], *, actor: str, actor_type: str = ActorType.USER
    ) -> RuleSet:
        """Validate and publish a rule set as the next version (audited)."""
        current = self.rules.active_version()
        parse_rules(list(rules), current + 1)  # raises InvalidRules naming the bad rule
        published = self.rules.publish(list(rules), expected_version=current)
        self.audit.record(
            EventType.RULE_CHANGE if current else EventType.RULE_CREATE,
            actor=Actor(actor, actor_type),
            outcome=Outcome.SUCCESS,
            target=f"risk_rules:v{published.version}",
            resource="risk_rules",
            details={"version": published.version, "rules": len(published.rules)},
        )
        return published

    def seed_default_rules(self) -> RuleSet | None:
        """Publish the default rules when none were ever published (first start)."""
        if self.rules.active_version() != 0:
            return None
        return self.publish_rules(list(DEFAULT_RULES), actor="api", actor_type=ActorType.SERVICE)
