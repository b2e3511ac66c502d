"""A local certificate authority and server certificate for `serve --tls self-signed`.

The server certificate covers loopback, this machine's name, the listening host, and every registry's login
server: the domain itself and `*.DOMAIN` (a registry created later needs no new certificate). More zones under
the domain (for example regional endpoints, `*.REGION.DOMAIN`) are added with `login_server_names(domain,
zones)`. A wildcard covers one label only, and TLS clients ignore a wildcard directly under a top-level name
(`*.localhost`, `*.internal`), so registries that clients reach by login server need a domain of at least two
labels, such as `registry.example` or `cargohold.test`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    cert: Path
    key: Path


def login_server_names(domain: str, zones: Iterable[str] = ()) -> list[str]:
    """The names that cover `NAME.DOMAIN` for every registry name, and `NAME.ZONE.DOMAIN` for each zone."""
    domain = domain.lower().strip(".")
    if not domain:
        return []
    return [domain, f"*.{domain}", *(f"*.{zone.lower().strip('.')}.{domain}" for zone in zones)]


def ensure_self_signed(directory: Path, host_names: list[str]) -> TlsFiles:
    """Create (once) a CA and a server certificate valid for `host_names`, loopback and this machine's name.

    The server certificate is re-issued whenever a name it must cover is missing from it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    ca_key_path = directory / "ca-key.pem"
    if not files.ca_cert.exists() or not ca_key_path.exists():
        ca_key = ec.generate_private_key(ec.SECP256R1())
        _write_key(ca_key_path, ca_key)
        files.ca_cert.write_bytes(_ca_certificate(ca_key).public_bytes(serialization.Encoding.PEM))
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    names = sorted({"localhost", "127.0.0.1", "::1", socket.gethostname(), *host_names} - {"0.0.0.0", "::", ""})
    if not files.cert.exists() or not files.key.exists() or not _covers(files.cert, names):
        server_key = ec.generate_private_key(ec.SECP256R1())
        _write_key(files.key, server_key)
        certificate = _server_certificate(server_key, ca_key, ca_cert, names)
        files.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return files


def _ca_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cargohold local CA")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _server_certificate(key: ec.EllipticCurvePrivateKey, ca_key: ec.EllipticCurvePrivateKey,
                        ca_cert: x509.Certificate, names: list[str]) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _common_name(names))]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=397))
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _common_name(names: list[str]) -> str:
    """Clients match the alternative names; the subject only labels the certificate for people."""
    return next((n for n in names if not n.startswith("*.") and "." in n and not _is_address(n)), names[0])[:64]


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _covers(cert_path: Path, names: list[str]) -> bool:
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if certificate.not_valid_after_utc < dt.datetime.now(dt.UTC) + dt.timedelta(days=7):
        return False
    alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    present = {str(v) for v in alternative.get_values_for_type(x509.DNSName)}
    present |= {str(v) for v in alternative.get_values_for_type(x509.IPAddress)}
    return all(str(_general_name(n).value) in present for n in names)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
