"""cde.vault (CDE): the composition root: picks adapters from allow-listed URL schemes.

`build_vault` wires the vault role (and the operator CLI), `build_ingress` the ingress role.
Only this module imports `cde.vault.adapters`.
"""

from __future__ import annotations

import asyncio
import getpass
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from audit.bootstrap import open_audit_log
from audit.domain import Actor, ActorType, EventType, Outcome
from cde.vault.config import IngressSettings, VaultSettings
from cde.vault.domain import Kek, KekState, ReusePolicy
from cde.vault.ports import (
    AuditRecorder,
    AuditTrail,
    CardVault,
    ChargeApi,
    CvcStore,
    KeyProvider,
    MerchantDirectory,
    RateLimiter,
    VaultStore,
)
from cde.vault.service import IngressService, Keyring, VaultAdmin, VaultService
from fincore.identity import ServiceCredentials
from fincore.settings import SettingsError, choose_adapter

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def open_cde_audit(component: str, audit: AuditRecorder | None = None) -> AuditTrail:
    """The CDE audit log (`FINCORE_CDE_AUDIT_URL`, default a file under var/), off the loop."""
    from cde.vault.adapters.audit import ThreadedAuditTrail

    if audit is not None:
        return ThreadedAuditTrail(audit)
    log = open_audit_log("cde", component)
    return ThreadedAuditTrail(log, owned=log)


# ---------------------------------------------------------------- adapter choices


def build_store(url: str, *, migrate: bool = True) -> VaultStore:
    def sql(chosen: str) -> VaultStore:
        from cde.vault.adapters.sql import SqlVaultStore, create_vault_engine, upgrade_schema

        engine = create_vault_engine(chosen)
        if migrate:
            upgrade_schema(engine)
        return SqlVaultStore(engine)

    def memory(_chosen: str) -> VaultStore:
        from cde.vault.adapters.memory import MemoryVaultStore

        return MemoryVaultStore()

    return choose_adapter(
        "FINCORE_VAULT_DB_URL", url, {"sqlite": sql, "postgresql": sql, "memory": memory}
    )


def build_key_provider(url: str, *, transit_token: str | None = None) -> KeyProvider:
    def key_file(chosen: str) -> KeyProvider:
        from cde.vault.adapters.files import FileKeyProvider

        parts = urlsplit(chosen)
        return FileKeyProvider(Path(unquote(parts.netloc + parts.path)))

    def kms(chosen: str) -> KeyProvider:
        from cde.vault.adapters.aws_kms import KmsKeyProvider

        parts = urlsplit(chosen)
        key_id = unquote(parts.netloc + parts.path).lstrip("/")
        if not key_id:
            raise SettingsError("FINCORE_VAULT_KEYS_URL: aws-kms: needs a key id, ARN or alias")
        region = parse_qs(parts.query).get("region", [None])[0]
        return KmsKeyProvider(key_id, region=region)

    def transit(chosen: str) -> KeyProvider:
        from cde.vault.adapters.hashicorp import TransitKeyProvider

        parts = urlsplit(chosen)
        scheme = parts.scheme.split("+", 1)[1] if "+" in parts.scheme else "https"
        mount, _, key = parts.path.strip("/").rpartition("/")
        if not key or not transit_token:
            raise SettingsError(
                "FINCORE_VAULT_KEYS_URL=hashicorp+https://host:port/<mount>/<key> needs "
                "FINCORE_VAULT_TRANSIT_TOKEN (or _TOKEN_FILE)"
            )
        ca = parse_qs(parts.query).get("ca", [None])[0]
        return TransitKeyProvider(
            address=f"{scheme}://{parts.netloc}",
            token=transit_token,
            key_name=key,
            mount_point=mount or "transit",
            verify=ca if ca else True,
        )

    return choose_adapter(
        "FINCORE_VAULT_KEYS_URL",
        url,
        {"file": key_file, "aws-kms": kms, "hashicorp": transit},
    )


def build_cvc_store(url: str) -> CvcStore:
    def memory(_chosen: str) -> CvcStore:
        from cde.vault.adapters.memory import MemoryCvcStore

        return MemoryCvcStore()

    def redis(chosen: str) -> CvcStore:
        from cde.vault.adapters.redis import RedisCvcStore

        return RedisCvcStore(chosen)

    return choose_adapter(
        "FINCORE_VAULT_CVC_URL", url, {"memory": memory, "redis": redis, "rediss": redis}
    )


def build_rate_limiter(url: str, rate: float, burst: int) -> RateLimiter:
    def memory(_chosen: str) -> RateLimiter:
        from cde.vault.adapters.memory import MemoryRateLimiter

        return MemoryRateLimiter(rate, burst)

    def redis(chosen: str) -> RateLimiter:
        from cde.vault.adapters.redis import RedisRateLimiter

        return RedisRateLimiter(chosen, rate, burst)

    return choose_adapter(
        "FINCORE_VAULT_RATE_URL", url, {"memory": memory, "redis": redis, "rediss": redis}
    )


# ---------------------------------------------------------------- the vault


