"""noncde.api adapters, SQL: the merchant directory (merchants, API-key digests, capabilities,
webhook endpoints with sealed secrets)."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, select, update

from noncde.api.adapters.sql.schema import (
    api_keys,
    capabilities,
    from_micros,
    merchants,
    micros,
    webhook_endpoints,
)
from noncde.api.domain.merchants import (
    ApiKey,
    KeyKind,
    Merchant,
    MerchantAuth,
    MerchantStatus,
    RawCardCapability,
    WebhookEndpoint,
)
from noncde.platform.adapters.sql.schema import SqlDatabase

RAW_CARD = "raw_card_data"

_AUTH = select(
    api_keys.c.id,
    api_keys.c.merchant_id,
    api_keys.c.kind,
    api_keys.c.expires_at,
    api_keys.c.revoked_at,
    merchants.c.livemode,
    merchants.c.status,
    capabilities.c.granted,
    capabilities.c.attestation_expires_on,
    capabilities.c.changed_at,
).select_from(
    api_keys.join(merchants, merchants.c.id == api_keys.c.merchant_id).outerjoin(
        capabilities,
        and_(
            capabilities.c.merchant_id == api_keys.c.merchant_id,
            capabilities.c.name == RAW_CARD,
        ),
    )
)


def _merchant(row: Any) -> Merchant:
    created = from_micros(row.created)
    assert created is not None
    return Merchant(row.id, row.name, bool(row.livemode), MerchantStatus(row.status), created)


def _key(row: Any) -> ApiKey:
    created = from_micros(row.created)
    assert created is not None
    return ApiKey(
        id=row.id,
        merchant_id=row.merchant_id,
        kind=KeyKind(row.kind),
        hint=row.hint,
        created=created,
        expires_at=from_micros(row.expires_at),
        revoked_at=from_micros(row.revoked_at),
    )


def _capability(granted: Any, expires: Any, changed: Any) -> RawCardCapability:
    return RawCardCapability(
        granted=bool(granted),
        attestation_expires_on=date.fromisoformat(expires) if expires else None,
        changed_at=from_micros(changed),
    )


def _endpoint(row: Any) -> WebhookEndpoint:
    created = from_micros(row.created)
    assert created is not None
    return WebhookEndpoint(
        id=row.id,
        merchant_id=row.merchant_id,
        url=row.url,
        enabled_events=tuple(json.loads(row.enabled_events)),
        created=created,
        disabled_at=from_micros(row.disabled_at),
    )


class SqlMerchantDirectory:
    """MerchantDirectory on the API database. Authentication is one indexed lookup (by the
    key's digest) joined to the merchant and its raw-card capability."""

    def __init__(self, db: SqlDatabase) -> None:
        self.db = db

    def authenticate(self, digest: str, now: datetime) -> MerchantAuth | None:
        with self.db.read() as conn:
            row = conn.execute(_AUTH.where(api_keys.c.digest == digest)).one_or_none()
        if row is None or row.revoked_at is not None or row.status != MerchantStatus.ACTIVE:
            return None
        if row.expires_at is not None and micros(now) >= row.expires_at:
            return None
        return MerchantAuth(
            merchant_id=row.merchant_id,
            key_id=row.id,
            kind=KeyKind(row.kind),
            livemode=bool(row.livemode),
            raw_card=_capability(row.granted, row.attestation_expires_on, row.changed_at),
        )

    def create_merchant(self, merchant: Merchant) -> None:
        with self.db.write() as conn:
            conn.execute(
                merchants.insert().values(
                    id=merchant.id,
                    name=merchant.name,
                    livemode=merchant.livemode,
                    status=str(merchant.status),
                    created=micros(merchant.created),
                )
            )

    def get_merchant(self, merchant_id: str) -> Merchant | None:
        with self.db.read() as conn:
            row = conn.execute(select(merchants).where(merchants.c.id == merchant_id)).one_or_none()
        return None if row is None else _merchant(row)

    def list_merchants(self) -> list[Merchant]:
        with self.db.read() as conn:
            rows = conn.execute(select(merchants).order_by(merchants.c.created)).all()
        return [_merchant(row) for row in rows]

    def set_merchant_status(self, merchant_id: str, status: str) -> None:
        with self.db.write() as conn:
            changed = conn.execute(
                update(merchants)
                .where(merchants.c.id == merchant_id)
                .values(status=str(MerchantStatus(status)))
            ).rowcount
        if changed != 1:
            raise LookupError(merchant_id)

    def add_key(self, key: ApiKey, digest: str, publishable_value: str | None = None) -> None:
        with self.db.write() as conn:
            self._require_merchant(conn, key.merchant_id)
            conn.execute(
                api_keys.insert().values(
                    id=key.id,
                    merchant_id=key.merchant_id,
                    kind=str(key.kind),
                    digest=digest,
                    publishable_value=publishable_value,
                    hint=key.hint,
                    created=micros(key.created),
                    expires_at=micros(key.expires_at) if key.expires_at else None,
                    revoked_at=None,
                )
            )

    def get_key(self, key_id: str) -> ApiKey | None:
        with self.db.read() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).one_or_none()
        return None if row is None else _key(row)

    def list_keys(self, merchant_id: str) -> list[ApiKey]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(api_keys)
                .where(api_keys.c.merchant_id == merchant_id)
                .order_by(api_keys.c.created)
            ).all()
        return [_key(row) for row in rows]

    def publishable_key(self, key_id: str) -> str | None:
        with self.db.read() as conn:
            return conn.execute(
                select(api_keys.c.publishable_value).where(api_keys.c.id == key_id)
            ).scalar_one_or_none()

    def expire_key(self, key_id: str, at: datetime) -> None:
        when = micros(at)
        with self.db.write() as conn:
            found = conn.execute(
                select(api_keys.c.expires_at).where(api_keys.c.id == key_id)
            ).one_or_none()
            if found is None:
                raise LookupError(key_id)
            if found.expires_at is None or found.expires_at > when:
                conn.execute(
                    update(api_keys).where(api_keys.c.id == key_id).values(expires_at=when)
                )

    def revoke_key(self, key_id: str, at: datetime) -> None:
        with self.db.write() as conn:
            changed = conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=micros(at))
            ).rowcount
            if changed != 1:
                exists = conn.execute(
                    select(func.count()).select_from(api_keys).where(api_keys.c.id == key_id)
                ).scalar_one()
                if not exists:
                    raise LookupError(key_id)

    def raw_card(self, merchant_id: str) -> RawCardCapability:
        with self.db.read() as conn:
            row = conn.execute(
                select(capabilities).where(
                    capabilities.c.merchant_id == merchant_id, capabilities.c.name == RAW_CARD
                )
            ).one_or_none()
        if row is None:
            return RawCardCapability(False, None, None)
        return _capability(row.granted, row.attestation_expires_on, row.changed_at)

    def set_raw_card(
        self, merchant_id: str, granted: bool, expires_on: date | None, at: datetime
    ) -> None:
        values = {
            "granted": granted,
            "attestation_expires_on": expires_on.isoformat() if expires_on else None,
            "changed_at": micros(at),
        }
        with self.db.write() as conn:
            self._require_merchant(conn, merchant_id)
            conn.execute(
                self.db.insert(capabilities)
                .values(merchant_id=merchant_id, name=RAW_CARD, **values)
                .on_conflict_do_update(index_elements=["merchant_id", "name"], set_=values)
            )

    def add_webhook_endpoint(self, endpoint: WebhookEndpoint, sealed_secret: str) -> None:
        with self.db.write() as conn:
            self._require_merchant(conn, endpoint.merchant_id)
            conn.execute(
                webhook_endpoints.insert().values(
                    id=endpoint.id,
                    merchant_id=endpoint.merchant_id,
                    url=endpoint.url,
                    enabled_events=json.dumps(list(endpoint.enabled_events)),
                    sealed_secret=sealed_secret,
                    created=micros(endpoint.created),
                    disabled_at=None,
                )
            )

    def list_webhook_endpoints(
        self, merchant_id: str | None = None
    ) -> list[tuple[WebhookEndpoint, str]]:
        query = select(webhook_endpoints).order_by(webhook_endpoints.c.created)
        if merchant_id is not None:
            query = query.where(webhook_endpoints.c.merchant_id == merchant_id)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [(_endpoint(row), row.sealed_secret) for row in rows]

    def disable_webhook_endpoint(self, endpoint_id: str, at: datetime) -> None:
        with self.db.write() as conn:
            changed = conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == endpoint_id)
                .values(disabled_at=micros(at))
            ).rowcount
        if changed != 1:
            raise LookupError(endpoint_id)

    @staticmethod
    def _require_merchant(conn: Any, merchant_id: str) -> None:
        found = conn.execute(
            select(merchants.c.id).where(merchants.c.id == merchant_id)
        ).scalar_one_or_none()
        if found is None:
            raise LookupError(merchant_id)
