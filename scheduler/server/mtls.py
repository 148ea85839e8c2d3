"""The scheduler's TLS credentials, reloaded when their files change, and the site a
connection's client certificate proves (docs/security.md).

Credentials: `ReloadingCredentials` serves `tls.cert_file`/`tls.key_file` through grpc's
dynamic SSL credentials: before each new connection's handshake grpc asks it for the
configuration, and it reads the files again when their size or modification time changed
(a Kubernetes Secret update, or files replaced by `powerplane admin certs`). Connections
already open keep the certificate they started with. A changed set that does not load
(half written, key not matching its certificate) is refused with a warning and the last
good one stays.

Client certificates: with `tls.client_ca_file`, every connection must present a
certificate signed by that CA (grpc's Python server can only require a client certificate
or not ask for one: it cannot ask and accept a connection without one). A site agent's
certificate names its site in a URI SAN `spiffe://powerplane/site/<id>`
(scheduler/server/certs.py); `check_agent_peer` refuses an AgentService call whose
certificate names no site or another site than the call's bearer token.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from scheduler.core import errors
from scheduler.server.certs import SITE_URI_PREFIX
from scheduler.server.config import TlsConfig

log = logging.getLogger(__name__)


def site_of_peer(context) -> str | None:
    """The site the connection's client certificate names, or None (no client certificate,
    or none naming exactly one site)."""
    auth = context.auth_context() or {}
    names = [v.decode() if isinstance(v, bytes) else v for v in auth.get("x509_subject_alternative_name", ())]
    sites = [n[len(SITE_URI_PREFIX) :] for n in names if n.startswith(SITE_URI_PREFIX)]
    return sites[0] if len(sites) == 1 and sites[0] else None


def check_agent_peer(context, token_site: str) -> None:
    """PermissionDenied unless the client certificate names `token_site`, the site of the
    call's bearer token."""
    cert_site = site_of_peer(context)
    if cert_site is None:
        raise errors.PermissionDenied(f"agents must present a site certificate (a URI SAN {SITE_URI_PREFIX}<site id>); this connection's names no site")
    if cert_site != token_site:
        raise errors.PermissionDenied(f"the bearer token is site {token_site!r}'s but the client certificate is site {cert_site!r}'s")


def _stamp(paths: list[Path]) -> tuple:
    stamps = []
    for path in paths:
        st = os.stat(path)
        stamps.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(stamps)


def _checked(cert: bytes, key: bytes, ca: bytes | None) -> None:
    """ValueError unless the certificate chain, its key and the CA bundle load and the key is the certificate's."""
    leaf = x509.load_pem_x509_certificate(cert)
    private = serialization.load_pem_private_key(key, None)
    if ca is not None:
        x509.load_pem_x509_certificates(ca)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(serialization.Encoding.DER, public) != private.public_key().public_bytes(serialization.Encoding.DER, public):
        raise ValueError("the key is not the certificate's")


class ReloadingCredentials:
    """Server credentials from `tls`'s files, read again on the first handshake after they change."""

    def __init__(self, tls: TlsConfig):
        self.tls = tls
        self.paths = [tls.cert_file, tls.key_file, *([tls.client_ca_file] if tls.client_ca_file else [])]
        self.reloads = 0  # new configurations handed to grpc after the first
        self._stamp = _stamp(self.paths)
        self._refused: tuple | None = None  # the stamp of a set that did not load: warned about once
        self._initial = self._configuration()

    @property
    def requires_client_cert(self) -> bool:
        return self.tls.client_ca_file is not None

    def _configuration(self):
        cert, key = self.tls.cert_file.read_bytes(), self.tls.key_file.read_bytes()
        ca = self.tls.client_ca_file.read_bytes() if self.tls.client_ca_file else None
        _checked(cert, key, ca)
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def fetch(self):
        """grpc's certificate configuration fetcher: a new configuration, or None for no change.
        Runs on grpc's threads before each handshake: a stat per file unless they changed."""
        stamp = None
        try:
            stamp = _stamp(self.paths)
            if stamp in (self._stamp, self._refused):
                return None
            configuration = self._configuration()
        except (OSError, ValueError) as err:
            if stamp != self._refused:
                log.warning("TLS files changed but do not load (%s); serving the previous certificate", err)
            self._refused = stamp
            return None
        self._stamp = stamp
        self.reloads += 1
        log.info("TLS certificate reloaded from %s", self.tls.cert_file)
        return configuration

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(self._initial, self.fetch, require_client_authentication=self.requires_client_cert)
