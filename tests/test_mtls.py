"""TLS and mTLS on the gRPC face (issue 15): a client certificate as a principal, refused when
missing (where required), untrusted or expired, certificates reloaded without a restart, and the
CLI's TLS options. Certificates are made here with `cryptography` (a CA, the server's for
127.0.0.1, clients')."""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers import ServerThread

from idf.client import Client, PermissionDeniedError, UnauthenticatedError, UnavailableError

NOW = datetime.datetime.now(datetime.timezone.utc)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    cn: str, issuer: tuple | None, *, ca: bool = False, server: bool = False, expired: bool = False
):
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_key, issuer_cert = issuer if issuer else (key, None)
    start, end = (NOW - datetime.timedelta(days=10), NOW - datetime.timedelta(days=1)) if expired else (
        NOW - datetime.timedelta(minutes=5), NOW + datetime.timedelta(days=1))  # fmt: skip
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_cert.subject if issuer_cert else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                         x509.DNSName("localhost")]), critical=False)  # fmt: skip
    cert = builder.sign(issuer_key, hashes.SHA256())
    return key, cert


def _write(folder: Path, name: str, pair) -> tuple[Path, Path]:
    key, cert = pair
    k, c = folder / f"{name}.key", folder / f"{name}.pem"
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))  # fmt: skip
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return k, c


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca = _cert("idf test CA", None, ca=True)
    other_ca = _cert("someone else's CA", None, ca=True)
    files = {"ca": _write(folder, "ca", ca)[1]}
    files["server"] = _write(folder, "server", _cert("127.0.0.1", ca, server=True))
    files["ci-bot"] = _write(folder, "ci-bot", _cert("ci-bot", ca))
    files["stranger"] = _write(folder, "stranger", _cert("stranger", ca))  # trusted CA, no mapping
    files["expired"] = _write(folder, "expired", _cert("ci-bot", ca, expired=True))
    files["untrusted"] = _write(folder, "untrusted", _cert("ci-bot", other_ca))
    files["ca2"] = _cert("idf test CA 2", None, ca=True)
    files["folder"] = folder
    return files


def _server(pki, tmp_path: Path) -> ServerThread:
    key, cert = pki["server"]
    return ServerThread(
        data_dir=tmp_path, auth="api-key", admin_token="adm",
        tls_cert_file=cert, tls_key_file=key, tls_client_ca_file=pki["ca"],
        mtls_identities={"ci-bot": {"roles": ["operator"], "accounts": ["market/accounts/ci"]}},
    )  # fmt: skip


def _creds(pki, who: str | None, ca: Path | None = None) -> grpc.ChannelCredentials:
    key = cert = None
    if who:
        key, cert = (p.read_bytes() for p in pki[who])
    return grpc.ssl_channel_credentials((ca or pki["ca"]).read_bytes(), key, cert)


def _client(s: ServerThread, pki, who: str | None, ca: Path | None = None) -> Client:
    return Client(s.target, credentials=_creds(pki, who, ca), max_attempts=1, timeout=10)


def test_a_client_certificate_is_a_principal(pki, tmp_path):
    s = _server(pki, tmp_path)
    try:
        with _client(s, pki, "ci-bot") as c:
            assert c.predict(np.ones((8, 8), np.float32), 1, diffusivity=0.1).frames.shape == (
                1,
                8,
                8,
            )
            with pytest.raises(PermissionDeniedError):
                c.list_api_keys()  # an operator, not an admin
        with Client(
            s.target, api_key="adm", credentials=_creds(pki, "ci-bot"), max_attempts=1
        ) as c:
            c.list_api_keys()  # a bearer credential, when sent, names the principal
        with _client(s, pki, "stranger") as c:  # trusted, but no principal is mapped to it
            with pytest.raises(UnauthenticatedError):
                c.list_models()
        for who in ("untrusted", "expired", None):  # refused in the handshake: no call reaches us
            with _client(s, pki, who) as c:
                with pytest.raises(UnavailableError):
                    c.list_models()
        with Client(s.target, max_attempts=1, timeout=5) as c:  # plaintext to a TLS port
            with pytest.raises(UnavailableError):
                c.list_models()
    finally:
        s.stop()


