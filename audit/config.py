"""audit (both zones): the frozen audit settings, built from the environment at open time.

Every setting is looked up per zone first (`FINCORE_CDE_AUDIT_URL`), then shared
(`FINCORE_AUDIT_URL`): the runner hands a CDE process only `FINCORE_CDE_*` variables.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from fincore.settings import SettingsError, env_float, env_int, environment, var_dir


class Durability(StrEnum):
    """When an appended record is on stable storage."""

    ALWAYS = "always"  # fsync (or a synchronous commit) before `record` returns
    BATCH = "batch"  # fsync at most every N records or T ms; a machine crash loses at most those


@dataclass(frozen=True, slots=True)
class DurabilityPolicy:
    mode: Durability = Durability.ALWAYS
    batch_records: int = 64
    batch_ms: int = 50

    def describe(self) -> str:
        if self.mode is Durability.ALWAYS:
            return "always"
        return f"batch(<= {self.batch_records} records / {self.batch_ms} ms)"


def zone_setting(
    name: str, zone: str, default: str | None, env: Mapping[str, str] | None
) -> str | None:
    """`FINCORE_<ZONE>_AUDIT_<NAME>`, else `FINCORE_AUDIT_<NAME>`, else `default`."""
    source = os.environ if env is None else env
    for key in (f"FINCORE_{zone.upper()}_AUDIT_{name}", f"FINCORE_AUDIT_{name}"):
        value = source.get(key)
        if value:
            return value
    return default


def _zone_int(name: str, zone: str, default: int, env: Mapping[str, str] | None) -> int:
    raw = zone_setting(name, zone, None, env)
    if raw is None:
        return default
    return env_int(f"FINCORE_AUDIT_{name}", default, {f"FINCORE_AUDIT_{name}": raw}, minimum=1)


def _zone_float(name: str, zone: str, default: float, env: Mapping[str, str] | None) -> float:
    raw = zone_setting(name, zone, None, env)
    if raw is None:
        return default
    value = env_float(f"FINCORE_AUDIT_{name}", default, {f"FINCORE_AUDIT_{name}": raw})
    if value < 0:
        raise SettingsError(f"FINCORE_AUDIT_{name} must be >= 0")
    return value


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """Where a zone's audit log lives, how durable it is and where its keys are."""

    zone: str
    component: str
    url: str
    url_is_default: bool
    var_dir: Path
    signing_key_file: Path
    public_key_files: tuple[Path, ...]
    durability: DurabilityPolicy
    checkpoint_every: int
    checkpoint_seconds: float
    environment: str
    known_actors: tuple[str, ...]

    @property
    def key_dir(self) -> Path:
        return self.signing_key_file.parent

    @classmethod
    def from_env(
        cls,
        zone: str,
        component: str,
        *,
        url: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AuditSettings:
        root = var_dir(env)
        default_url = f"file://{root / 'audit'}"
        chosen = url or zone_setting("URL", zone, None, env)
        key_file = Path(
            zone_setting(
                "SIGNING_KEY_FILE",
                zone,
                str(root / "keys" / "audit" / f"{zone}-checkpoint.key"),
                env,
            )
            or ""
        )
        public = zone_setting("PUBLIC_KEY_FILES", zone, None, env)
        mode_raw = (zone_setting("FSYNC", zone, Durability.ALWAYS.value, env) or "").lower()
        try:
            mode = Durability(mode_raw)
        except ValueError as exc:
            raise SettingsError("FINCORE_AUDIT_FSYNC must be 'always' or 'batch'") from exc
        known = zone_setting("KNOWN_ACTORS", zone, "", env) or ""
        return cls(
            zone=zone,
            component=component,
            url=chosen or default_url,
            url_is_default=chosen is None,
            var_dir=root,
            signing_key_file=key_file,
            public_key_files=tuple(Path(p.strip()) for p in (public or "").split(",") if p.strip()),
            durability=DurabilityPolicy(
                mode=mode,
                batch_records=_zone_int("FSYNC_BATCH_RECORDS", zone, 64, env),
                batch_ms=_zone_int("FSYNC_BATCH_MS", zone, 50, env),
            ),
            checkpoint_every=_zone_int("CHECKPOINT_RECORDS", zone, 1000, env),
            checkpoint_seconds=_zone_float("CHECKPOINT_SECONDS", zone, 60.0, env),
            environment=environment(env),
            known_actors=tuple(a.strip() for a in known.split(",") if a.strip()),
        )


def auditor_name(env: Mapping[str, str] | None = None) -> str:
    """Who runs the auditor CLI: `FINCORE_AUDIT_ACTOR`, else the login name."""
    source = os.environ if env is None else env
    explicit = source.get("FINCORE_AUDIT_ACTOR", "").strip()
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
