"""Shared by both zones: the local development CA and per-service credentials.

On first run the runner creates `var/pki/ca.{key,crt}` and, per service, a P-256 key and a
certificate that names the service as `spiffe://fincore.local/<zone>/<service>` (a URI SAN) and
is valid for TLS on 127.0.0.1/localhost. The same key signs the service's short-lived identity
tokens (see `fincore.identity`). Keys are written 0600. In production these come from the
platform (ACM Private CA / Secrets Manager), never from this module.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TRUST_DOMAIN = "fincore.local"
ZONES = ("cde", "noncde", "external", "shared")
_CA_DAYS = 3650
_LEAF_DAYS = 397


@dataclass(frozen=True, slots=True)
class ServiceFiles:
    """Where one service's credentials live."""

    name: str
    zone: str
    key: Path
    cert: Path
    ca: Path

    @property
    def spiffe_id(self) -> str:
        return spiffe_id(self.zone, self.name)


def spiffe_id(zone: str, name: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/{zone}/{name}"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def ensure_ca(pki_dir: Path) -> tuple[Path, Path]:
    """Create the development CA once; return (key path, certificate path)."""
    key_path, cert_path = pki_dir / "ca.key", pki_dir / "ca.crt"
    if key_path.exists() and cert_path.exists():
        return key_path, cert_path
    pki_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(pki_dir, 0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "FinCore development"),
            x509.NameAttribute(NameOID.COMMON_NAME, "FinCore local development CA"),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def issue_service_credentials(pki_dir: Path, name: str, zone: str) -> ServiceFiles:
    """Create (once) the key and certificate of one service, signed by the development CA."""
    if zone not in ZONES:
        raise ValueError(f"unknown zone {zone!r}")
    ca_key_path, ca_cert_path = ensure_ca(pki_dir)
    files = ServiceFiles(
        name=name,
        zone=zone,
        key=pki_dir / f"{name}.key",
        cert=pki_dir / f"{name}.crt",
        ca=ca_cert_path,
    )
    if files.key.exists() and files.cert.exists():
        return files
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the development CA key must be an EC key")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "FinCore development"),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, zone),
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(spiffe_id(zone, name)),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(files.key, _key_pem(key))
    _write_public(files.cert, cert.public_bytes(serialization.Encoding.PEM))
    return files
