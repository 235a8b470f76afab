"""audit (both zones): the Protocols for audit sinks, checkpoint signers and evidence bundles."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from audit.domain import ChainTail

# Called by a sink under its append lock with the stream's current tail; returns the stored
# lines to append (each ends with a newline), built to follow that tail.
LineBuilder = Callable[[ChainTail], Sequence[bytes]]


class AuditSink(Protocol):
    """One zone's audit storage: append-only streams of stored record lines, plus checkpoints.

    Guarantees every adapter keeps (the contract suite in tests/contract/audit checks them):
    - `append` is atomic per call and serialised per stream across threads and processes of the
      zone (where the storage allows several writers): the builder sees the true tail, and its
      lines land contiguously, in order, exactly once, after that tail. No interleaving.
    - Lines are stored byte for byte; `read` returns them in storage order.
    - Durability: `append` returns when the lines are durable under the configured policy
      (`always`: on stable storage; `batch`: at most N records or T ms may be lost on a crash
      of the machine); `sync` makes everything appended so far durable.
    - Every storage failure is raised as `AuditUnavailable` (fail closed); nothing is retried
      silently in a way that could duplicate a record.
    - A sink never rewrites or deletes an acknowledged record.
    """

    @property
    def zone(self) -> str:
        """The zone whose log this is."""
        ...

    @property
    def writer_stream(self) -> str:
        """The stream this writer appends to (the zone for shared logs; per process on AWS)."""
        ...

    def append(self, build: LineBuilder) -> ChainTail:
        """Append the builder's lines to `writer_stream`; return the new tail."""
        ...

    def sync(self) -> None:
        """Make every line appended by this writer durable now."""
        ...

    def put_checkpoint(self, line: bytes) -> None:
        """Store a signed checkpoint line of `writer_stream`.

        Before it returns, the records the checkpoint covers are durable, and where the
        storage offers immutability (S3 Object Lock) they are sealed there too.
        """
        ...

    def streams(self) -> list[str]:
        """Every stream of the zone that holds records, sorted."""
        ...

    def read(self, stream: str) -> Iterator[bytes]:
        """The stream's stored lines in storage order; only the last may lack its newline."""
        ...

    def checkpoints(self, stream: str) -> list[bytes]:
        """The stream's checkpoint lines in storage order (unverified)."""
        ...

    def close(self) -> None:
        """Flush (`sync`) and release files, connections and locks. Idempotent."""
        ...


class CheckpointSigner(Protocol):
    """Signs checkpoints with a private key the log's storage does not hold (PCI DSS 10.3.4)."""

    @property
    def key_id(self) -> str:
        """The name of the public key that verifies this signer's signatures."""
        ...

    def sign(self, message: bytes) -> bytes:
        """A signature over `message`. Raises `AuditUnavailable` if the key cannot be used."""
        ...


class SignatureVerifier(Protocol):
    """Checks checkpoint signatures with public keys only (the verifier never needs a secret)."""

    def key_ids(self) -> list[str]:
        """The ids of the public keys this verifier trusts."""
        ...

    def public_keys_pem(self) -> dict[str, bytes]:
        """Each trusted public key, PEM-encoded, by key id (for evidence bundles)."""
        ...

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool:
        """True when `signature` over `message` was made by the private half of `key_id`."""
        ...


class BundleWriter(Protocol):
    """Where an evidence bundle's files go. Writes are whole files; paths use `/`."""

    @property
    def location(self) -> str:
        """Where the bundle is, for the person who asked for it."""
        ...

    def put(self, path: str, data: bytes) -> None:
        """Write one file of the bundle (never overwrites an existing file)."""
        ...


class BundleReader(Protocol):
    """Reads an evidence bundle on any machine, without any FinCore configuration."""

    def files(self) -> list[str]:
        """Every file in the bundle, as relative paths with `/`."""
        ...

    def get(self, path: str) -> bytes:
        """One file's bytes. Raises `AuditError` if it is missing."""
        ...
