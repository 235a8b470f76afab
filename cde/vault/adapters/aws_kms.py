"""cde.vault (CDE): AWS KMS as the KEK provider (production), through the aws-encryption-sdk.

Data keys are wrapped by `StrictAwsKmsMasterKeyProvider`: KMS generates each ESDK message key
under the CMK with the data key's encryption context, and KMS itself refuses a decrypt with
another context. The CMK's material never leaves KMS's HSMs (PCI DSS 3.6.1.2, 3.6.1.4). The
provider is strict: it only ever calls the CMKs it was given (no discovery), resolved to key
ARNs at start. New CMKs get automatic yearly rotation; retiring one disables it (deletion,
with its waiting period, stays a human decision).

Endpoints follow botocore's standard configuration (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_KMS`,
profiles), which is how the tests point it at moto in server mode.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import boto3
import botocore.session
from aws_encryption_sdk import StrictAwsKmsMasterKeyProvider
from botocore.exceptions import BotoCoreError, ClientError

from cde.vault.adapters.esdk import EsdkEnvelope
from cde.vault.domain import KeyUnavailable

_STATE_TTL_S = 30.0


class KmsKeyProvider:
    """`KeyProvider` backed by KMS customer-managed keys."""

    name = "aws-kms"

    def __init__(self, key_id: str, *, region: str | None = None) -> None:
        self._session = botocore.session.Session()
        if region:
            self._session.set_config_variable("region", region)
        self._kms = boto3.session.Session(botocore_session=self._session).client("kms")
        self._configured = key_id
        self._envelope = EsdkEnvelope()
        self._providers: dict[str, StrictAwsKmsMasterKeyProvider] = {}
        self._lock = threading.Lock()
        self._default: str | None = None
        self._states: dict[str, tuple[bool, float]] = {}

    def _arn(self, key_id: str) -> str:
        try:
            metadata = self._kms.describe_key(KeyId=key_id)["KeyMetadata"]
        except (ClientError, BotoCoreError) as exc:
            raise KeyUnavailable("The KMS key cannot be described.") from exc
        return str(metadata["Arn"])

    def _provider(self, kek_id: str) -> StrictAwsKmsMasterKeyProvider:
        with self._lock:
            provider = self._providers.get(kek_id)
            if provider is None:
                provider = StrictAwsKmsMasterKeyProvider(
                    key_ids=[kek_id], botocore_session=self._session
                )
                self._providers[kek_id] = provider
            return provider

    def default_kek_id(self) -> str:
        if self._default is None:
            self._default = self._arn(self._configured)
        return self._default

    def _require_enabled(self, kek_id: str) -> None:
        # KMS refuses a disabled key by itself; checking first (cached 30 s) gives a clear error
        # and holds the contract against test peers that do not model key states (moto).
        now = time.monotonic()
        with self._lock:
            known = self._states.get(kek_id)
        if known is None or now - known[1] > _STATE_TTL_S:
            known = (self.check(kek_id), now)
            with self._lock:
                self._states[kek_id] = known
        if not known[0]:
            raise KeyUnavailable("The KMS key is not enabled.")

    def wrap(self, kek_id: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        self._require_enabled(kek_id)
        return self._envelope.encrypt(self._provider(kek_id), plaintext, context)

    def unwrap(self, kek_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        self._require_enabled(kek_id)
        return self._envelope.decrypt(self._provider(kek_id), wrapped, context)

    def create_kek(self) -> str:
        try:
            metadata = self._kms.create_key(
                KeySpec="SYMMETRIC_DEFAULT",
                KeyUsage="ENCRYPT_DECRYPT",
                Description="FinCore card vault key-encryption key",
                Tags=[{"TagKey": "pci_zone", "TagValue": "cde"}],
            )["KeyMetadata"]
            self._kms.enable_key_rotation(KeyId=metadata["KeyId"])
        except (ClientError, BotoCoreError) as exc:
            raise KeyUnavailable("A new KMS key could not be created.") from exc
        return str(metadata["Arn"])

    def retire_kek(self, kek_id: str) -> None:
        try:
            # DisableKey by bare key id: moto 5.2 (the test peer) fails on an ARN here.
            key_id = self._kms.describe_key(KeyId=kek_id)["KeyMetadata"]["KeyId"]
            self._kms.disable_key(KeyId=key_id)
        except (ClientError, BotoCoreError) as exc:
            raise KeyUnavailable("The KMS key could not be disabled.") from exc
        with self._lock:
            self._providers.pop(kek_id, None)
            self._states[kek_id] = (False, time.monotonic())

    def check(self, kek_id: str) -> bool:
        try:
            metadata: dict[str, Any] = self._kms.describe_key(KeyId=kek_id)["KeyMetadata"]
        except (ClientError, BotoCoreError):
            return False
        return bool(metadata.get("KeyState") == "Enabled")
