"""noncde.dashboard adapters, pyotp: RFC 6238 TOTP codes (6 digits, 30 seconds), the kind
every authenticator app reads from a provisioning URI (`otpauth://totp/...`).

Seeds are 160 random bits from `secrets` (pyotp.random_base32); the HMAC inside TOTP is
HMAC-SHA-1 because that is what RFC 6238 authenticator apps implement (a keyed MAC, not a
bare hash of data). Codes are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

import pyotp

from noncde.dashboard.domain.accounts import TOTP_DIGITS, TOTP_PERIOD_S


class PyotpTotp:
    def new_secret(self) -> str:
        return pyotp.random_base32()

    def provisioning_uri(self, secret: str, account: str, issuer: str) -> str:
        return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_S).provisioning_uri(
            name=account, issuer_name=issuer
        )

    def matching_step(self, secret: str, code: str, steps: Sequence[int]) -> int | None:
        totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_S)
        found = None
        for step in steps:
            # Every candidate is compared (no early exit), so timing says nothing about which.
            if (
                hmac.compare_digest(totp.generate_otp(step).encode(), code.encode())
                and found is None
            ):
                found = step
        return found

    def code_at(self, secret: str, step: int) -> str:
        """The code of one time step (for the operator's own checks and the tests)."""
        return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_S).generate_otp(step)
