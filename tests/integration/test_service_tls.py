"""A kit service over real TLS: identity allow-list per endpoint, TLS 1.2+ only, loopback only."""

from __future__ import annotations

import os
import ssl
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fincore.identity import TOKEN_HEADER, ServiceCredentials
from fincore.netutil import free_port
from fincore.pki import ensure_ca, issue_service_credentials
from tests.harness.procs import ServerProcess

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    pki = tmp_path / "pki"
    _, ca = ensure_ca(pki)
    files = issue_service_credentials(pki, "sample", "cde")
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "FINCORE_PORT": str(port),
        "FINCORE_CA_FILE": str(ca),
        "FINCORE_SERVICE_KEY_FILE": str(files.key),
        "FINCORE_SERVICE_CERT_FILE": str(files.cert),
        "FINCORE_LOG_DIR": str(tmp_path / "log"),
    }
    proc = ServerProcess(
        [sys.executable, "-m", "tests.harness.sample_service"],
        name="sample",
        log_path=tmp_path / "sample.out",
        env=env,
        cwd=ROOT,
    )
    url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(ca))
    try:
        proc.wait_until(lambda: httpx.get(url + "/healthz", verify=context).status_code == 200)
        yield url, pki
    finally:
        proc.stop()


def _client(pki: Path) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(pki / "ca.crt")))


def _token(pki: Path, name: str, zone: str, audience: str = "sample") -> str:
    files = issue_service_credentials(pki, name, zone)
    return ServiceCredentials.from_files(files.key, files.cert).token_for(audience)


def test_allowed_service_gets_through(service: tuple[str, Path]) -> None:
    """The gateway's identity is on the endpoint's allow-list."""
    url, pki = service
    with _client(pki) as client:
        response = client.get(
            url + "/internal/whoami", headers={TOKEN_HEADER: _token(pki, "gateway", "cde")}
        )
    assert response.json() == {"name": "gateway", "zone": "cde"}


def test_other_service_is_forbidden_and_missing_token_unauthenticated(
    service: tuple[str, Path],
) -> None:
    """A valid but unlisted identity gets 403; no or a forged token gets 401."""
    url, pki = service
    with _client(pki) as client:
        other = client.get(
            url + "/internal/whoami", headers={TOKEN_HEADER: _token(pki, "api", "noncde")}
        )
        none = client.get(url + "/internal/whoami")
        forged = client.get(url + "/internal/whoami", headers={TOKEN_HEADER: "e30.e30.AAAA"})
    assert other.status_code == 403 and other.json()["error"]["code"] == "service_not_allowed"
    assert none.status_code == 401 and forged.status_code == 401


def test_server_refuses_tls_below_1_2(service: tuple[str, Path]) -> None:
    """A client limited to TLS 1.1 cannot connect (PCI DSS 4.2.1)."""
    url, pki = service
    old = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # we mean to use the old versions
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # so the client really offers TLS 1.1
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/healthz", verify=old)
    tls12 = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    assert httpx.get(url + "/healthz", verify=tls12).status_code == 200


def test_untrusted_certificate_is_refused_by_clients(
    service: tuple[str, Path], tmp_path: Path
) -> None:
    """A client that trusts only another CA refuses the server's certificate."""
    url, _ = service
    _, other_ca = ensure_ca(tmp_path / "other")
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/healthz", verify=ssl.create_default_context(cafile=str(other_ca)))
