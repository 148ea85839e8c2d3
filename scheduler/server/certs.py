"""Certificates for mutual TLS, made with `cryptography`: a CA, the scheduler's server
certificate and a client certificate per site (and per tenant or operator user), written
as PEM files; and the identity a certificate carries.

The identity format (docs/security.md): a site's certificate names the site in a URI
subject alternative name `spiffe://powerplane/site/<site id>` (its CN is the site id too,
for people reading it; only the URI counts). A user's certificate carries
`spiffe://powerplane/client/<name>`; it only admits the connection, the bearer token says
who calls. The scheduler reads the site from the URI (`site_of_certificate`).

Keys are ECDSA P-256, written 0600; certificates are 0644. `powerplane admin certs` writes
a set for operators; the tests and the demo call `write_cert_set` directly. An existing CA
in the folder is reused (so new sites can be added and certificates renewed without
re-issuing every other one), unless `new_ca`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SITE_URI_PREFIX = "spiffe://powerplane/site/"
CLIENT_URI_PREFIX = "spiffe://powerplane/client/"
DEFAULT_DAYS = 365


def site_uri(site_id: str) -> str:
    return SITE_URI_PREFIX + site_id


def site_of_certificate(pem: bytes | str) -> str | None:
    """The site a PEM certificate names (its `spiffe://powerplane/site/<id>` URI SAN), or None."""
    if isinstance(pem, str):
        pem = pem.encode()
    try:
        cert = x509.load_pem_x509_certificate(pem)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    sites = [uri[len(SITE_URI_PREFIX) :] for uri in sans.get_values_for_type(x509.UniformResourceIdentifier) if uri.startswith(SITE_URI_PREFIX)]
    return sites[0] if len(sites) == 1 and sites[0] else None


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes


@dataclass
class CertSet:
    """Where `write_cert_set` put each file."""

    ca_cert: Path
    ca_key: Path
    server: tuple[Path, Path]  # (cert, key)
    sites: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    clients: dict[str, tuple[Path, Path]] = field(default_factory=dict)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _builder(subject: str, issuer: x509.Name | None, public_key, days: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # a little clock skew between machines
        .not_valid_after(now + dt.timedelta(days=days))
    )


def make_ca(name: str = "powerplane CA", days: int = 10 * DEFAULT_DAYS) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(name, None, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _issue(ca: Issued, common_name: str, sans: list[x509.GeneralName], usage, days: int) -> Issued:
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, None)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(common_name, ca_cert.subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def server_names(names: list[str]) -> list[x509.GeneralName]:
    """SANs for the scheduler: 127.0.0.1 and localhost, and each given DNS name or IP address."""
    found: list[x509.GeneralName] = []
    for name in ["127.0.0.1", "localhost", *names]:
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            entry = x509.DNSName(name)
        if entry not in found:
            found.append(entry)
    return found


def make_server_cert(ca: Issued, names: list[str] = (), days: int = DEFAULT_DAYS) -> Issued:
    return _issue(ca, "powerplane-scheduler", server_names(list(names)), ExtendedKeyUsageOID.SERVER_AUTH, days)


def make_site_cert(ca: Issued, site_id: str, days: int = DEFAULT_DAYS) -> Issued:
    return _issue(ca, site_id, [x509.UniformResourceIdentifier(site_uri(site_id))], ExtendedKeyUsageOID.CLIENT_AUTH, days)


def make_client_cert(ca: Issued, name: str, days: int = DEFAULT_DAYS) -> Issued:
    return _issue(ca, name, [x509.UniformResourceIdentifier(CLIENT_URI_PREFIX + name)], ExtendedKeyUsageOID.CLIENT_AUTH, days)


def write_pair(issued: Issued, cert_path: Path, key_path: Path) -> tuple[Path, Path]:
    """Write a certificate (0644) and its key (0600, never readable by others, not even briefly).
    Each file is written beside its place and renamed over it, so a reader never sees half a file."""
    for path, data, mode in ((key_path, issued.key_pem, 0o600), (cert_path, issued.cert_pem, 0o644)):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(partial, mode)  # O_CREAT's mode is masked by the umask; a rewrite keeps the old mode
        os.replace(partial, path)
    return cert_path, key_path


def load_or_make_ca(out: Path, new_ca: bool = False, days: int = 10 * DEFAULT_DAYS) -> Issued:
    cert_path, key_path = out / "ca.crt", out / "ca.key"
    if not new_ca and cert_path.exists() and key_path.exists():
        return Issued(cert_path.read_bytes(), key_path.read_bytes())
    ca = make_ca(days=days)
    write_pair(ca, cert_path, key_path)
    return ca


def write_cert_set(
    out: Path, sites: list[str] = (), clients: list[str] = (), server_dns: list[str] = (), days: int = DEFAULT_DAYS, new_ca: bool = False
) -> CertSet:
    """In `out`: ca.crt/ca.key, scheduler.crt/scheduler.key, site-<id>.crt/.key per site and
    client-<name>.crt/.key per user."""
    out = Path(out)
    ca = load_or_make_ca(out, new_ca)
    made = CertSet(out / "ca.crt", out / "ca.key", write_pair(make_server_cert(ca, list(server_dns), days), out / "scheduler.crt", out / "scheduler.key"))
    for site in sites:
        made.sites[site] = write_pair(make_site_cert(ca, site, days), out / f"site-{site}.crt", out / f"site-{site}.key")
    for name in clients:
        made.clients[name] = write_pair(make_client_cert(ca, name, days), out / f"client-{name}.crt", out / f"client-{name}.key")
    return made
