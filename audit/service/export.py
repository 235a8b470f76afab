"""audit (both zones): evidence bundles an auditor can verify on another machine.

A bundle holds, per stream, the records of the requested time range extended back to the
signed checkpoint before it and forward to the signed checkpoint after it (so both ends are
anchored by signatures), those checkpoints, the public keys, the verification report made at
export time and a manifest with the SHA-256 (base64url) of every file. `verify_bundle` needs
nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from audit.domain import (
    AuditError,
    Checkpoint,
    InvalidAuditRecord,
    IssueKind,
    StreamReport,
    canonical_json,
    digest_b64,
    format_time,
    split_lines,
)
from audit.ports import BundleReader, BundleWriter, SignatureVerifier
from audit.service.reader import AuditReader, read_checkpoints, verify_stream
from audit.service.writer import utc_now

BUNDLE_FORMAT = "fincore-audit-evidence/1"
MANIFEST = "manifest.json"

README = """FinCore audit evidence bundle
=============================

Verify it on any machine with the FinCore source (no configuration, no network):

    python -m audit verify-bundle <this folder>

What is checked: every file against manifest.json (SHA-256), every checkpoint signature
against the public keys in keys/, and every record's hash and link from the signed
checkpoint before the range to the signed checkpoint after it. Compare the key ids printed
by verify-bundle with the ones your organisation published before trusting the keys.
"""


@dataclass(slots=True)
class ExportResult:
    """What was written: where, the manifest's own hash and the counts per stream."""

    location: str
    manifest_sha256: str
    streams: list[dict[str, Any]] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(int(s["records_in_range"]) for s in self.streams)


def _seq_and_time(raw: bytes) -> tuple[int | None, str | None]:
    try:
        data = json.loads(raw)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    seq, time = data.get("seq"), data.get("time")
    return (seq if isinstance(seq, int) else None), (time if isinstance(time, str) else None)


def export_bundle(
    reader: AuditReader,
    writer: BundleWriter,
    *,
    time_from: str,
    time_to: str,
    zones: list[str] | None = None,
    exported_by: str = "",
) -> ExportResult:
    """Write the evidence bundle of [time_from, time_to) for the zones (all by default)."""
    chosen = zones or reader.zones
    files: dict[str, bytes] = {}
    streams: list[dict[str, Any]] = []
    key_ids: dict[str, list[str]] = {}
    verification = reader.verify(chosen, time_from=time_from, time_to=time_to)
    for zone in chosen:
        verifier = reader.verifier(zone)
        for key_id, pem in verifier.public_keys_pem().items():
            files[f"keys/{zone}/{key_id}.pem"] = pem
        key_ids[zone] = verifier.key_ids()
        sink = reader.sink(zone)
        for stream in sink.streams():
            entry = _export_stream(
                sink.read(stream),
                sink.checkpoints(stream),
                verifier,
                zone,
                stream,
                time_from,
                time_to,
                files,
            )
            if entry is not None:
                streams.append(entry)
    files["verification.json"] = canonical_json(verification.to_dict()) + b"\n"
    files["README.txt"] = README.encode()
    manifest = {
        "format": BUNDLE_FORMAT,
        "created": format_time(utc_now()),
        "created_by": exported_by,
        "from": time_from,
        "to": time_to,
        "zones": chosen,
        "key_ids": key_ids,
        "streams": streams,
        "source_verification_ok": verification.ok,
        "files": {
            path: {"sha256": digest_b64(data), "bytes": len(data)}
            for path, data in sorted(files.items())
        },
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    for path, data in sorted(files.items()):
        writer.put(path, data)
    writer.put(MANIFEST, manifest_bytes)
    return ExportResult(writer.location, digest_b64(manifest_bytes), streams)


def _export_stream(
    lines: Iterable[bytes],
    checkpoint_lines: list[bytes],
    verifier: SignatureVerifier,
    zone: str,
    stream: str,
    time_from: str,
    time_to: str,
    files: dict[str, bytes],
) -> dict[str, Any] | None:
    signed, _issues, _count = read_checkpoints(checkpoint_lines, verifier, zone, stream)
    valid: dict[int, bytes] = {}
    for raw in checkpoint_lines:
        try:
            checkpoint = Checkpoint.from_line(raw)
        except InvalidAuditRecord:
            continue
        if signed.get(checkpoint.seq) == checkpoint.hash and checkpoint.seq not in valid:
            valid[checkpoint.seq] = raw if raw.endswith(b"\n") else raw + b"\n"
    anchor_seq = 0
    anchor_hash: str | None = None
    kept: list[bytes] = []
    in_range = 0
    for raw in lines:
        seq, time = _seq_and_time(raw)
        if seq is None:
            if kept or in_range:
                kept.append(raw)
            continue
        if time is not None and time < time_from:
            if seq in valid:
                anchor_seq, anchor_hash = seq, signed[seq]
                kept.clear()
            else:
                kept.append(raw)
            continue
        if time is not None and time >= time_to:
            kept.append(raw)
            # Stop once a signed checkpoint anchors the end of the range.
            if seq in valid:
                break
            continue
        in_range += 1
        kept.append(raw)
    if in_range == 0:
        return None
    records_path = f"records/{zone}/{stream}.jsonl"
    checkpoints_path = f"checkpoints/{zone}/{stream}.jsonl"
    files[records_path] = b"".join(kept)
    last_kept = _seq_and_time(kept[-1])[0] if kept else None
    files[checkpoints_path] = b"".join(
        line
        for seq, line in sorted(valid.items())
        if seq >= anchor_seq and (last_kept is None or seq <= last_kept)
    )
    return {
        "zone": zone,
        "stream": stream,
        "anchor": {"seq": anchor_seq, "hash": anchor_hash},
        "records_file": records_path,
        "checkpoints_file": checkpoints_path,
        "records": len(kept),
        "records_in_range": in_range,
    }


class _Pinned:
    """A verifier restricted to key ids pinned out of band (ids come from the key bytes)."""

    def __init__(self, inner: SignatureVerifier, trusted: set[str]) -> None:
        self._inner = inner
        self._trusted = trusted

    def key_ids(self) -> list[str]:
        return [k for k in self._inner.key_ids() if k in self._trusted]

    def public_keys_pem(self) -> dict[str, bytes]:
        return {k: v for k, v in self._inner.public_keys_pem().items() if k in self._trusted}

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool:
        return key_id in self._trusted and self._inner.verify(key_id, message, signature)


@dataclass(slots=True)
class BundleReport:
    """The verification of an evidence bundle."""

    location: str
    manifest_problems: list[str] = field(default_factory=list)
    streams: list[StreamReport] = field(default_factory=list)
    key_ids: dict[str, list[str]] = field(default_factory=dict)
    time_from: str | None = None
    time_to: str | None = None

    @property
    def ok(self) -> bool:
        return not self.manifest_problems and all(s.ok for s in self.streams)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.location,
            "ok": self.ok,
            "from": self.time_from,
            "to": self.time_to,
            "key_ids": self.key_ids,
            "manifest_problems": self.manifest_problems,
            "streams": [s.to_dict() for s in self.streams],
        }


