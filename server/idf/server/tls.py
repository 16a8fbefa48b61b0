"""TLS for the gRPC face: server certificates reloaded without a restart, and client certificates
(mTLS) as a source of identity.

`server_credentials(settings)` builds gRPC's dynamic TLS credentials: gRPC asks for the
configuration at every new handshake, and the fetcher answers a new one when the certificate, key
or client CA file changed on disk (their modification times and sizes), else keeps the current
one. Rotation is therefore: write the new files (key first, then the certificate, each renamed
into place), and new connections use them; open connections keep theirs until they end (the
server recycles connections, `max_connection_age`).

With `tls_client_ca_file` set, every client must present a certificate signed by that CA (gRPC
Python offers no "verify if presented": a server requests and verifies client certificates from
all clients or from none); gRPC verifies the chain and validity during the handshake, so a
missing, untrusted or expired certificate never reaches the server. A verified certificate's subject common
name is looked up in `mtls_identities` (CN -> roles, tenant, accounts): the principal of calls that
send no bearer credential. A trusted certificate whose CN is not mapped authenticates nobody.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc

log = logging.getLogger("idf.tls")
T = TypeVar("T")


class _TlsFiles:
    """The certificate, key and client CA files, and whether they changed on disk since the last
    load (their modification times and sizes). `reload(load, face)` runs `load` when they did and
    records the new state only when it succeeded: a half-written file keeps the old pair and is
    tried again once it changes."""

    def __init__(self, cert: Path, key: Path, client_ca: Path | None) -> None:
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self.paths = [p for p in (cert, key, client_ca) if p is not None]
        self._lock = threading.Lock()
        self._stamp = self._now()

    def _now(self) -> tuple[tuple[int, int], ...]:
        return tuple((st.st_mtime_ns, st.st_size) for st in map(os.stat, self.paths))

    def reload(self, load: Callable[[], T], face: str) -> T | None:
        try:
            with self._lock:
                stamp = self._now()
                if stamp == self._stamp:
                    return None
                loaded = load()
                self._stamp = stamp
        except (OSError, ValueError, ssl.SSLError) as e:
            log.warning(
                f"{face} tls files unreadable; keeping the current ones", extra={"error": str(e)}
            )
            return None
        log.info(f"{face} tls certificate reloaded")
        return loaded


class ReloadingCredentials(_TlsFiles):
    """The gRPC port's TLS: gRPC's dynamic credentials, whose fetcher reloads changed files."""

    @property
    def require(self) -> bool:
        return self.client_ca is not None

    def configuration(self) -> Any:
        return grpc.ssl_server_certificate_configuration(
            [(self.key.read_bytes(), self.cert.read_bytes())],
            root_certificates=self.client_ca.read_bytes() if self.client_ca else None,
        )

    def fetch(self) -> Any:
        """gRPC's fetcher: a new configuration when the files changed, else None (keep)."""
        return self.reload(self.configuration, "grpc")

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self.configuration(), self.fetch, require_client_authentication=self.require
        )


def peer_common_name(auth_context: dict[str, list[bytes]] | None) -> str | None:
    """The verified client certificate's subject CN, if the call came over mTLS."""
    if not auth_context:
        return None
    names = auth_context.get("x509_common_name") or []
    return names[0].decode(errors="replace") if names else None


class RestContext(_TlsFiles):
    """The REST face's TLS: an `ssl.SSLContext` with the same files, and client certificates
    required when `client_ca` is set; `maybe_reload()` (called periodically) loads changed files
    into the same context, so new connections get them."""

    def __init__(self, cert: Path, key: Path, client_ca: Path | None) -> None:
        super().__init__(cert, key, client_ca)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._load()

    def _load(self) -> bool:
        self.context.load_cert_chain(self.cert, self.key)
        if self.client_ca is not None:
            self.context.load_verify_locations(cafile=self.client_ca)
            self.context.verify_mode = ssl.CERT_REQUIRED
        return True

    def maybe_reload(self) -> bool:
        return bool(self.reload(self._load, "rest"))


def certificate_common_name(peercert: dict[str, Any] | None) -> str | None:
    """The subject CN of a certificate as `ssl.SSLSocket.getpeercert()` gives it."""
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None
