"""Random ids carry 128 bits, are prefixed, and never contain a card-like digit run."""

from __future__ import annotations

from fincore.cards import contains_card_number
from fincore.ids import random_id, random_token


def test_ids_are_prefixed_random_and_unique() -> None:
    """Each id has its prefix and 20+ base-62 characters; 10,000 ids are all distinct."""
    ids = {random_id("ch") for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(i.startswith("ch_") and len(i) >= 3 + 20 for i in ids)


def test_ids_never_contain_long_digit_runs() -> None:
    """No id contains 8 or more digits in a row, so none can look like a card number."""
    for _ in range(20_000):
        token = random_token()
        assert not contains_card_number(token)
        assert not any(token[i : i + 8].isdigit() for i in range(len(token) - 7))


def test_base62_is_the_positional_base_62_of_the_bytes() -> None:
    """`_base62` (two digits per division) spells the integer of the bytes in base 62 with no
    leading zeros: checked by decoding it back, including values with leading zero bytes and
    zero itself."""
    import os

    from fincore.ids import _ALPHABET, _base62

    samples = [os.urandom(16) for _ in range(2_000)]
    samples += [bytes(16 - n) + os.urandom(n) for n in range(17)] + [b"\x00" * 16, b"\x01"]
    for data in samples:
        text = _base62(data)
        assert text == "0" or not text.startswith("0")
        value = 0
        for char in text:
            value = value * 62 + _ALPHABET.index(char)
        assert value == int.from_bytes(data, "big")