def verify_bundle(
    bundle: BundleReader,
    make_verifier: Callable[[Mapping[str, bytes]], SignatureVerifier],
    *,
    location: str,
    trusted_key_ids: set[str] | None = None,
) -> BundleReport:
    """Check the manifest hashes, the signatures and the chain of every stream in the bundle.

    `make_verifier` builds a verifier from PEM public keys; `trusted_key_ids`, when given, are
    the only keys accepted (pin them to the fingerprints published out of band).
    """
    report = BundleReport(location)
    try:
        manifest = json.loads(bundle.get(MANIFEST))
    except (AuditError, ValueError):
        report.manifest_problems.append("manifest.json is missing or unreadable")
        return report
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        report.manifest_problems.append(f"not a {BUNDLE_FORMAT} bundle")
        return report
    report.time_from, report.time_to = manifest.get("from"), manifest.get("to")
    listed: dict[str, Any] = manifest.get("files") or {}
    contents: dict[str, bytes] = {}
    for path, meta in sorted(listed.items()):
        try:
            data = bundle.get(path)
        except AuditError:
            report.manifest_problems.append(f"{path}: listed in the manifest but missing")
            continue
        if digest_b64(data) != meta.get("sha256"):
            report.manifest_problems.append(f"{path}: SHA-256 differs from the manifest")
        contents[path] = data
    for path in bundle.files():
        if path != MANIFEST and path not in listed:
            report.manifest_problems.append(f"{path}: not listed in the manifest")
    for entry in manifest.get("streams") or []:
        zone, stream = str(entry["zone"]), str(entry["stream"])
        prefix = f"keys/{zone}/"
        keys = {
            path[len(prefix) : -len(".pem")]: data
            for path, data in contents.items()
            if path.startswith(prefix) and path.endswith(".pem")
        }
        verifier = make_verifier(keys)
        if trusted_key_ids is not None:
            verifier = _Pinned(verifier, trusted_key_ids)
        report.key_ids[zone] = verifier.key_ids()
        anchor_meta = entry.get("anchor") or {}
        anchor_seq = int(anchor_meta.get("seq") or 0)
        anchor = (anchor_seq, str(anchor_meta.get("hash"))) if anchor_seq else None
        checkpoint_lines = split_lines(contents.get(str(entry["checkpoints_file"]), b""))
        records = split_lines(contents.get(str(entry["records_file"]), b""))
        result = verify_stream(
            records,
            checkpoint_lines,
            verifier,
            zone,
            stream,
            anchor=anchor,
            time_from=report.time_from,
            time_to=report.time_to,
        )
        if anchor is not None:
            signed, _issues, _count = read_checkpoints(checkpoint_lines, verifier, zone, stream)
            if signed.get(anchor[0]) != anchor[1]:
                result.add(
                    IssueKind.FORGED_CHECKPOINT,
                    anchor[0],
                    f"the bundle starts after record {anchor[0]} but no validly signed "
                    "checkpoint vouches for that record",
                )
        report.streams.append(result)
    return report
