"""cde.vault (CDE): per-record sealing, CVC sealing and card fingerprints; pure computation.

Key hierarchy (docs/vault.md "Encryption"): a key-encryption key (KEK) held by the key
provider (key file, AWS KMS or HashiCorp Vault Transit) wraps **data keys** through the
aws-encryption-sdk; a data key belongs to one merchant and one purpose (card records,
fingerprints, CVCs) and is reused for a bounded number of records and a bounded time. Each
record is then sealed here with a key of its own:

    salt = 16 random bytes
    okm  = HKDF-SHA512(ikm=data key, salt=salt, info=label || len||token || len||merchant)
    record key = okm[:32], commitment = okm[32:]
    blob = magic(4) || salt(16) || commitment(32) || AES-256-GCM(record key, nonce=0^12,
                                                             plaintext, aad=magic||salt||commitment)

This is the construction the aws-encryption-sdk's committing suite
(AES_256_GCM_HKDF_SHA512_COMMIT_KEY) applies to each message, minus its message framing: the
token id and merchant id are the encryption context, bound into the key derivation, so a blob
copied to another row (or another merchant) derives another key and fails to authenticate;
the commitment makes a blob decrypt under at most one data key. Each record key is used once,
so the fixed nonce is never reused under one key (the ESDK does the same per message).
PCI DSS 3.5.1 (strong cryptography), 3.6.1 (keys stored only wrapped), 3.3.2 (SAD encrypted).
"""

from __future__ import annotations

import hmac
import os
import re
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cde.vault.domain.errors import RecordIntegrityError
from fincore.cards import contains_card_number
from fincore.sensitive import Pan

DATA_KEY_BYTES = 32
SALT_BYTES = 16
COMMITMENT_BYTES = 32
_NONCE = bytes(12)
RECORD_MAGIC = b"FCV1"
CVC_MAGIC = b"FCC1"
_HEADER = len(RECORD_MAGIC) + SALT_BYTES + COMMITMENT_BYTES
_DIGIT_RUN = re.compile(r"[0-9]{13}")
_LABELS = {RECORD_MAGIC: b"fincore/vault/record/v1", CVC_MAGIC: b"fincore/vault/cvc/v1"}


def _context(label: bytes, token: str, merchant_id: str) -> bytes:
    parts = [label]
    for value in (token, merchant_id):
        raw = value.encode("utf-8")
        parts.append(struct.pack(">H", len(raw)) + raw)
    return b"".join(parts)


def _derive(data_key: bytes, salt: bytes, info: bytes) -> tuple[bytes, bytes]:
    if len(data_key) != DATA_KEY_BYTES:
        raise ValueError("a data key is 32 bytes")
    okm = HKDF(
        algorithm=hashes.SHA512(), length=DATA_KEY_BYTES + COMMITMENT_BYTES, salt=salt, info=info
    ).derive(data_key)
    return okm[:DATA_KEY_BYTES], okm[DATA_KEY_BYTES:]


def _seal(magic: bytes, data_key: bytes, token: str, merchant_id: str, plaintext: bytes) -> bytes:
    salt = os.urandom(SALT_BYTES)
    key, commitment = _derive(data_key, salt, _context(_LABELS[magic], token, merchant_id))
    header = magic + salt + commitment
    return header + AESGCM(key).encrypt(_NONCE, plaintext, header)


def _open(magic: bytes, data_key: bytes, token: str, merchant_id: str, blob: bytes) -> bytes:
    if len(blob) < _HEADER + 16 or blob[:4] != magic:
        raise RecordIntegrityError("The stored record is malformed.")
    salt = blob[4 : 4 + SALT_BYTES]
    stored_commitment = blob[4 + SALT_BYTES : _HEADER]
    key, commitment = _derive(data_key, salt, _context(_LABELS[magic], token, merchant_id))
    if not hmac.compare_digest(commitment, stored_commitment):
        raise RecordIntegrityError("The stored record does not belong to this token.")
    try:
        return AESGCM(key).decrypt(_NONCE, blob[_HEADER:], blob[:_HEADER])
    except InvalidTag as exc:
        raise RecordIntegrityError("The stored record failed authentication.") from exc


def seal_record(data_key: bytes, token: str, merchant_id: str, plaintext: bytes) -> bytes:
    """The sealed card record for (token, merchant) under `data_key`."""
    return _seal(RECORD_MAGIC, data_key, token, merchant_id, plaintext)


def open_record(data_key: bytes, token: str, merchant_id: str, blob: bytes) -> bytes:
    """The plaintext of a sealed record, or `RecordIntegrityError` if it is not this row's."""
    return _open(RECORD_MAGIC, data_key, token, merchant_id, blob)


def seal_cvc(data_key: bytes, token: str, merchant_id: str, cvc: bytes) -> bytes:
    """The sealed CVC for (token, merchant) under a CVC data key (never the PAN's key)."""
    return _seal(CVC_MAGIC, data_key, token, merchant_id, cvc)


def open_cvc(data_key: bytes, token: str, merchant_id: str, blob: bytes) -> bytes:
    """The CVC bytes of a sealed CVC, or `RecordIntegrityError`."""
    return _open(CVC_MAGIC, data_key, token, merchant_id, blob)


def fingerprint(key: bytes, pan: Pan) -> str:
    """HMAC-SHA-256 of the full PAN under the merchant's CDE-only fingerprint key, as hex.

    Keyed, so nobody outside the CDE can compute or test it (PCI DSS 3.5.1.1); one key per
    merchant, so the same card has unrelated fingerprints at two merchants. Fails closed
    without a key.
    """
    if len(key) < 16:
        raise ValueError("a fingerprint key is required (at least 128 bits)")
    digest = hmac.digest(key, pan.reveal().encode("ascii"), "sha256")
    text = digest.hex()
    # About 1 in 500 hex digests holds a Luhn-valid 13-19 digit run that every PAN detector
    # (log redaction, the non-CDE card-data guard, the PAN sweep) would flag. Re-key such a
    # digest deterministically until it is clean: the same card still gets the same value.
    while _DIGIT_RUN.search(text) and contains_card_number(text):
        digest = hmac.digest(key, b"\x01" + digest, "sha256")
        text = digest.hex()
    return text
