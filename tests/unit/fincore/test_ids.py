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
