"""Masked secret types never show their value by accident."""

from __future__ import annotations

import copy
import json
import pickle  # noqa: TID251 - the test proves the types refuse pickling

import pytest

from fincore.sensitive import Cvc, Pan, SecretKey


def test_pan_repr_str_and_format_are_masked() -> None:
    """repr, str and f-strings show only BIN and last four."""
    pan = Pan("4242424242424242")
    assert repr(pan) == "Pan('424242******4242')"
    assert str(pan) == repr(pan)
    assert f"{pan}" == repr(pan)
    assert "4242424242424242" not in f"{pan!r} {pan!s} {[pan]} { ({'p': pan}) }"
    assert pan.last4 == "4242" and pan.bin == "424242"


def test_cvc_and_secret_key_are_masked() -> None:
    """A CVC shows nothing; a secret key shows only its prefix."""
    assert repr(Cvc("123")) == "Cvc('***')"
    assert repr(SecretKey("sk_test_abcdef123")) == "SecretKey('sk_***')"
    assert repr(SecretKey("nounderscoresecret")) == "SecretKey('***')"


def test_reveal_is_explicit() -> None:
    """The value comes out only through reveal()."""
    assert Pan("4242424242424242").reveal() == "4242424242424242"
    assert Cvc("7391").reveal() == "7391"


def test_equality_compares_values_of_the_same_type() -> None:
    """Equal values are equal (constant-time compare); different types never are."""
    assert Pan("4242424242424242") == Pan("4242424242424242")
    assert Pan("4242424242424242") != Pan("5555555555554444")
    assert Cvc("123") != SecretKey("123")
    assert Cvc("123") != "123"


@pytest.mark.parametrize("value", [Pan("4242424242424242"), Cvc("123"), SecretKey("sk_x")])
def test_not_picklable(value: object) -> None:
    """Pickling is refused, at every protocol."""
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="must not be pickled"):
            pickle.dumps(value, protocol=protocol)


@pytest.mark.parametrize("value", [Pan("4242424242424242"), Cvc("123"), SecretKey("sk_x")])
def test_not_json_serializable_by_accident(value: object) -> None:
    """json.dumps refuses the wrapper instead of writing the value."""
    with pytest.raises(TypeError):
        json.dumps({"v": value})


def test_copies_stay_wrapped() -> None:
    """copy and deepcopy give the same type, still masked."""
    pan = Pan("4242424242424242")
    assert copy.deepcopy(pan) == pan and isinstance(copy.copy(pan), Pan)


def test_pan_must_be_digits() -> None:
    """A Pan holds digits only (normalize before wrapping)."""
    with pytest.raises(ValueError, match="digits"):
        Pan("4242 4242 4242 4242")
