"""audit (both zones): the composition root: picks the sink from an allow-listed URL scheme.

`open_audit_log` is what every FinCore process calls once at start; `open_audit_reader` is
for verifiers and the auditor CLI; `export_evidence`/`verify_evidence` handle bundles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from audit.adapters.bundle import DirectoryBundleReader, DirectoryBundleWriter
from audit.adapters.ed25519 import Ed25519FileSigner, Ed25519Verifier
from audit.adapters.memory import MemoryAuditSink, named_store
from audit.config import AuditSettings
from audit.domain import AuditError, check_zone
from audit.ports import AuditSink, SignatureVerifier
from audit.service import (
    AuditLog,
    AuditReader,
    BundleReport,
    ExportResult,
    export_bundle,
    verify_bundle,
)
from fincore.settings import choose_adapter, refuse_dev_defaults_in_production, url_scheme

DEFAULT_ZONES = ("cde", "noncde")
AUDITOR_COMPONENT = "audit-cli"


def file_root(url: str) -> Path:
    """`file:///abs/path` or `file://relative/path` -> the audit root folder."""
    parts = urlsplit(url)
    return Path(unquote(parts.netloc + parts.path))


def build_sink(settings: AuditSettings, *, writer: bool = True) -> AuditSink:
    """The sink named by `settings.url`; only these schemes are accepted."""
    zone, policy = settings.zone, settings.durability

    def postgres(url: str) -> AuditSink:
        from audit.adapters.postgres import PostgresAuditSink

        return PostgresAuditSink(url, zone, policy)

    def aws(url: str) -> AuditSink:
        from audit.adapters.aws import CloudWatchS3AuditSink

        return CloudWatchS3AuditSink(url, zone, settings.component, policy, writer=writer)

    def files(url: str) -> AuditSink:
        from audit.adapters.files import FileAuditSink

        return FileAuditSink(file_root(url), zone, policy)

    def memory(url: str) -> AuditSink:
        return MemoryAuditSink(zone, named_store(urlsplit(url).netloc or "default", zone))

    allowed: Mapping[str, Callable[[str], AuditSink]] = {
        "file": files,
        "postgresql": postgres,
        "postgres": postgres,
        "aws": aws,
        "memory": memory,
    }
    return choose_adapter(f"FINCORE_{zone.upper()}_AUDIT_URL", settings.url, allowed)


def _refuse_dev_defaults(settings: AuditSettings, create_key: bool) -> None:
    refuse_dev_defaults_in_production(
        "audit",
        {
            f"FINCORE_{settings.zone.upper()}_AUDIT_URL unset (file sink under var/)": (
                settings.url_is_default
            ),
            "memory:// audit sink": url_scheme(settings.url) == "memory",
            "checkpoint key created on first use": create_key,
        },
        {"FINCORE_ENV": settings.environment},
    )


def open_audit_log(
    zone: str,
    component: str,
    *,
    url: str | None = None,
    env: Mapping[str, str] | None = None,
    lifecycle: bool = True,
    create_signing_key: bool | None = None,
    require_signing_key: bool = True,
) -> AuditLog:
    """The audit writer of this process for `zone`, chosen by `FINCORE_<ZONE>_AUDIT_URL`.

    The checkpoint key is created on first use outside production. Raises `AuditUnavailable`
    when the sink cannot be reached (the process must not start unaudited), `AuditError` for
    a broken configuration and `SettingsError` for a bad setting.
    """
    settings = AuditSettings.from_env(check_zone(zone), component, url=url, env=env)
    create = (
        settings.environment != "production" if create_signing_key is None else create_signing_key
    )
    _refuse_dev_defaults(settings, create_signing_key is True)
    signer: Ed25519FileSigner | None = None
    if create or settings.signing_key_file.exists():
        signer = Ed25519FileSigner.load(settings.signing_key_file, create=create)
    elif require_signing_key:
        raise AuditError(
            f"the audit checkpoint key {settings.signing_key_file} does not exist "
            f"(set FINCORE_{zone.upper()}_AUDIT_SIGNING_KEY_FILE)"
        )
    sink = build_sink(settings, writer=True)
    try:
        return AuditLog(
            sink,
            signer,
            zone=zone,
            component=component,
            checkpoint_every=settings.checkpoint_every,
            checkpoint_seconds=settings.checkpoint_seconds,
            lifecycle=lifecycle,
            start_details={
                "sink": url_scheme(settings.url),
                "durability": settings.durability.describe(),
                "checkpoint_every": settings.checkpoint_every,
                "checkpoint_seconds": settings.checkpoint_seconds,
                "checkpoint_key_id": signer.key_id if signer else None,
            },
        )
    except BaseException:
        sink.close()
        raise


def load_verifier(settings: AuditSettings) -> SignatureVerifier:
    """The zone's trusted public keys: the configured files, else `<zone>-checkpoint*.pub`."""
    files = list(settings.public_key_files) or sorted(
        settings.key_dir.glob(f"{settings.zone}-checkpoint*.pub")
    )
    return Ed25519Verifier.from_files(files)


def open_audit_reader(
    zones: str | Sequence[str] = DEFAULT_ZONES,
    *,
    url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> AuditReader:
    """A read-only view of the zones' logs for verification, search, review and export."""
    chosen = [zones] if isinstance(zones, str) else list(zones)
    sinks: dict[str, AuditSink] = {}
    verifiers: dict[str, SignatureVerifier] = {}
    try:
        for zone in chosen:
            settings = AuditSettings.from_env(check_zone(zone), AUDITOR_COMPONENT, url=url, env=env)
            verifiers[zone] = load_verifier(settings)
            sinks[zone] = build_sink(settings, writer=False)
    except BaseException:
        for sink in sinks.values():
            sink.close()
        raise
    return AuditReader(sinks, verifiers)


def known_services(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """Service identities the review accepts: every runner component, the CLI, and extras."""
    from fincore.runner import COMPONENTS

    extra: set[str] = set()
    for zone in DEFAULT_ZONES:
        extra.update(AuditSettings.from_env(zone, AUDITOR_COMPONENT, env=env).known_actors)
    return frozenset({*COMPONENTS, AUDITOR_COMPONENT, "audit-reader", *extra})


def export_evidence(
    reader: AuditReader,
    out: Path,
    *,
    time_from: str,
    time_to: str,
    zones: Sequence[str] | None = None,
    exported_by: str = "",
) -> ExportResult:
    """Write an evidence bundle folder at `out` (which must be new or empty)."""
    return export_bundle(
        reader,
        DirectoryBundleWriter(out),
        time_from=time_from,
        time_to=time_to,
        zones=list(zones) if zones else None,
        exported_by=exported_by,
    )


def verify_evidence(
    path: Path,
    *,
    trusted_key_ids: set[str] | None = None,
    public_key_files: Sequence[Path] = (),
) -> BundleReport:
    """Verify a bundle folder with nothing but its content (and optionally pinned keys)."""
    pinned = set(trusted_key_ids or ())
    if public_key_files:
        pinned |= set(Ed25519Verifier.from_files(list(public_key_files)).key_ids())

    def make_verifier(pems: Mapping[str, bytes]) -> SignatureVerifier:
        return Ed25519Verifier.from_pems(list(pems.values()))

    return verify_bundle(
        DirectoryBundleReader(path),
        make_verifier,
        location=str(path),
        trusted_key_ids=pinned or None,
    )
