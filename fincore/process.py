"""Shared by both zones: what every FinCore process reads about itself at start.

The runner (or a deployment) sets these variables per process; `ProcessSettings.from_env`
validates them once, at start, never at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fincore.identity import ServiceCredentials, ServiceTokenVerifier
from fincore.logs import configure_logging
from fincore.runner import watch_parent
from fincore.settings import SettingsError, env_bool, env_int, env_str, environment, var_dir
from fincore.web import TLSFiles


@dataclass(frozen=True, slots=True)
class ProcessSettings:
    """Identity, address and files of this process."""

    component: str
    zone: str
    host: str
    port: int
    environment: str
    var_dir: Path
    ca_file: Path | None
    key_file: Path | None
    cert_file: Path | None
    tls_enabled: bool = True

    @classmethod
    def from_env(
        cls, component: str, zone: str, default_port: int, env: Mapping[str, str] | None = None
    ) -> ProcessSettings:
        source = os.environ if env is None else env
        ca = source.get("FINCORE_CA_FILE")
        key = source.get("FINCORE_SERVICE_KEY_FILE")
        cert = source.get("FINCORE_SERVICE_CERT_FILE")
        if bool(key) != bool(cert):
            raise SettingsError(
                "FINCORE_SERVICE_KEY_FILE and FINCORE_SERVICE_CERT_FILE go together"
            )
        return cls(
            component=env_str("FINCORE_COMPONENT", component, source),
            zone=zone,
            host=env_str("FINCORE_HOST", "127.0.0.1", source),
            port=env_int("FINCORE_PORT", default_port, source, minimum=0, maximum=65535),
            environment=environment(source),
            var_dir=var_dir(source),
            ca_file=Path(ca) if ca else None,
            key_file=Path(key) if key else None,
            cert_file=Path(cert) if cert else None,
            tls_enabled=env_bool("FINCORE_TLS", True, source),
        )

    def tls(self) -> TLSFiles | None:
        if not self.tls_enabled:
            return None
        if self.cert_file is None or self.key_file is None or self.ca_file is None:
            return None
        return TLSFiles(cert=self.cert_file, key=self.key_file, ca=self.ca_file)

    def credentials(self) -> ServiceCredentials | None:
        if self.cert_file is None or self.key_file is None:
            return None
        return ServiceCredentials.from_files(self.key_file, self.cert_file)

    def verifier(self, audience: str | None = None) -> ServiceTokenVerifier:
        if self.ca_file is None:
            raise SettingsError("FINCORE_CA_FILE is required to check service identities")
        return ServiceTokenVerifier.from_file(self.ca_file, audience or self.component)


def start_process(component: str, zone: str, default_port: int) -> ProcessSettings:
    """Configure logging, watch the parent runner and return this process's settings."""
    settings = ProcessSettings.from_env(component, zone, default_port)
    configure_logging(settings.component)
    watch_parent()
    return settings
