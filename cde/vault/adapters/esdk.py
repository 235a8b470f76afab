"""cde.vault (CDE): the aws-encryption-sdk envelope every key provider wraps data keys with.

Suite: AES_256_GCM_HKDF_SHA512_COMMIT_KEY (key commitment, no ECDSA signature) under the
REQUIRE_ENCRYPT_REQUIRE_DECRYPT commitment policy, through the legacy master-key providers
(the MPL keyrings are not installed: 2.6-9x slower, about 1 s of import). Signing buys nothing
here: the vault is the only writer and the only reader of its messages, and the default
signing suite costs ~1 ms per message (docs/vault.md has the measured figures). At most one
encrypted data key per message is accepted, so a crafted message cannot make the vault try
many keys. The encryption context is checked on every decrypt: a wrapped key moved to another
row (another key id, merchant or purpose) is refused.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping
from typing import Any

import aws_encryption_sdk
from aws_encryption_sdk import Algorithm, CommitmentPolicy
from aws_encryption_sdk.exceptions import (
    AWSEncryptionSDKClientError,
    DecryptKeyError,
    MasterKeyProviderError,
)
from cryptography.exceptions import InvalidTag

from cde.vault.domain import KeyUnavailable, RecordIntegrityError

ALGORITHM = Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY

# The SDK logs every encryption context at INFO; ours hold ids only, but the vault's log is
# for the vault's own events.
logging.getLogger("aws_encryption_sdk").setLevel(logging.WARNING)


class EsdkEnvelope:
    """Encrypt/decrypt small secrets (data keys) with a master-key provider."""

    def __init__(self) -> None:
        self._client = aws_encryption_sdk.EncryptionSDKClient(
            commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
            max_encrypted_data_keys=1,
        )

    def encrypt(self, provider: Any, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        try:
            ciphertext, _header = self._client.encrypt(
                source=plaintext,
                key_provider=provider,
                encryption_context=dict(context),
                algorithm=ALGORITHM,
            )
        except (AWSEncryptionSDKClientError, OSError) as exc:
            raise KeyUnavailable("The key-encryption key could not wrap a data key.") from exc
        return bytes(ciphertext)

    def decrypt(self, provider: Any, ciphertext: bytes, context: Mapping[str, str]) -> bytes:
        try:
            plaintext, header = self._client.decrypt(source=ciphertext, key_provider=provider)
        except (DecryptKeyError, MasterKeyProviderError, OSError) as exc:
            # The KEK could not open the message's data key: missing, disabled, unreachable,
            # or the provider (KMS, Transit) refused the encryption context.
            raise KeyUnavailable("The key-encryption key could not unwrap a data key.") from exc
        except (AWSEncryptionSDKClientError, InvalidTag, ValueError, struct.error) as exc:
            raise RecordIntegrityError("The wrapped data key is malformed or tampered.") from exc
        if header.algorithm is not ALGORITHM:
            raise RecordIntegrityError("The wrapped data key uses an unexpected suite.")
        if dict(header.encryption_context) != dict(context):
            raise RecordIntegrityError("The wrapped data key belongs to another key or merchant.")
        return bytes(plaintext)
