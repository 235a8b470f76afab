"""The vault's use cases with in-process adapters and a real audit log: tokenize, metadata,
delete, detokenize (gateway only, own merchant only, CVC once), refusals audited, fail closed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from typing import Any

import pytest

from audit.domain import AuditUnavailable, ChainTail
from audit.service import AuditLog
from cde.vault.adapters.memory import MemoryCvcStore
from cde.vault.domain import (
    InvalidCard,
    InvalidRequest,
    NotPermitted,
    RateLimited,
    RawCardDataNotPermitted,
    TokenDestroyed,
    TokenNotFound,
)
from cde.vault.service import Caller
from tests.unit.vault.conftest import AMEX, CARD, Wired

INGRESS, GATEWAY = Caller("ingress", request_id="req_1"), Caller("gateway")


def test_tokenize_returns_display_data_only(make_vault: Callable[..., Wired]) -> None:
    """A token and brand/BIN/last4/expiry/fingerprint; the record is sealed."""
    vault = make_vault()
    service = vault.runtime.service

    async def body() -> None:
        result = await service.tokenize(merchant_id="mer_a", card=CARD, caller=INGRESS)
        shown = result.card.as_dict()
        assert set(shown) == {"brand", "last4", "bin", "exp_month", "exp_year", "fingerprint"}
        assert (shown["brand"], shown["last4"], shown["bin"]) == ("visa", "4242", "424242")
        store = vault.runtime.store
        stored = await store.get_record(result.token)
        assert stored is not None
        assert b"4242424242424242" not in stored.record.ciphertext
        assert stored.record.fingerprint == shown["fingerprint"]

    asyncio.run(body())
    tokenized = vault.audit.events("card.tokenize")
    assert tokenized[-1]["outcome"] == "success"
    assert tokenized[-1]["actor"]["id"] == "ingress"
    assert tokenized[-1]["request_id"] == "req_1"
    assert "4242424242424242" not in str(vault.audit.records())


def test_detokenize_gives_card_and_cvc_once(make_vault: Callable[..., Wired]) -> None:
    """The gateway gets the card and the CVC; the CVC is gone after that first read."""
    vault = make_vault()
    service = vault.runtime.service

    async def body() -> None:
        token = (await service.tokenize(merchant_id="mer_a", card=AMEX, caller=INGRESS)).token
        first = await service.detokenize(token=token, merchant_id="mer_a", caller=GATEWAY)
        assert first.card.pan.reveal() == "378282246310005"
        assert first.cvc is not None and first.cvc.reveal() == "7391"
        second = await service.detokenize(token=token, merchant_id="mer_a", caller=GATEWAY)
        assert second.cvc is None
        assert second.card.exp_year == 2032

    asyncio.run(body())
    detokenized = vault.audit.events("card.detokenize")
    assert [d["details"]["cvc_status"] for d in detokenized] == ["returned_and_deleted", "none"]


@pytest.mark.parametrize("caller", ["ingress", "api", "worker", "vault-cli"])
def test_only_the_gateway_detokenizes(make_vault: Callable[..., Wired], caller: str) -> None:
    """Any other caller is refused and the refusal is audited with its name."""
    vault = make_vault()
    service = vault.runtime.service

    async def body() -> None:
        token = (await service.tokenize(merchant_id="mer_a", card=CARD, caller=INGRESS)).token
        with pytest.raises(NotPermitted):
            await service.detokenize(token=token, merchant_id="mer_a", caller=Caller(caller))
        # The refused call did not consume the CVC.
        assert (await service.detokenize(token=token, merchant_id="mer_a", caller=GATEWAY)).cvc

    asyncio.run(body())
    denied = vault.audit.events("card.detokenize_denied")
    assert [d["actor"]["id"] for d in denied] == [caller]
    assert denied[0]["outcome"] == "failure"


def test_another_merchants_token_is_refused(make_vault: Callable[..., Wired]) -> None:
    """A token is scoped to its merchant for every read, and the refusal is audited."""
    vault = make_vault()
    service = vault.runtime.service

    async def body() -> str:
        token = (await service.tokenize(merchant_id="mer_a", card=CARD, caller=INGRESS)).token
        with pytest.raises(NotPermitted):
            await service.detokenize(token=token, merchant_id="mer_b", caller=GATEWAY)
        with pytest.raises(NotPermitted):
            await service.metadata(token=token, merchant_id="mer_b", caller=GATEWAY)
        with pytest.raises(NotPermitted):
            await service.delete(token=token, merchant_id="mer_b", caller=GATEWAY)
        assert await vault.runtime.store.get_record(token) is not None
        return token

    token = asyncio.run(body())
    denied = vault.audit.events("card.detokenize_denied")
    assert denied[-1]["target"] == token
    assert denied[-1]["reason"] == "token_not_owned"


def test_metadata_delete_and_unknown_tokens(make_vault: Callable[..., Wired]) -> None:
    """Metadata is display data; delete removes the record and the CVC; then 404."""
    vault = make_vault()
    service = vault.runtime.service
    cvc_store = vault.runtime.cvc_store
    assert isinstance(cvc_store, MemoryCvcStore)

    async def body() -> None:
        result = await service.tokenize(merchant_id="mer_a", card=CARD, caller=INGRESS)
        shown = await service.metadata(token=result.token, merchant_id="mer_a", caller=GATEWAY)
        assert shown == result.card
        assert len(cvc_store) == 1
        await service.delete(token=result.token, merchant_id="mer_a", caller=GATEWAY)
        assert len(cvc_store) == 0
        with pytest.raises(TokenNotFound):
            await service.detokenize(token=result.token, merchant_id="mer_a", caller=GATEWAY)
        with pytest.raises(InvalidRequest):
            await service.metadata(token="4242424242424242", merchant_id="mer_a", caller=GATEWAY)

    asyncio.run(body())
    assert vault.audit.events("card.token_delete")[-1]["outcome"] == "success"


def test_invalid_cards_are_refused_and_audited(make_vault: Callable[..., Wired]) -> None:
    """A bad card stores nothing and leaves a failure record naming only the reason."""
    vault = make_vault()

    async def body() -> None:
        bad = dict(CARD, number="4242424242424241")
        with pytest.raises(InvalidCard) as caught:
            await vault.runtime.service.tokenize(merchant_id="mer_a", card=bad, caller=INGRESS)
        assert caught.value.param == "card[number]"
        assert (await vault.runtime.store.counts())["records"] == 0

    asyncio.run(body())
    failure = vault.audit.events("card.tokenize")[-1]
    assert (failure["outcome"], failure["reason"]) == ("failure", "incorrect_number")


def test_unattested_merchants_cannot_tokenize(make_vault: Callable[..., Wired]) -> None:
    """Without an unexpired entry in the CDE register, no card is taken."""
    vault = make_vault()

    async def body() -> None:
        service = vault.runtime.service
        with pytest.raises(RawCardDataNotPermitted):
            await service.tokenize(merchant_id="mer_zz", card=CARD, caller=INGRESS)
        vault.clock.now = vault.clock.now.replace(year=2030, month=2)  # past mer_a's expiry
        service.forget_attestation("mer_a")
        with pytest.raises(RawCardDataNotPermitted):
            await service.tokenize(merchant_id="mer_a", card=CARD, caller=INGRESS)
        assert (await vault.runtime.store.counts())["records"] == 0

    asyncio.run(body())


def test_tokenization_is_rate_limited_per_merchant(make_vault: Callable[..., Wired]) -> None:
    """Past the burst a merchant gets RateLimited (audited); another merchant is unaffected."""
    vault = make_vault(FINCORE_VAULT_RATE_PER_S="0.01", FINCORE_VAULT_RATE_BURST="3")
    service = vault.runtime.service

    async def body() -> None:
        for _ in range(3):
            await service.tokenize(merchant_id="mer_a", card=CARD, caller=INGRESS)
        with pytest.raises(RateLimited) as caught:
            await service.tokenize(merchant_id="mer_a", card=CARD, caller=INGRESS)
        assert caught.value.retry_after_s > 1
        await service.tokenize(merchant_id="mer_b", card=CARD, caller=INGRESS)

    asyncio.run(body())
    assert vault.audit.events("card.tokenize")[-2]["reason"] == "rate_limited"


def test_cvc_expires_after_its_ttl(make_vault: Callable[..., Wired]) -> None:
    """A CVC not read within the TTL is gone; the card itself still detokenizes."""
    vault = make_vault(FINCORE_VAULT_CVC_TTL_S="60")
    now = [1000.0]
    vault.runtime.service.cvc_store = MemoryCvcStore(monotonic=lambda: now[0])
    service = vault.runtime.service

    async def body() -> None:
        token = (await service.tokenize(merchant_id="mer_a", card=CARD, caller=INGRESS)).token
        now[0] += 61
        result = await service.detokenize(token=token, merchant_id="mer_a", caller=GATEWAY)
        assert result.cvc is None
        assert result.card.pan.last4 == "4242"

    asyncio.run(body())


def test_cvc_ttl_is_capped_at_fifteen_minutes(make_vault: Callable[..., Wired]) -> None:
    """A longer TTL is a settings error (PCI DSS 3.3.2: minutes, not hours)."""
    from fincore.settings import SettingsError

    with pytest.raises(SettingsError):
        make_vault(FINCORE_VAULT_CVC_TTL_S="901")


class _FailingSink:
    """An audit sink whose storage is down: every append raises AuditUnavailable."""

    zone = "cde"
    writer_stream = "cde"

    def __init__(self) -> None:
        self.down = False
        self.lines: list[bytes] = []

    def append(self, build: Callable[[ChainTail], Sequence[bytes]]) -> ChainTail:
        if self.down:
            raise AuditUnavailable("audit storage down")
        from audit.domain import genesis_hash, line_digest

        tail = ChainTail(
            len(self.lines),
            line_digest(self.lines[-1]) if self.lines else genesis_hash("cde", "cde"),
        )
        new = list(build(tail))
        self.lines.extend(new)
        return ChainTail(tail.seq + len(new), line_digest(new[-1]) if new else tail.hash)

    def sync(self) -> None: ...

    def put_checkpoint(self, line: bytes) -> None: ...

    def streams(self) -> list[str]:
        return ["cde"]

    def read(self, stream: str) -> Iterator[bytes]:
        return iter(self.lines)

    def checkpoints(self, stream: str) -> list[bytes]:
        return []

    def close(self) -> None: ...


def test_no_audit_no_card(tmp_path: Any) -> None:
    """When the audit log cannot be written, tokenize keeps nothing and detokenize reveals
    nothing (fail closed, PCI DSS 10.7.2); readiness reports the audit sink down."""
    from audit.domain import Actor, ActorType
    from cde.vault.bootstrap import build_vault
    from tests.unit.vault.conftest import Clock, vault_settings

    sink = _FailingSink()
    log = AuditLog(sink, None, zone="cde", component="vault-test", lifecycle=False)
    runtime = build_vault(vault_settings(tmp_path), clock=Clock(), audit=log)
    service = runtime.service

    async def body() -> None:
        await runtime.start()
        await runtime.admin(Actor("t", ActorType.USER)).attest("mer_a", date(2030, 1, 1))
        token = (await service.tokenize(merchant_id="mer_a", card=CARD, caller=INGRESS)).token
        sink.down = True
        with pytest.raises(AuditUnavailable):
            await service.tokenize(merchant_id="mer_a", card=AMEX, caller=INGRESS)
        counts = await runtime.store.counts()
        assert counts["records"] == 1
        assert len(runtime.cvc_store) == 1  # type: ignore[arg-type]
        with pytest.raises(AuditUnavailable):
            await service.detokenize(token=token, merchant_id="mer_a", caller=GATEWAY)
        with pytest.raises(AuditUnavailable):
            await service.delete(token=token, merchant_id="mer_a", caller=GATEWAY)
        assert runtime.audit.available is False  # readiness reports the audit sink down
        sink.down = False
        result = await service.detokenize(token=token, merchant_id="mer_a", caller=GATEWAY)
        # The card was not handed out unaudited; the CVC the failed read took is gone for good
        # (failing towards less sensitive data, never towards more).
        assert result.cvc is None
        assert result.card.pan.last4 == "4242"

    asyncio.run(body())
    log.close()


def test_shredded_records_are_refused_even_with_cached_keys(
    make_vault: Callable[..., Wired],
) -> None:
    """Destroying a merchant's keys takes effect at once, though the keyring still caches them."""
    from audit.domain import Actor, ActorType

    vault = make_vault()
    runtime = vault.runtime

    async def body() -> None:
        token = (
            await runtime.service.tokenize(merchant_id="mer_a", card=CARD, caller=INGRESS)
        ).token
        await runtime.service.detokenize(token=token, merchant_id="mer_a", caller=GATEWAY)
        await runtime.store.destroy_merchant_keys("mer_a", vault.clock())
        with pytest.raises(TokenDestroyed):
            await runtime.service.detokenize(token=token, merchant_id="mer_a", caller=GATEWAY)
        report = await runtime.admin(Actor("t", ActorType.USER)).shred_merchant("mer_a")
        assert report.records_deleted == 1

    asyncio.run(body())
