"""One contract for every KEK provider: the key file, AWS KMS (moto in server mode) and
HashiCorp Vault Transit through hvac (against the stand-in server in transit_standin.py, since
no Vault server can be installed here)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from cde.vault.adapters.aws_kms import KmsKeyProvider
from cde.vault.adapters.files import FileKeyProvider, KeyFileError
from cde.vault.adapters.hashicorp import TransitKeyProvider
from cde.vault.domain import KeyPurpose, KeyUnavailable, RecordIntegrityError, VaultError
from cde.vault.domain.keys import wrapping_context
from cde.vault.ports import KeyProvider
from tests.contract.vault.transit_standin import TransitStandIn, transit_standin
from tests.harness.peers import MotoServer

CONTEXT = wrapping_context("dk_aaaaaaaaaaaaaaaaaaaaaaaaaa", "mer_a", KeyPurpose.RECORD)
OTHER = wrapping_context("dk_bbbbbbbbbbbbbbbbbbbbbbbbbb", "mer_a", KeyPurpose.RECORD)
DATA_KEY = bytes(range(32))


class KeyProviderContract:
    """Every provider keeps these promises (cde.vault.ports.KeyProvider). Not collected."""

    @pytest.fixture
    def provider(self) -> KeyProvider:
        raise NotImplementedError

    def test_wrap_and_unwrap(self, provider: KeyProvider) -> None:
        """A wrapped data key comes back unchanged, and the blob does not contain it."""
        kek = provider.default_kek_id()
        wrapped = provider.wrap(kek, DATA_KEY, CONTEXT)
        assert DATA_KEY not in wrapped
        assert provider.unwrap(kek, wrapped, CONTEXT) == DATA_KEY
        assert provider.wrap(kek, DATA_KEY, CONTEXT) != wrapped  # fresh message each time

    def test_the_context_is_enforced(self, provider: KeyProvider) -> None:
        """A wrapped key moved to another data key's row (another context) does not unwrap."""
        kek = provider.default_kek_id()
        wrapped = provider.wrap(kek, DATA_KEY, CONTEXT)
        with pytest.raises((RecordIntegrityError, KeyUnavailable)):
            provider.unwrap(kek, wrapped, OTHER)

    def test_tampered_blobs_do_not_unwrap(self, provider: KeyProvider) -> None:
        """A flipped byte in the message is refused, never a wrong key."""
        kek = provider.default_kek_id()
        wrapped = bytearray(provider.wrap(kek, DATA_KEY, CONTEXT))
        wrapped[-5] ^= 0xFF
        with pytest.raises(VaultError):
            provider.unwrap(kek, bytes(wrapped), CONTEXT)

    def test_new_keks_are_separate(self, provider: KeyProvider) -> None:
        """A new KEK works, and what one KEK wrapped the other cannot unwrap."""
        first = provider.default_kek_id()
        second = provider.create_kek()
        assert second != first
        assert provider.check(second)
        wrapped = provider.wrap(second, DATA_KEY, CONTEXT)
        assert provider.unwrap(second, wrapped, CONTEXT) == DATA_KEY
        with pytest.raises(VaultError):
            provider.unwrap(first, wrapped, CONTEXT)

    def test_a_retired_kek_is_unusable(self, provider: KeyProvider) -> None:
        """After retire_kek the KEK neither checks nor unwraps, and retiring again is harmless."""
        kek = provider.create_kek()
        wrapped = provider.wrap(kek, DATA_KEY, CONTEXT)
        provider.retire_kek(kek)
        provider.retire_kek(kek)
        assert not provider.check(kek)
        with pytest.raises(KeyUnavailable):
            provider.unwrap(kek, wrapped, CONTEXT)
        assert provider.check(provider.default_kek_id())

    def test_unknown_keks_do_not_check(self, provider: KeyProvider) -> None:
        """check() is False for a KEK the provider does not hold."""
        assert not provider.check("kek_doesnotexistatallxxxxxxx")


