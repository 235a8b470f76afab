"""noncde.workers (non-CDE): the frozen settings object of the job worker, the webhook
deliverer and reconciliation, built from the environment at start (never at import time).
Variables use the `FINCORE_WORKERS_` prefix, which the local runner passes to every non-CDE
process (and to no CDE process)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time as daytime
from pathlib import Path

from fincore.settings import (
    SettingsError,
    env_bool,
    env_float,
    env_int,
    env_str,
    environment,
    refuse_dev_defaults_in_production,
    url_scheme,
    var_dir,
)

PREFIX = "FINCORE_WORKERS_"


@dataclass(frozen=True)
class WorkersConfig:
    """Settings of all three roles; each role reads only its part."""

    # job worker
    gateway_url: str
    gateway_timeout_s: float
    job_concurrency: int
    visibility_timeout_s: float
    poll_s: float
    dead_letter_sweep_s: float
    # webhooks
    api_url: str
    webhooks_db_url: str
    webhook_endpoints_url: str
    webhook_timeout_s: float
    webhook_concurrency: int
    webhook_per_endpoint: int
    webhook_retry_base_s: float
    webhook_retry_cap_s: float
    webhook_give_up_s: float
    webhook_allow_private: bool
    webhook_ca_file: Path | None
    # reconciliation
    settlement_url: str
    sftp_key_file: Path
    sftp_known_hosts: Path
    reports_dir: Path
    alert_url: str
    reconcile_at: daytime
    reconcile_catch_up_days: int
    reconcile_check_s: float
    environment: str = "development"

    def __post_init__(self) -> None:
        if url_scheme(self.gateway_url) != "https" and self.environment == "production":
            raise SettingsError(f"{PREFIX}GATEWAY_URL must be https in production")
        if url_scheme(self.settlement_url) not in {"sftp", "file"}:
            raise SettingsError(f"{PREFIX}SETTLEMENT_URL: use sftp:// or file://")
        if url_scheme(self.alert_url) not in {"file", "sns"}:
            raise SettingsError(f"{PREFIX}ALERT_URL: use file:// or sns://<topic ARN>")
        if url_scheme(self.webhooks_db_url) not in {"sqlite", "postgresql"}:
            raise SettingsError(f"{PREFIX}WEBHOOKS_DB_URL: use sqlite:// or postgresql://")
        if self.webhook_endpoints_url != "api" and url_scheme(self.webhook_endpoints_url) not in {
            "file",
            "memory",
        }:
            raise SettingsError(f"{PREFIX}WEBHOOK_ENDPOINTS: use api, file:// or memory://")
        if self.webhook_give_up_s > 24 * 3600:
            raise SettingsError(f"{PREFIX}WEBHOOK_GIVE_UP_S: at most 86400 (24 h)")
        if self.visibility_timeout_s < 3 * self.gateway_timeout_s:
            raise SettingsError(
                f"{PREFIX}JOB_VISIBILITY_TIMEOUT_S must be at least 3 x GATEWAY_TIMEOUT_S "
                "(a lookup and a call fit in one lease)"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkersConfig:
        root = var_dir(env)
        sftp_port = env_int(f"{PREFIX}PSP_SFTP_PORT", 0, env, minimum=0, maximum=65535)
        default_settlement = (
            f"sftp://fincore@127.0.0.1:{sftp_port}/"
            if sftp_port
            else f"file://{root / 'psp-sandbox' / 'settlements'}"
        )
        at_text = env_str(f"{PREFIX}RECONCILE_AT", "02:00", env)
        try:
            run_at = daytime.fromisoformat(at_text)
        except ValueError:
            raise SettingsError(f"{PREFIX}RECONCILE_AT must be HH:MM (UTC)") from None
        ca = env_str(f"{PREFIX}WEBHOOK_CA_FILE", "", env)
        env_name = environment(env)
        config = cls(
            gateway_url=env_str(f"{PREFIX}GATEWAY_URL", "https://127.0.0.1:8102", env),
            gateway_timeout_s=env_float(f"{PREFIX}GATEWAY_TIMEOUT_S", 15.0, env),
            job_concurrency=env_int(f"{PREFIX}JOB_CONCURRENCY", 4, env, minimum=1, maximum=64),
            visibility_timeout_s=env_float(f"{PREFIX}JOB_VISIBILITY_TIMEOUT_S", 60.0, env),
            poll_s=env_float(f"{PREFIX}POLL_S", 0.2, env),
            dead_letter_sweep_s=env_float(f"{PREFIX}DLQ_SWEEP_S", 60.0, env),
            api_url=env_str(f"{PREFIX}API_URL", "https://127.0.0.1:8200", env),
            webhooks_db_url=env_str(
                f"{PREFIX}WEBHOOKS_DB_URL", f"sqlite:///{root / 'noncde' / 'webhooks.db'}", env
            ),
            webhook_endpoints_url=env_str(f"{PREFIX}WEBHOOK_ENDPOINTS", "api", env),
            webhook_timeout_s=env_float(f"{PREFIX}WEBHOOK_TIMEOUT_S", 10.0, env),
            webhook_concurrency=env_int(
                f"{PREFIX}WEBHOOK_CONCURRENCY", 32, env, minimum=1, maximum=1000
            ),
            webhook_per_endpoint=env_int(
                f"{PREFIX}WEBHOOK_PER_ENDPOINT", 4, env, minimum=1, maximum=100
            ),
            webhook_retry_base_s=env_float(f"{PREFIX}WEBHOOK_RETRY_BASE_S", 30.0, env),
            webhook_retry_cap_s=env_float(f"{PREFIX}WEBHOOK_RETRY_CAP_S", 4 * 3600.0, env),
            webhook_give_up_s=env_float(f"{PREFIX}WEBHOOK_GIVE_UP_S", 24 * 3600.0, env),
            webhook_allow_private=env_bool(
                f"{PREFIX}WEBHOOK_ALLOW_PRIVATE", env_name != "production", env
            ),
            webhook_ca_file=Path(ca) if ca else None,
            settlement_url=env_str(f"{PREFIX}SETTLEMENT_URL", default_settlement, env),
            sftp_key_file=Path(
                env_str(
                    f"{PREFIX}SFTP_KEY_FILE",
                    str(root / "psp-sandbox" / "sftp-keys" / "sftp_client_key"),
                    env,
                )
            ),
            sftp_known_hosts=Path(
                env_str(f"{PREFIX}SFTP_KNOWN_HOSTS", str(root / "noncde" / "sftp_known_hosts"), env)
            ),
            reports_dir=Path(env_str(f"{PREFIX}REPORTS_DIR", str(root / "reconciliation"), env)),
            alert_url=env_str(
                f"{PREFIX}ALERT_URL", f"file://{root / 'reconciliation' / 'alerts.jsonl'}", env
            ),
            reconcile_at=run_at,
            reconcile_catch_up_days=env_int(
                f"{PREFIX}RECONCILE_CATCH_UP_DAYS", 7, env, minimum=1, maximum=60
            ),
            reconcile_check_s=env_float(f"{PREFIX}RECONCILE_CHECK_S", 60.0, env),
            environment=env_name,
        )
        refuse_dev_defaults_in_production(
            "noncde.workers",
            {
                f"SQLite WebhookDB ({PREFIX}WEBHOOKS_DB_URL)": url_scheme(config.webhooks_db_url)
                == "sqlite",
                f"local settlement folder ({PREFIX}SETTLEMENT_URL)": url_scheme(
                    config.settlement_url
                )
                == "file",
                f"webhooks to private addresses ({PREFIX}WEBHOOK_ALLOW_PRIVATE)": (
                    config.webhook_allow_private
                ),
            },
            env,
        )
        return config
