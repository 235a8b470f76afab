"""cde.vault (CDE): HashiCorp Vault Transit as the KEK provider, through `hvac`.

An aws-encryption-sdk master key (`TransitMasterKey`) asks Transit for each message key
(`transit/datakey/plaintext/<key>`) and decrypts it again with `transit/decrypt/<key>`. Transit
keys are created with `derived=true`, and every call passes the message's encryption context
as Transit's derivation `context`, so Transit itself refuses to unwrap a data key for another
context. Key material never leaves Transit (PCI DSS 3.6.1.2). Retiring a KEK deletes the
Transit key (after allowing deletion on it).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Mapping
from typing import Any

import attr
import hvac
from aws_encryption_sdk.exceptions import DecryptKeyError, GenerateKeyError
from aws_encryption_sdk.key_providers.base import MasterKey, MasterKeyConfig
from aws_encryption_sdk.structures import DataKey, EncryptedDataKey
from hvac.exceptions import VaultError as HvacError
from requests import RequestException

from cde.vault.adapters.esdk import EsdkEnvelope
from cde.vault.domain import KeyUnavailable
from cde.vault.domain.ids import new_kek_id

PROVIDER_ID = "fincore-vault-transit"


def _context(encryption_context: Mapping[str, str]) -> str:
    canonical = json.dumps(dict(encryption_context), sort_keys=True, separators=(",", ":"))
    return base64.b64encode(canonical.encode("utf-8")).decode("ascii")


@attr.s(hash=True)
class TransitMasterKeyConfig(MasterKeyConfig):  # type: ignore[misc]  # untyped attrs base
    """Configuration of a Transit master key: the hvac client and the mount point."""

    provider_id = PROVIDER_ID
    client: Any = attr.ib(hash=False)
    mount_point: str = attr.ib(hash=True, default="transit")


class TransitMasterKey(MasterKey):  # type: ignore[misc]  # the SDK's base classes are untyped
    """aws-encryption-sdk master key whose wrapping happens inside Vault Transit."""

    provider_id = PROVIDER_ID
    _config_class = TransitMasterKeyConfig

    @property
    def _name(self) -> str:
        return str(self.key_id.decode("utf-8") if isinstance(self.key_id, bytes) else self.key_id)

    def _generate_data_key(self, algorithm: Any, encryption_context: Any) -> DataKey:
        try:
            answer = self.config.client.secrets.transit.generate_data_key(
                name=self._name,
                key_type="plaintext",
                context=_context(encryption_context),
                bits=algorithm.kdf_input_len * 8,
                mount_point=self.config.mount_point,
            )
            data = answer["data"]
            return DataKey(
                key_provider=self.key_provider,
                data_key=base64.b64decode(data["plaintext"]),
                encrypted_data_key=data["ciphertext"].encode("ascii"),
            )
        except (HvacError, RequestException, KeyError, ValueError) as exc:
            raise GenerateKeyError("Transit could not generate a data key") from exc

    def _encrypt_data_key(
        self, data_key: Any, algorithm: Any, encryption_context: Any
    ) -> EncryptedDataKey:
        try:
            answer = self.config.client.secrets.transit.encrypt_data(
                name=self._name,
                plaintext=base64.b64encode(data_key.data_key).decode("ascii"),
                context=_context(encryption_context),
                mount_point=self.config.mount_point,
            )
            return EncryptedDataKey(
                key_provider=self.key_provider,
                encrypted_data_key=answer["data"]["ciphertext"].encode("ascii"),
            )
        except (HvacError, RequestException, KeyError, ValueError) as exc:
            raise GenerateKeyError("Transit could not encrypt a data key") from exc

    def _decrypt_data_key(
        self, encrypted_data_key: Any, algorithm: Any, encryption_context: Any
    ) -> DataKey:
        try:
            answer = self.config.client.secrets.transit.decrypt_data(
                name=self._name,
                ciphertext=encrypted_data_key.encrypted_data_key.decode("ascii"),
                context=_context(encryption_context),
                mount_point=self.config.mount_point,
            )
            return DataKey(
                key_provider=self.key_provider,
                data_key=base64.b64decode(answer["data"]["plaintext"]),
                encrypted_data_key=encrypted_data_key.encrypted_data_key,
            )
        except (HvacError, RequestException, KeyError, ValueError) as exc:
            raise DecryptKeyError("Transit could not decrypt the data key") from exc


class TransitKeyProvider:
    """`KeyProvider` backed by derived AES-256-GCM keys in a Vault Transit mount."""

    name = "hashicorp-transit"

    def __init__(
        self,
        *,
        address: str,
        token: str,
        key_name: str,
        mount_point: str = "transit",
        verify: str | bool = True,
        timeout_s: float = 10.0,
    ) -> None:
        self._client = hvac.Client(url=address, token=token, verify=verify, timeout=timeout_s)
        self._mount = mount_point
        self._default = key_name
        self._envelope = EsdkEnvelope()
        self._keys: dict[str, TransitMasterKey] = {}
        self._lock = threading.Lock()

    def _master_key(self, kek_id: str) -> TransitMasterKey:
        with self._lock:
            key = self._keys.get(kek_id)
            if key is None:
                key = TransitMasterKey(
                    key_id=kek_id.encode("utf-8"), client=self._client, mount_point=self._mount
                )
                self._keys[kek_id] = key
            return key

    def default_kek_id(self) -> str:
        return self._default

    def wrap(self, kek_id: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        return self._envelope.encrypt(self._master_key(kek_id), plaintext, context)

    def unwrap(self, kek_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        return self._envelope.decrypt(self._master_key(kek_id), wrapped, context)

    def create_kek(self) -> str:
        name = "fincore-" + new_kek_id().replace("_", "-")
        try:
            self._client.secrets.transit.create_key(
                name=name, derived=True, key_type="aes256-gcm96", mount_point=self._mount
            )
        except (HvacError, RequestException) as exc:
            raise KeyUnavailable("Transit could not create a key.") from exc
        return name

    def retire_kek(self, kek_id: str) -> None:
        transit = self._client.secrets.transit
        try:
            transit.update_key_configuration(
                name=kek_id, deletion_allowed=True, mount_point=self._mount
            )
            transit.delete_key(name=kek_id, mount_point=self._mount)
        except hvac.exceptions.InvalidPath:
            pass  # already gone
        except (HvacError, RequestException) as exc:
            raise KeyUnavailable("Transit could not delete the key.") from exc
        with self._lock:
            self._keys.pop(kek_id, None)

    def check(self, kek_id: str) -> bool:
        try:
            answer = self._client.secrets.transit.read_key(name=kek_id, mount_point=self._mount)
        except (HvacError, RequestException):
            return False
        data = answer.get("data", {}) if isinstance(answer, dict) else {}
        return bool(data.get("derived"))
