"""Tokens (random, never card-like), record and CVC sealing (bound to token and merchant) and
keyed fingerprints (per merchant, fail closed)."""

from __future__ import annotations

import os

import pytest

from cde.vault.domain import InvalidRequest, RecordIntegrityError
from cde.vault.domain.crypto import (
    CVC_MAGIC,
    RECORD_MAGIC,
    fingerprint,
    open_cvc,
    open_record,
    seal_cvc,
    seal_record,
)
from cde.vault.domain.ids import TOKEN_PATTERN, check_merchant_id, check_token, new_token
from fincore.cards import contains_card_number
from fincore.sensitive import Pan

PLAIN = b'{"n":"4242424242424242"}'


def test_tokens_are_random_well_formed_and_never_card_like() -> None:
    """Tokens match tok_ + 26 base32 characters, never repeat and hold no card-like number."""
    tokens = {new_token() for _ in range(20_000)}
    assert len(tokens) == 20_000
    for token in tokens:
        assert TOKEN_PATTERN.match(token)
        assert not contains_card_number(token)
    assert check_token(next(iter(tokens)))


@pytest.mark.parametrize("value", ["tok_1", "4242424242424242", None, "tok_" + "A" * 26])
def test_malformed_tokens_are_refused(value: object) -> None:
    """Anything but a well-formed token is an InvalidRequest that does not echo it."""
    with pytest.raises(InvalidRequest) as caught:
        check_token(value)
    assert str(value) not in caught.value.message


def test_merchant_ids_are_checked() -> None:
    """Merchant ids look like mer_…; others are refused."""
    assert check_merchant_id("mer_a1") == "mer_a1"
    for bad in ["mer_", "acct_1", "mer_a b", None, "mer_" + "x" * 70]:
        with pytest.raises(InvalidRequest):
            check_merchant_id(bad)


def test_seal_and_open_round_trip() -> None:
    """A sealed record opens with the same key, token and merchant."""
    key = os.urandom(32)
    blob = seal_record(key, "tok_a", "mer_a", PLAIN)
    assert blob.startswith(RECORD_MAGIC)
    assert b"4242" not in blob
    assert open_record(key, "tok_a", "mer_a", blob) == PLAIN


@pytest.mark.parametrize(
    ("token", "merchant"), [("tok_b", "mer_a"), ("tok_a", "mer_b"), ("tok_ab", "mer_")]
)
def test_a_record_does_not_open_for_another_token_or_merchant(token: str, merchant: str) -> None:
    """The encryption context (token, merchant) is bound: a moved ciphertext fails."""
    key = os.urandom(32)
    blob = seal_record(key, "tok_a", "mer_a", PLAIN)
    with pytest.raises(RecordIntegrityError):
        open_record(key, token, merchant, blob)


def test_tampering_and_wrong_keys_are_detected() -> None:
    """A flipped bit, a truncated blob or another data key all fail to open."""
    key = os.urandom(32)
    blob = bytearray(seal_record(key, "tok_a", "mer_a", PLAIN))
    for index in (4, 30, len(blob) - 1):
        flipped = bytearray(blob)
        flipped[index] ^= 1
        with pytest.raises(RecordIntegrityError):
            open_record(key, "tok_a", "mer_a", bytes(flipped))
    with pytest.raises(RecordIntegrityError):
        open_record(key, "tok_a", "mer_a", bytes(blob[:40]))
    with pytest.raises(RecordIntegrityError):
        open_record(os.urandom(32), "tok_a", "mer_a", bytes(blob))


def test_cvc_and_record_seals_are_not_interchangeable() -> None:
    """A CVC blob is not a record blob and the reverse, even under one key."""
    key = os.urandom(32)
    cvc = seal_cvc(key, "tok_a", "mer_a", b"123")
    assert cvc.startswith(CVC_MAGIC)
    assert open_cvc(key, "tok_a", "mer_a", cvc) == b"123"
    with pytest.raises(RecordIntegrityError):
        open_record(key, "tok_a", "mer_a", cvc)
    with pytest.raises(RecordIntegrityError):
        open_cvc(key, "tok_a", "mer_a", seal_record(key, "tok_a", "mer_a", PLAIN))


def test_each_seal_is_fresh() -> None:
    """Sealing the same record twice gives two different blobs (fresh salt, fresh key)."""
    key = os.urandom(32)
    assert seal_record(key, "tok_a", "mer_a", PLAIN) != seal_record(key, "tok_a", "mer_a", PLAIN)


def test_fingerprints_are_keyed_per_merchant_and_stable() -> None:
    """Same card and key: same fingerprint; another merchant's key: an unrelated one."""
    pan = Pan("4242424242424242")
    key_a, key_b = os.urandom(32), os.urandom(32)
    assert fingerprint(key_a, pan) == fingerprint(key_a, Pan("4242424242424242"))
    assert fingerprint(key_a, pan) != fingerprint(key_b, pan)
    assert fingerprint(key_a, pan) != fingerprint(key_a, Pan("5555555555554444"))
    assert len(bytes.fromhex(fingerprint(key_a, pan))) == 32


def test_fingerprints_fail_closed_without_a_key() -> None:
    """No key (or a short one) is an error, never an unkeyed hash."""
    for key in (b"", b"short"):
        with pytest.raises(ValueError, match="fingerprint key"):
            fingerprint(key, Pan("4242424242424242"))


def test_fingerprints_never_look_like_card_numbers() -> None:
    """About 1 in 500 raw hex digests holds a Luhn-valid run; no fingerprint ever does."""
    pan = Pan("4242424242424242")
    for _ in range(3000):
        assert not contains_card_number(fingerprint(os.urandom(32), pan))


def test_token_text_is_the_standard_base32_of_the_random_bytes() -> None:
    """The token body is the first 26 characters of RFC 4648 base32 of the 17 random bytes
    (the stdlib encoder, lowercased, as the reference)."""
    import base64

    from cde.vault.domain.ids import _base32_prefix

    for data in [os.urandom(17) for _ in range(5_000)] + [bytes(17), b"\xff" * 17]:
        assert _base32_prefix(data) == base64.b32encode(data).decode("ascii").lower()[:26]
