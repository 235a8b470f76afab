"""Shared by both zones: masked types for card data and key material.

A `Pan`, `Cvc` or `SecretKey` never shows its value by accident: `repr`/`str`/`format` mask it,
`json.dumps` and `pickle` refuse it, equality is constant-time, and the value comes out only
through an explicit `.reveal()` (PCI DSS 3.4.1, 3.5.1).
"""

from __future__ import annotations

import hmac
from typing import Any, NoReturn

from fincore.cards import mask_pan


class SensitiveValue:
    """Base for values that must never be shown, stored or serialized by accident."""

    __slots__ = ("_value",)
    _label = "Secret"

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"{self._label} takes a str")
        self._value = value

    def reveal(self) -> str:
        """The raw value. Every call site is a place where the secret leaves its wrapper."""
        return self._value

    def masked(self) -> str:
        return "***"

    def __repr__(self) -> str:
        return f"{self._label}({self.masked()!r})"

    def __str__(self) -> str:
        return self.__repr__()

    def __format__(self, spec: str) -> str:
        return self.__repr__()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, SensitiveValue)
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        # Hashable so it can key a dict, without exposing the value through the hash
        # (hash of a keyed digest would be better, but equal values must hash equally).
        return hash((self._label, len(self._value)))

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"{self._label} must not be pickled")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(f"{self._label} must not be pickled")

    def __getstate__(self) -> NoReturn:
        raise TypeError(f"{self._label} must not be pickled")

    def __copy__(self) -> SensitiveValue:
        return type(self)(self._value)

    def __deepcopy__(self, memo: dict[int, Any]) -> SensitiveValue:
        return type(self)(self._value)


class Pan(SensitiveValue):
    """A primary account number: digits only. Shows at most the first six and last four."""

    __slots__ = ()
    _label = "Pan"

    def __init__(self, value: str) -> None:
        super().__init__(value)
        if not value.isdigit():
            raise ValueError("a Pan holds digits only")

    def masked(self) -> str:
        return mask_pan(self._value)

    @property
    def last4(self) -> str:
        return self._value[-4:]

    @property
    def bin(self) -> str:
        return self._value[:6]


class Cvc(SensitiveValue):
    """A card verification code (sensitive authentication data, PCI DSS 3.3.1)."""

    __slots__ = ()
    _label = "Cvc"


class SecretKey(SensitiveValue):
    """An API key, signing secret or other credential. Shows only a short prefix."""

    __slots__ = ()
    _label = "SecretKey"

    def masked(self) -> str:
        prefix, _, _ = self._value.partition("_")
        if prefix and prefix != self._value and len(prefix) <= 8:
            return f"{prefix}_***"
        return "***"


def is_sensitive(value: object) -> bool:
    return isinstance(value, SensitiveValue)
