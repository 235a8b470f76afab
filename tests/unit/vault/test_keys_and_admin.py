"""Data-key reuse bounds and caching, KEK rotation with re-wrap and retirement, re-keying,
the retention purge (clock travel), crypto-shredding and the attestation register."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import date, timedelta

import pytest

from audit.domain import Actor, ActorType
from cde.vault.domain import KekState, KeyPurpose, KeyStateError, KeyUnavailable, TokenDestroyed
from cde.vault.service import Caller
from tests.unit.vault.conftest import CARD, Wired

INGRESS, GATEWAY = Caller("ingress"), Caller("gateway")
OPERATOR = Actor("ops-alice", ActorType.USER)


def test_a_data_key_seals_at_most_max_uses_records(make_vault: Callable[..., Wired]) -> None:
    """With max_uses=3, seven records use three record data keys (3+3+1)."""
    vault = make_vault(FINCORE_VAULT_KEY_MAX_USES="3")
    runtime = vault.runtime

    async def body() -> None:
        for _ in range(7):
            await runtime.service.tokenize(merchant_id="mer_a", card=CARD, caller=INGRESS)

    asyncio.run(body())
    store = runtime.store
    record_keys = [
        k
        for k in store.data_keys.values()
        if k.purpose is KeyPurpose.RECORD  # type: ignore[attr-defined]
    ]
    assert len(record_keys) == 3
    assert len({r.data_key_id for r in store.records.values()}) == 3  # type: ignore[attr-defined]
    created = vault.audit.events("system.key_create")
    assert sum(r["details"].get("purpose") == "record" for r in created) == 3


def test_a_data_key_is_replaced_after_max_age(make_vault: Callable[..., Wired]) -> None:
    """Past max_age the next seal generates a new data key."""
    vault = make_vault(FINCORE_VAULT_KEY_MAX_AGE_S="60")
    keyring = vault.runtime.keyring
    now = [0.0]
    keyring._monotonic = lambda: now[0]  # the keyring's clock for reuse bounds

    async def body() -> None:
        first = await keyring.sealing_key("mer_a", KeyPurpose.RECORD)
        now[0] += 30
        assert (await keyring.sealing_key("mer_a", KeyPurpose.RECORD)).key_id == first.key_id
        now[0] += 31
        assert (await keyring.sealing_key("mer_a", KeyPurpose.RECORD)).key_id != first.key_id

    asyncio.run(body())


def test_each_merchant_has_one_fingerprint_key(make_vault: Callable[..., Wired]) -> None:
    """Concurrent first uses agree on one fingerprint key; merchants differ."""
    vault = make_vault()
    keyring = vault.runtime.keyring

    async def body() -> None:
        keys = await asyncio.gather(*(keyring.fingerprint_key("mer_a") for _ in range(20)))
        assert len(set(keys)) == 1
        keyring.forget_all()
        assert await keyring.fingerprint_key("mer_a") == keys[0]
        assert await keyring.fingerprint_key("mer_b") != keys[0]

    asyncio.run(body())


def test_rotation_rewraps_and_retires(make_vault: Callable[..., Wired]) -> None:
    """A new primary KEK, a batched re-wrap of every data key, then retirement of the old KEK
    (material erased from the key file); every record still opens with fresh caches."""
    vault = make_vault()
    runtime = vault.runtime
    admin = runtime.admin(OPERATOR)

    async def body() -> None:
        tokens = []
        for merchant in ("mer_a", "mer_b"):
            for _ in range(5):
                result = await runtime.service.tokenize(
                    merchant_id=merchant, card=CARD, caller=INGRESS
                )
                tokens.append((merchant, result.token))
        old = await admin.ensure_primary_kek()
        new = await admin.rotate_kek()
        assert new.kek_id != old.kek_id
        with pytest.raises(KeyStateError):
            await admin.retire_kek(old.kek_id)  # data keys still depend on it
        first = await admin.rewrap(batch_size=2, max_batches=1)
        assert (first.rewrapped, first.remaining) == (2, 4)  # 6 data keys: 2 merchants x 3
        rest = await admin.rewrap(batch_size=2)
        assert rest.remaining == 0
        assert first.rewrapped + rest.rewrapped == 6
        retired = await admin.retire_kek(old.kek_id)
        assert retired.state is KekState.RETIRED
        with pytest.raises(KeyStateError):
            await admin.retire_kek(new.kek_id)  # the primary
        runtime.keyring.forget_all()
        for merchant, token in tokens:
            result = await runtime.service.detokenize(
                token=token, merchant_id=merchant, caller=GATEWAY
            )
            assert result.card.pan.reveal() == "4242424242424242"
        assert not runtime.provider.check(old.kek_id)
        with pytest.raises(KeyStateError):
            await admin.rotate_kek(old.kek_id)  # a retired KEK never comes back

    asyncio.run(body())
    key_file = vault.var / "cde" / "vault-keys.json"
    ids = [k["id"] for k in json.loads(key_file.read_text())["keys"]]
    assert len(ids) == 1
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    steps = [r["details"].get("step") for r in vault.audit.events("system.key_rotate")]
    assert "rewrap_paused" in steps and steps[-1] == "rewrap_done"
    retire = vault.audit.events("system.key_retire")
    assert [r["outcome"] for r in retire] == ["failure", "success", "failure"]
    assert retire[1]["actor"]["id"] == "ops-alice"


def test_rekeying_moves_records_to_fresh_data_keys(make_vault: Callable[..., Wired]) -> None:
    """Re-keying re-seals every old record; the old data keys then go at the purge."""
    vault = make_vault()
    runtime = vault.runtime
    admin = runtime.admin(OPERATOR)

    async def body() -> None:
        tokens = [
            (await runtime.service.tokenize(merchant_id="mer_a", card=CARD, caller=INGRESS)).token
            for _ in range(4)
        ]
        old_key = runtime.store.records[tokens[0]].data_key_id  # type: ignore[attr-defined]
        vault.clock.advance(hours=2)
        report = await admin.rekey_records(older_than=timedelta(hours=1), batch_size=3)
        assert report.records == 4 and not report.failed
        assert all(
            runtime.store.records[t].data_key_id != old_key  # type: ignore[attr-defined]
            for t in tokens
        )
        vault.clock.advance(hours=3)
        purged = await admin.purge(
            retention=timedelta(days=400),
            key_max_age=timedelta(hours=1),
            cvc_ttl=timedelta(minutes=15),
        )
        assert purged.records == 0 and purged.data_keys >= 1
        assert await runtime.store.get_data_key(old_key) is None
        runtime.keyring.forget_all()
        for token in tokens:
            await runtime.service.detokenize(token=token, merchant_id="mer_a", caller=GATEWAY)

    asyncio.run(body())


def test_retention_purge_after_clock_travel(make_vault: Callable[..., Wired]) -> None:
    """Past retention the record and its data key are gone (PCI DSS 3.2.1, checklist B7);
    a recently used record stays."""
    vault = make_vault()
    runtime = vault.runtime
    admin = runtime.admin(OPERATOR)

    async def body() -> None:
        old = await runtime.service.tokenize(merchant_id="mer_a", card=CARD, caller=INGRESS)
        vault.clock.advance(days=200)
        runtime.keyring.forget_all()
        kept = await runtime.service.tokenize(merchant_id="mer_b", card=CARD, caller=INGRESS)
        vault.clock.advance(days=250)
        await runtime.service.detokenize(token=kept.token, merchant_id="mer_b", caller=GATEWAY)
        vault.clock.advance(days=200)
        report = await admin.purge(
            retention=timedelta(days=400),
            key_max_age=timedelta(hours=1),
            cvc_ttl=timedelta(minutes=15),
        )
        assert report.records == 1
        assert await runtime.store.get_record(old.token) is None
        assert await runtime.store.get_record(kept.token) is not None
        record_keys = [
            k
            for k in runtime.store.data_keys.values()  # type: ignore[attr-defined]
            if k.purpose is not KeyPurpose.FINGERPRINT and k.merchant_id == "mer_a"
        ]
        assert record_keys == []

    asyncio.run(body())
    purge = vault.audit.events("system.object_delete")[-1]
    assert purge["details"]["records"] == 1 and purge["actor"]["id"] == "ops-alice"


def test_crypto_shredding_one_merchant(make_vault: Callable[..., Wired]) -> None:
    """Shredding destroys the merchant's keys and records; other merchants are untouched."""
    vault = make_vault()
    runtime = vault.runtime
    admin = runtime.admin(OPERATOR)

    async def body() -> None:
        mine = await runtime.service.tokenize(merchant_id="mer_a", card=CARD, caller=INGRESS)
        other = await runtime.service.tokenize(merchant_id="mer_b", card=CARD, caller=INGRESS)
        wrapped = [
            k
            for k in runtime.store.data_keys.values()
            if k.merchant_id == "mer_a"  # type: ignore[attr-defined]
        ]
        report = await admin.shred_merchant("mer_a")
        assert report.keys_destroyed == len(wrapped) == 3
        assert report.records_deleted == 1
        assert await runtime.store.get_attestation("mer_a") is None
        for key in wrapped:
            stored = await runtime.store.get_data_key(key.key_id)
            assert stored is not None and stored.wrapped is None
            with pytest.raises(TokenDestroyed):
                await runtime.keyring.opening_key(key.key_id)
        assert await runtime.store.get_record(mine.token) is None
        result = await runtime.service.detokenize(
            token=other.token, merchant_id="mer_b", caller=GATEWAY
        )
        assert result.card.last4 == "4242"

    asyncio.run(body())
    destroy = vault.audit.events("system.key_destroy")
    assert [d["details"]["step"] for d in destroy] == ["start", "done"]