@dataclass
class VaultRuntime:
    """Everything the vault role runs on; `close()` releases it."""

    settings: VaultSettings
    store: VaultStore
    provider: KeyProvider
    cvc_store: CvcStore
    rate_limiter: RateLimiter
    audit: AuditTrail
    keyring: Keyring
    service: VaultService
    clock: Clock
    component: str
    _key_check: tuple[bool, float] = field(default=(False, 0.0))

    def admin(self, actor: Actor) -> VaultAdmin:
        return VaultAdmin(
            store=self.store,
            provider=self.provider,
            keyring=self.keyring,
            cvc_store=self.cvc_store,
            audit=self.audit,
            clock=self.clock,
            actor=actor,
        )

    async def start(self) -> Kek:
        """Register the configured KEK on first start and check it can be used."""
        kek = await self.admin(Actor(self.component, ActorType.SERVICE)).ensure_primary_kek()
        if not await asyncio.to_thread(self.provider.check, kek.kek_id):
            raise SettingsError("the primary key-encryption key cannot be used")
        return kek

    async def keys_ready(self) -> bool:
        """Readiness: the primary KEK answers (checked at most every 5 s)."""
        ok, checked = self._key_check
        if time.monotonic() - checked < 5.0:
            return ok
        try:
            primary = [k for k in await self.store.keks() if k.state is KekState.PRIMARY]
            ok = bool(primary) and await asyncio.to_thread(self.provider.check, primary[0].kek_id)
        except Exception:  # noqa: BLE001 - readiness: any failure means "not ready"
            ok = False
        self._key_check = (ok, time.monotonic())
        return ok

    async def close(self) -> None:
        self.keyring.forget_all()
        await self.cvc_store.close()
        await self.rate_limiter.close()
        await self.store.close()
        self.audit.close()


def build_vault(
    settings: VaultSettings,
    *,
    component: str = "vault",
    clock: Clock = utc_now,
    audit: AuditRecorder | None = None,
    migrate: bool = True,
) -> VaultRuntime:
    """Wire the vault from its settings (audit: the CDE log unless one is given)."""
    guarded = open_cde_audit(component, audit)
    store = build_store(settings.db_url, migrate=migrate)
    provider = build_key_provider(settings.keys_url, transit_token=settings.transit_token)
    cvc_store = build_cvc_store(settings.cvc_url)
    rate_limiter = build_rate_limiter(settings.rate_url, settings.rate_per_s, settings.rate_burst)
    policy = ReusePolicy(
        max_age_s=settings.key_max_age_s,
        max_uses=settings.key_max_uses,
        decrypt_max_age_s=settings.key_cache_s,
    )
    keyring = Keyring(
        store=store,
        provider=provider,
        audit=guarded,
        policy=policy,
        clock=clock,
        actor=component,
    )
    service = VaultService(
        store=store,
        keyring=keyring,
        cvc_store=cvc_store,
        rate_limiter=rate_limiter,
        audit=guarded,
        clock=clock,
        cvc_ttl_s=settings.cvc_ttl_s,
        detokenize_callers=settings.detokenize_callers,
    )
    return VaultRuntime(
        settings=settings,
        store=store,
        provider=provider,
        cvc_store=cvc_store,
        rate_limiter=rate_limiter,
        audit=guarded,
        keyring=keyring,
        service=service,
        clock=clock,
        component=component,
    )


def operator_actor(env: Mapping[str, str] | None = None) -> Actor:
    """The person running the operator CLI (`FINCORE_VAULT_OPERATOR`, else the login name)."""
    import os

    source = os.environ if env is None else env
    name = source.get("FINCORE_VAULT_OPERATOR", "").strip()
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = "unknown"
    return Actor(id=name, type=ActorType.USER)


# ---------------------------------------------------------------- the ingress


@dataclass
class IngressRuntime:
    settings: IngressSettings
    directory: MerchantDirectory
    vault: CardVault
    api: ChargeApi
    audit: AuditTrail
    service: IngressService

    async def close(self) -> None:
        await self.directory.close()
        await self.vault.close()
        await self.api.close()
        self.audit.close()


def build_ingress(
    settings: IngressSettings,
    *,
    credentials: ServiceCredentials | None,
    ca_file: Path | None,
    component: str = "ingress",
    clock: Clock = utc_now,
    audit: AuditRecorder | None = None,
) -> IngressRuntime:
    """Wire the ingress: HTTPS clients for the vault and the API, the CDE audit log."""
    from cde.vault.adapters.http import HttpCardVault, HttpChargeApi, HttpMerchantDirectory

    guarded = open_cde_audit(component, audit)
    directory = HttpMerchantDirectory(settings.api_url, credentials=credentials, ca_file=ca_file)
    vault = HttpCardVault(settings.vault_url, credentials=credentials, ca_file=ca_file)
    api = HttpChargeApi(settings.api_url, credentials=credentials, ca_file=ca_file)
    service = IngressService(directory=directory, vault=vault, api=api, audit=guarded, clock=clock)
    return IngressRuntime(settings, directory, vault, api, guarded, service)


def record_refusal(
    audit: AuditTrail,
    *,
    event: EventType,
    caller: str | None,
    reason: str,
    target: str | None,
    request_id: str | None,
    origin_ip: str | None,
) -> None:
    """Audit a refused service call (an unknown or unauthorized caller)."""
    audit.record(
        event,
        actor=Actor(caller or "unknown", ActorType.SERVICE if caller else ActorType.ANONYMOUS),
        outcome=Outcome.FAILURE,
        target=target,
        resource="vault.api",
        details={},
        request_id=request_id,
        origin_ip=origin_ip,
        reason=reason[:200],
    )
