"""noncde.dashboard (non-CDE): the frozen settings object, built from the environment at start.

Variables use the `FINCORE_DASHBOARD_` prefix (the runner passes them only to non-CDE
processes). The security limits are validated against PCI DSS: idle timeout at most 15
minutes (8.2.8), lockout after at most 10 attempts for at least 30 minutes (8.3.4), passwords
of at least 12 characters (8.3.6). Production refuses the development defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from fincore.settings import (
    SettingsError,
    env_int,
    env_list,
    env_str,
    is_production,
    refuse_dev_defaults_in_production,
    url_scheme,
    var_dir,
)
from noncde.dashboard.domain import LockoutPolicy, PasswordPolicy, SessionPolicy

PREFIX = "FINCORE_DASHBOARD_"
STORE_SCHEMES = frozenset({"sqlite", "postgresql", "memory"})


def default_db_url(env: Mapping[str, str] | None = None) -> str:
    return f"sqlite:///{var_dir(env) / 'noncde' / 'dashboard.db'}"


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret_file: Path
    scopes: str = "openid email"
    username_claim: str = "email"
    ca_file: Path | None = None


@dataclass(frozen=True)
class DashboardConfig:
    """Settings of the dashboard process and its admin CLI.

    - `db_url`: staff accounts, sessions, refund requests (sqlite://, postgresql://, memory://).
    - `secret_key_file`: the key that seals TOTP seeds (0600, created on first run outside
      production).
    - `api_url`: the merchant API, whose staff commands the dashboard calls.
    - `public_url`: this dashboard's own origin (OIDC redirect and the Origin check of forms).
    """

    db_url: str
    secret_key_file: Path
    api_url: str
    public_url: str
    export_dir: Path
    idle_timeout_s: int = 900
    absolute_timeout_s: int = 12 * 3600
    step_up_s: int = 600
    lockout_threshold: int = 10
    lockout_minutes: int = 30
    password_min_length: int = 12
    audit_zones: tuple[str, ...] = ("noncde",)
    oidc: OidcConfig | None = None
    production: bool = False

    def __post_init__(self) -> None:
        if url_scheme(self.db_url) not in STORE_SCHEMES:
            raise SettingsError(f"{PREFIX}DB_URL must be sqlite://, postgresql:// or memory://")
        # The policies validate their PCI DSS limits; surface a violation as a settings error.
        try:
            self.session_policy()
            self.lockout_policy()
            self.password_policy()
        except ValueError as exc:
            raise SettingsError(f"{PREFIX}*: {exc}") from None
        if "cde" in self.audit_zones:
            raise SettingsError(
                f"{PREFIX}AUDIT_ZONES: the dashboard reads only the non-CDE audit log (the "
                "CDE's is read with the auditor CLI inside the CDE)"
            )

    def session_policy(self) -> SessionPolicy:
        return SessionPolicy(
            idle=timedelta(seconds=self.idle_timeout_s),
            absolute=timedelta(seconds=self.absolute_timeout_s),
        )

    def lockout_policy(self) -> LockoutPolicy:
        return LockoutPolicy(
            threshold=self.lockout_threshold, duration=timedelta(minutes=self.lockout_minutes)
        )

    def password_policy(self) -> PasswordPolicy:
        return PasswordPolicy(min_length=self.password_min_length)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DashboardConfig:
        base = var_dir(env) / "noncde"
        oidc = None
        issuer = env_str(f"{PREFIX}OIDC_ISSUER", "", env)
        if issuer:
            ca = env_str(f"{PREFIX}OIDC_CA_FILE", "", env)
            oidc = OidcConfig(
                issuer=issuer,
                client_id=env_str(f"{PREFIX}OIDC_CLIENT_ID", None, env),
                client_secret_file=Path(env_str(f"{PREFIX}OIDC_CLIENT_SECRET_FILE", None, env)),
                scopes=env_str(f"{PREFIX}OIDC_SCOPES", "openid email", env),
                username_claim=env_str(f"{PREFIX}OIDC_USERNAME_CLAIM", "email", env),
                ca_file=Path(ca) if ca else None,
            )
        config = cls(
            db_url=env_str(f"{PREFIX}DB_URL", default_db_url(env), env),
            secret_key_file=Path(
                env_str(f"{PREFIX}SECRET_KEY_FILE", str(base / "dashboard-secret.key"), env)
            ),
            api_url=env_str(f"{PREFIX}API_URL", "https://127.0.0.1:8200", env),
            public_url=env_str(f"{PREFIX}PUBLIC_URL", "https://127.0.0.1:8300", env).rstrip("/"),
            export_dir=Path(
                env_str(f"{PREFIX}EXPORT_DIR", str(var_dir(env) / "dashboard" / "exports"), env)
            ),
            idle_timeout_s=env_int(f"{PREFIX}IDLE_TIMEOUT_S", 900, env, minimum=1, maximum=900),
            absolute_timeout_s=env_int(
                f"{PREFIX}ABSOLUTE_TIMEOUT_S", 12 * 3600, env, minimum=60, maximum=24 * 3600
            ),
            step_up_s=env_int(f"{PREFIX}STEP_UP_S", 600, env, minimum=30, maximum=900),
            lockout_threshold=env_int(f"{PREFIX}LOCKOUT_ATTEMPTS", 10, env, minimum=1, maximum=10),
            lockout_minutes=env_int(f"{PREFIX}LOCKOUT_MINUTES", 30, env, minimum=30),
            password_min_length=env_int(f"{PREFIX}PASSWORD_MIN_LENGTH", 12, env, minimum=12),
            audit_zones=env_list(f"{PREFIX}AUDIT_ZONES", "noncde", env),
            oidc=oidc,
            production=is_production(env),
        )
        refuse_dev_defaults_in_production(
            "noncde.dashboard",
            {
                f"SQLite or in-memory staff store ({PREFIX}DB_URL)": url_scheme(config.db_url)
                in {"sqlite", "memory"},
                f"key created on first run ({PREFIX}SECRET_KEY_FILE missing)": (
                    not config.secret_key_file.exists()
                ),
                f"plain HTTP public URL ({PREFIX}PUBLIC_URL)": not config.public_url.startswith(
                    "https://"
                ),
            },
            env,
        )
        return config