def test_attestation_register_is_audited(make_vault: Callable[..., Wired]) -> None:
    """Attest and revoke are admin actions with the operator's name."""
    vault = make_vault()
    admin = vault.runtime.admin(OPERATOR)

    async def body() -> None:
        await admin.attest("mer_c", date(2027, 3, 31), note="AOC 2026")
        assert [a.merchant_id for a in await admin.attestations()] == ["mer_a", "mer_b", "mer_c"]
        assert await admin.revoke_attestation("mer_c")
        assert not await admin.revoke_attestation("mer_c")

    asyncio.run(body())
    enabled = vault.audit.events("admin.raw_card_api_enable")[-1]
    assert enabled["target"] == "mer_c" and enabled["actor"]["id"] == "ops-alice"
    assert vault.audit.events("admin.raw_card_api_disable")[-1]["target"] == "mer_c"


def test_missing_kek_material_is_key_unavailable(make_vault: Callable[..., Wired]) -> None:
    """A data key whose KEK vanished from the provider cannot be unwrapped (503, not data)."""
    vault = make_vault()
    runtime = vault.runtime

    async def body() -> None:
        token = (
            await runtime.service.tokenize(merchant_id="mer_a", card=CARD, caller=INGRESS)
        ).token
        primary = await runtime.admin(OPERATOR).ensure_primary_kek()
        runtime.provider.retire_kek(primary.kek_id)  # behind the vault's back
        runtime.keyring.forget_all()
        with pytest.raises(KeyUnavailable):
            await runtime.service.detokenize(token=token, merchant_id="mer_a", caller=GATEWAY)

    asyncio.run(body())
