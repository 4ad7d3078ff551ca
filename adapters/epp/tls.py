"""Throw-away TLS material for the EPP sandbox and tests.

Registries pin their own CA and demand client certificates, so the sandbox does too: tests then
exercise the same ``ssl`` code path (CA pinning, hostname check, client auth) as production instead
of a plaintext shortcut.  Nothing here is meant for production keys.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=825)
_RENEW_BEFORE = dt.timedelta(days=7)


@dataclass(frozen=True)
class DevPki:
    """Paths of the PEM files ``ensure_dev_pki`` maintains."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def in_directory(cls, directory: Path) -> DevPki:
        return cls(
            directory=directory,
            ca_cert=directory / "ca.pem",
            ca_key=directory / "ca-key.pem",
            server_cert=directory / "server.pem",
            server_key=directory / "server-key.pem",
            client_cert=directory / "client.pem",
            client_key=directory / "client-key.pem",
        )

    def files(self) -> tuple[Path, ...]:
        return (
            self.ca_cert,
            self.ca_key,
            self.server_cert,
            self.server_key,
            self.client_cert,
            self.client_key,
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Registrant Gateway dev PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key() -> ec.EllipticCurvePrivateKey:
    # P-256 keeps generation and handshakes fast enough to create a PKI per test session.
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _key_usage(*, leaf: bool) -> x509.KeyUsage:
    """A leaf signs and agrees keys (ECDHE with an EC key); the CA only signs certificates and CRLs."""
    return x509.KeyUsage(
        digital_signature=leaf,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=leaf,
        key_cert_sign=not leaf,
        crl_sign=not leaf,
        encipher_only=False,
        decipher_only=False,
    )


def _issue(
    subject_cn: str,
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    usage: x509.ObjectIdentifier,
    san: list[x509.GeneralName] | None,
    now: dt.datetime,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject_cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(leaf=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _generate(pki: DevPki) -> None:
    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    ca_name = _name("Registrant Gateway dev CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + _VALIDITY + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(leaf=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = _key()
    server_cert = _issue(
        "localhost",
        server_key,
        ca_cert,
        ca_key,
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        now,
    )
    client_key = _key()
    client_cert = _issue(
        "registrar1", client_key, ca_cert, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH, None, now
    )

    # Keys first, certificates last: a reader that sees ca.pem also sees everything else.
    _write_key(pki.ca_key, ca_key)
    _write_key(pki.server_key, server_key)
    _write_key(pki.client_key, client_key)
    _write_cert(pki.server_cert, server_cert)
    _write_cert(pki.client_cert, client_cert)
    _write_cert(pki.ca_cert, ca_cert)


def _usable(pki: DevPki) -> bool:
    if not all(path.is_file() for path in pki.files()):
        return False
    try:
        deadline = dt.datetime.now(dt.UTC) + _RENEW_BEFORE
        for path in (pki.ca_cert, pki.server_cert, pki.client_cert):
            cert = x509.load_pem_x509_certificate(path.read_bytes())
            if cert.not_valid_after_utc <= deadline:
                return False
    except ValueError:
        return False
    return True


def ensure_dev_pki(directory: Path) -> DevPki:
    """Return the dev PKI in ``directory``, creating or renewing it when missing or near expiry.

    A lock file serialises creation so that parallel test processes sharing one directory never
    mix a CA from one run with a leaf certificate from another.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pki = DevPki.in_directory(directory)
    with open(directory / ".lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            if not _usable(pki):
                _generate(pki)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return pki
