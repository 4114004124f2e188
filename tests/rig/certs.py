"""Test certificates made with `cryptography`: a CA with a server certificate, and a self-signed signing cert."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["ServerCerts", "SigningCert", "make_server_certs", "make_signing_cert"]

_VALID_FOR = dt.timedelta(days=30)
_BACKDATE = dt.timedelta(hours=1)


@dataclass(frozen=True)
class ServerCerts:
    """Files for a TLS server, and a folder a Go client (skopeo --*-cert-dir) can trust."""

    ca_cert: Path  # PEM of the CA that signed the server certificate: what clients should trust
    server_cert: Path  # PEM: server certificate, then the CA
    server_key: Path  # PEM, unencrypted PKCS#8
    cert_dir: Path  # holds only ca.crt, for skopeo/containers-image `--cert-dir`


@dataclass(frozen=True)
class SigningCert:
    """A self-signed RSA certificate and its key, for signing JWTs (the registry trusts cert_path)."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    cert_path: Path  # PEM, to use as the registry's auth.token.rootcertbundle
    key_path: Path  # PEM, unencrypted PKCS#8

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _builder(subject: str, issuer: str, public_key: rsa.RSAPublicKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def make_server_certs(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> ServerCerts:
    """A CA and a server certificate for `hosts` (IPs become IP SANs, the rest DNS SANs), written to `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _new_key()
    ca_cert = (
        _builder("docker-image-pusher test CA", "docker-image-pusher test CA", ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .sign(ca_key, hashes.SHA256())
    )
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    key = _new_key()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        _builder(hosts[0], "docker-image-pusher test CA", key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(_pem(ca_cert))
    cert_path = directory / "server.pem"
    cert_path.write_bytes(_pem(cert) + _pem(ca_cert))
    key_path = directory / "server.key"
    _write_key(key, key_path)
    cert_dir = directory / "certs.d"
    cert_dir.mkdir(exist_ok=True)
    (cert_dir / "ca.crt").write_bytes(_pem(ca_cert))
    return ServerCerts(ca_cert=ca_path, server_cert=cert_path, server_key=key_path, cert_dir=cert_dir)


def make_signing_cert(directory: Path, common_name: str = "docker-image-pusher test token signer") -> SigningCert:
    """A self-signed certificate for a token server's JWT signing key, written to `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    key = _new_key()
    cert = (
        _builder(common_name, common_name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "token-signer.pem"
    cert_path.write_bytes(_pem(cert))
    key_path = directory / "token-signer.key"
    _write_key(key, key_path)
    return SigningCert(key=key, cert=cert, cert_path=cert_path, key_path=key_path)