class TestFileKeyProvider(KeyProviderContract):
    @pytest.fixture
    def provider(self, tmp_path: Path) -> KeyProvider:
        return FileKeyProvider(tmp_path / "cde" / "vault-keys.json")

    def test_the_key_file_is_created_private(self, tmp_path: Path) -> None:
        """First use creates the file 0600 in a 0700 folder, holding one 256-bit key."""
        path = tmp_path / "fresh" / "vault-keys.json"
        FileKeyProvider(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        keys = json.loads(path.read_text())["keys"]
        assert len(keys) == 1

    def test_a_readable_key_file_is_refused(self, tmp_path: Path) -> None:
        """A key file others can read is not used (PCI DSS 3.6.1.2)."""
        path = tmp_path / "vault-keys.json"
        FileKeyProvider(path)
        os.chmod(path, 0o644)
        with pytest.raises(KeyFileError):
            FileKeyProvider(path)

    def test_retiring_erases_the_material(self, tmp_path: Path) -> None:
        """The retired KEK's bytes are no longer in the file."""
        path = tmp_path / "vault-keys.json"
        provider = FileKeyProvider(path)
        kek = provider.create_kek()
        material = next(
            k["material"] for k in json.loads(path.read_text())["keys"] if k["id"] == kek
        )
        provider.retire_kek(kek)
        assert material not in path.read_text()
        assert kek not in path.read_text()

    def test_two_processes_share_the_file(self, tmp_path: Path) -> None:
        """A KEK created through one provider instance is usable by another (CLI + server)."""
        path = tmp_path / "vault-keys.json"
        server, cli = FileKeyProvider(path), FileKeyProvider(path)
        kek = cli.create_kek()
        assert server.unwrap(kek, cli.wrap(kek, DATA_KEY, CONTEXT), CONTEXT) == DATA_KEY


@pytest.mark.aws
class TestKmsKeyProvider(KeyProviderContract):
    @pytest.fixture
    def provider(self, aws: MotoServer) -> KeyProvider:
        kms = boto3.client("kms", region_name="us-east-1")
        key = kms.create_key(KeySpec="SYMMETRIC_DEFAULT", Description="vault test KEK")
        kms.create_alias(
            AliasName="alias/fincore-vault-test", TargetKeyId=key["KeyMetadata"]["KeyId"]
        )
        return KmsKeyProvider("alias/fincore-vault-test", region="us-east-1")

    def test_the_alias_resolves_to_the_key_arn(self, provider: KeyProvider) -> None:
        """The strict provider is pinned to an ARN, never an alias that could be re-pointed."""
        assert provider.default_kek_id().startswith("arn:aws:kms:us-east-1:")

    def test_kms_sees_the_context(self, aws: MotoServer, provider: KeyProvider) -> None:
        """The wrapped data key is a KMS ciphertext bound to the context: decrypting the ESDK's
        data key directly with another context fails inside KMS itself."""
        kms = boto3.client("kms", region_name="us-east-1")
        arn = provider.default_kek_id()
        made = kms.generate_data_key(KeyId=arn, KeySpec="AES_256", EncryptionContext=CONTEXT)
        assert (
            kms.decrypt(CiphertextBlob=made["CiphertextBlob"], EncryptionContext=CONTEXT)[
                "Plaintext"
            ]
            == made["Plaintext"]
        )
        with pytest.raises(kms.exceptions.InvalidCiphertextException):
            kms.decrypt(CiphertextBlob=made["CiphertextBlob"], EncryptionContext=OTHER)

    def test_new_keks_rotate_yearly_and_retire_disabled(
        self, aws: MotoServer, provider: KeyProvider
    ) -> None:
        """A created CMK has automatic rotation on; a retired one is Disabled, not deleted."""
        kms = boto3.client("kms", region_name="us-east-1")
        kek = provider.create_kek()
        assert kms.get_key_rotation_status(KeyId=kek)["KeyRotationEnabled"]
        provider.retire_kek(kek)
        assert kms.describe_key(KeyId=kek)["KeyMetadata"]["KeyState"] == "Disabled"


class TestTransitKeyProvider(KeyProviderContract):
    """Against the Transit stand-in (no Vault server can be installed on this machine)."""

    @pytest.fixture
    def standin(self) -> Iterator[TransitStandIn]:
        with transit_standin() as server:
            yield server

    @pytest.fixture
    def provider(self, standin: TransitStandIn) -> KeyProvider:
        import hvac

        hvac.Client(url=standin.address, token=standin.token).secrets.transit.create_key(
            name="fincore-vault", derived=True
        )
        return TransitKeyProvider(
            address=standin.address, token=standin.token, key_name="fincore-vault"
        )

    def test_transit_does_the_wrapping(
        self, standin: TransitStandIn, provider: KeyProvider
    ) -> None:
        """Data keys come from transit/datakey and go back through transit/decrypt."""
        kek = provider.default_kek_id()
        provider.unwrap(kek, provider.wrap(kek, DATA_KEY, CONTEXT), CONTEXT)
        paths = [path for _method, path in standin.state.calls]
        assert "datakey/plaintext/fincore-vault" in paths and "decrypt/fincore-vault" in paths

    def test_a_wrong_token_is_key_unavailable(
        self, standin: TransitStandIn, provider: KeyProvider
    ) -> None:
        """Without a valid Vault token nothing is wrapped."""
        wrong = TransitKeyProvider(
            address=standin.address, token="hvs.wrong", key_name="fincore-vault"
        )
        with pytest.raises(KeyUnavailable):
            wrong.wrap("fincore-vault", DATA_KEY, CONTEXT)
        assert not wrong.check("fincore-vault")
