"""psp_sandbox: the frozen settings object, built from the environment at start.

Outside both zones. Keys (secret, publishable, webhook signing secret, admin token, fingerprint
key) come from `FINCORE_SANDBOX_*` variables or `*_FILE` files; any left unset is generated once
into `<state dir>/credentials.json` (mode 0600) so that a local run works with no setup. The
sandbox refuses to run with FINCORE_ENV=production: it is a test PSP.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fincore.sensitive import SecretKey
from fincore.settings import (
    SettingsError,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    is_production,
    var_dir,
)

DEFAULT_API_VERSION = "2026-10-28.endive"
# CSP host-sources: which merchant pages may frame the card element (PCI DSS 6.4.3 practice).
DEFAULT_FRAME_ANCESTORS = (
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://localhost:*",
    "https://localhost:*",
)
_ALNUM = string.ascii_letters + string.digits


def _token(prefix: str, length: int = 32) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


@dataclass(frozen=True)
class Credentials:
    secret_keys: tuple[SecretKey, ...]
    publishable_key: str
    webhook_secret: SecretKey
    admin_token: SecretKey
    fingerprint_key: SecretKey


def _from_env_or_file(name: str, env: Mapping[str, str]) -> str | None:
    value = env.get(name)
    if value:
        return value
    path = env.get(name + "_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"{name}_FILE cannot be read") from exc
    return None


def load_credentials(path: Path, env: Mapping[str, str]) -> Credentials:
    """Credentials from the environment, else from (or generated into) `path`."""
    stored: dict[str, str] = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SettingsError(f"{path} is not a readable credentials file") from exc
    generated: dict[str, Callable[[], str]] = {
        "secret_key": lambda: _token("sk_test_"),
        "publishable_key": lambda: _token("pk_test_"),
        "webhook_secret": lambda: _token("whsec_"),
        "admin_token": lambda: _token("sbxadm_"),
        "fingerprint_key": lambda: secrets.token_hex(32),
    }
    changed = False
    for name, make in generated.items():
        if name not in stored:
            stored[name] = make()
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(stored, handle, indent=2)
        os.replace(temporary, path)

    secret = _from_env_or_file("FINCORE_SANDBOX_SECRET_KEY", env) or stored["secret_key"]
    keys = tuple(SecretKey(k.strip()) for k in secret.split(",") if k.strip())
    for key in keys:
        if not key.reveal().startswith("sk_test_") or len(key) < 16:
            raise SettingsError("FINCORE_SANDBOX_SECRET_KEY must be sk_test_… keys (16+ chars)")
    publishable = env.get("FINCORE_SANDBOX_PUBLISHABLE_KEY") or stored["publishable_key"]
    if not publishable.startswith("pk_test_"):
        raise SettingsError("FINCORE_SANDBOX_PUBLISHABLE_KEY must start with pk_test_")
    webhook = _from_env_or_file("FINCORE_SANDBOX_WEBHOOK_SECRET", env) or stored["webhook_secret"]
    admin = _from_env_or_file("FINCORE_SANDBOX_ADMIN_TOKEN", env) or stored["admin_token"]
    if len(admin) < 16:
        raise SettingsError("FINCORE_SANDBOX_ADMIN_TOKEN must be at least 16 characters")
    return Credentials(
        secret_keys=keys,
        publishable_key=publishable,
        webhook_secret=SecretKey(webhook),
        admin_token=SecretKey(admin),
        fingerprint_key=SecretKey(stored["fingerprint_key"]),
    )


@dataclass(frozen=True)
class SandboxSettings:
    state_dir: Path
    database_url: str
    settlements_dir: Path
    public_url: str
    credentials: Credentials
    credentials_file: Path
    webhook_urls: tuple[str, ...]
    webhook_events: tuple[str, ...]
    webhook_retry_base_s: float
    webhook_retry_max_s: float
    webhook_give_up_after_s: float
    webhook_timeout_s: float
    webhook_concurrency: int
    session_min_ttl_s: int
    session_ttl_s: int
    fee_bps: int
    fee_fixed: int
    sftp_port: int
    sftp_keys_dir: Path
    settlement_job: bool
    settlement_interval_s: float
    frame_ancestors: tuple[str, ...]
    api_version: str
    ca_file: Path | None

    @classmethod
    def from_env(
        cls, port: int, env: Mapping[str, str] | None = None, ca_file: Path | None = None
    ) -> SandboxSettings:
        source = os.environ if env is None else env
        if is_production(source):
            raise SettingsError(
                "psp_sandbox is a test PSP: it does not run with FINCORE_ENV=production"
            )
        state = Path(
            env_str("FINCORE_SANDBOX_STATE_DIR", str(var_dir(source) / "psp-sandbox"), source)
        ).resolve()
        database = env_str(
            "FINCORE_SANDBOX_DATABASE_URL", f"sqlite:///{state / 'sandbox.db'}", source
        )
        credentials_file = state / "credentials.json"
        urls = env_list("FINCORE_SANDBOX_WEBHOOK_URL", env=source)
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise SettingsError("FINCORE_SANDBOX_WEBHOOK_URL must be http(s) URLs")
        ttl = env_int("FINCORE_SANDBOX_SESSION_TTL_S", 86400, source, minimum=1, maximum=86400)
        return cls(
            state_dir=state,
            database_url=database,
            settlements_dir=Path(
                env_str("FINCORE_SANDBOX_SETTLEMENTS_DIR", str(state / "settlements"), source)
            ).resolve(),
            public_url=env_str(
                "FINCORE_SANDBOX_PUBLIC_URL", f"http://127.0.0.1:{port}", source
            ).rstrip("/"),
            credentials=load_credentials(credentials_file, source),
            credentials_file=credentials_file,
            webhook_urls=urls,
            webhook_events=env_list("FINCORE_SANDBOX_WEBHOOK_EVENTS", "*", source),
            webhook_retry_base_s=env_float("FINCORE_SANDBOX_WEBHOOK_RETRY_BASE_S", 5.0, source),
            webhook_retry_max_s=env_float("FINCORE_SANDBOX_WEBHOOK_RETRY_MAX_S", 3600.0, source),
            webhook_give_up_after_s=env_float(
                "FINCORE_SANDBOX_WEBHOOK_GIVE_UP_AFTER_S", 3 * 86400.0, source
            ),
            webhook_timeout_s=env_float("FINCORE_SANDBOX_WEBHOOK_TIMEOUT_S", 10.0, source),
            webhook_concurrency=env_int(
                "FINCORE_SANDBOX_WEBHOOK_CONCURRENCY", 4, source, minimum=1, maximum=64
            ),
            session_min_ttl_s=env_int(
                "FINCORE_SANDBOX_SESSION_MIN_TTL_S", 1800, source, minimum=1, maximum=ttl
            ),
            session_ttl_s=ttl,
            fee_bps=env_int("FINCORE_SANDBOX_FEE_BPS", 290, source, minimum=0, maximum=10000),
            fee_fixed=env_int("FINCORE_SANDBOX_FEE_FIXED", 30, source, minimum=0),
            sftp_port=env_int("FINCORE_SANDBOX_SFTP_PORT", 0, source, minimum=0, maximum=65535),
            sftp_keys_dir=Path(
                env_str("FINCORE_SANDBOX_SFTP_KEYS_DIR", str(state / "sftp-keys"), source)
            ).resolve(),
            settlement_job=env_bool("FINCORE_SANDBOX_SETTLEMENT_JOB", True, source),
            settlement_interval_s=env_float("FINCORE_SANDBOX_SETTLEMENT_INTERVAL_S", 300.0, source),
            frame_ancestors=env_list(
                "FINCORE_SANDBOX_FRAME_ANCESTORS", ",".join(DEFAULT_FRAME_ANCESTORS), source
            ),
            api_version=env_str("FINCORE_SANDBOX_API_VERSION", DEFAULT_API_VERSION, source),
            ca_file=ca_file,
        )