def test_the_server_certificate_is_reloaded_without_a_restart(pki, tmp_path):
    """New files on disk serve new connections: after rotating to a certificate from another CA,
    a client trusting only the new CA connects."""
    folder = tmp_path / "certs"
    folder.mkdir()
    key, cert = _write(folder, "live", _cert("127.0.0.1", _cert_pair_of(pki, "ca"), server=True))
    s = ServerThread(data_dir=tmp_path / "data", auth="api-key", admin_token="adm",
                     tls_cert_file=cert, tls_key_file=key)  # fmt: skip
    try:
        with _client(s, pki, None) as c:
            c.list_models()
        ca2 = pki["ca2"]
        new_key, new_cert = _write(folder, "next", _cert("127.0.0.1", ca2, server=True))
        os.replace(new_key, key)  # key first, then the certificate: each renamed into place
        os.replace(new_cert, cert)
        ca2_file = folder / "ca2.pem"
        ca2_file.write_bytes(ca2[1].public_bytes(serialization.Encoding.PEM))
        deadline = time.monotonic() + 10
        while True:  # gRPC asks for the configuration at new handshakes
            try:
                with _client(s, pki, None, ca=ca2_file) as c:
                    c.list_models()
                break
            except UnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        s.stop()


def _cert_pair_of(pki, name: str):
    """(key, certificate) of the test CA, read back from its files."""
    folder = pki["folder"]
    key = serialization.load_pem_private_key((folder / f"{name}.key").read_bytes(), None)
    cert = x509.load_pem_x509_certificate((folder / f"{name}.pem").read_bytes())
    return key, cert


def test_the_cli_speaks_mtls(pki, tmp_path):
    from typer.testing import CliRunner

    from idf.cli.main import app

    s = _server(pki, tmp_path)
    key, cert = pki["ci-bot"]
    try:
        runner = CliRunner()
        tls = ["--tls-ca", str(pki["ca"]), "--tls-cert", str(cert), "--tls-key", str(key)]
        ok = runner.invoke(app, [*tls, "keys", "list", "--server", s.target, "--json"])
        assert ok.exit_code == 4 and "PERMISSION_DENIED" in ok.output  # reached, as an operator
        plain = runner.invoke(
            app, ["keys", "list", "--server", s.target, "--json", "--timeout", "5"]
        )
        assert plain.exit_code == 3  # unreachable without TLS
    finally:
        s.stop()


def _https(port: int, path: str, pki, who: str | None) -> int:
    import ssl
    import urllib.error
    import urllib.request

    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    if who:
        key, cert = pki[who]
        ctx.load_cert_chain(cert, key)
    try:
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}{path}", context=ctx, timeout=10
        ) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_the_rest_face_speaks_tls_and_mtls_with_the_same_identities(pki, tmp_path):
    key, cert = pki["server"]
    s = ServerThread(
        data_dir=tmp_path, auth="api-key", admin_token="adm", rest_port=0,
        tls_cert_file=cert, tls_key_file=key, tls_client_ca_file=pki["ca"],
        mtls_identities={"ci-bot": {"roles": ["operator"]}},
    )  # fmt: skip
    try:
        port = s.running.rest_port
        assert _https(port, "/v1/proofs", pki, "ci-bot") == 200  # an operator reads proofs
        assert _https(port, "/v1/keys", pki, "ci-bot") == 403  # ... but is no admin: it is ci-bot
        assert _https(port, "/v1/keys", pki, "stranger") == 401  # trusted, not mapped
        for who in (None, "untrusted", "expired"):
            with pytest.raises(OSError):  # the handshake fails (ssl.SSLError / URLError)
                _https(port, "/v1/models", pki, who)
        import urllib.request

        with pytest.raises(OSError):  # plain HTTP to the TLS port
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10)
        with _client(s, pki, "ci-bot") as c:  # the gRPC port still requires its certificate
            c.list_proofs()
    finally:
        s.stop()
