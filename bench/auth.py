"""What authentication and authorisation add to a call: p50/p95 latency of a cheap RPC
(ListPolicies) against a server with `auth = "off"` and one with authentication on, called with
an API key, with a JWT (the service's own, from IssueToken) and over mTLS (a client certificate;
its baseline is the same server's TLS without auth... see below), all started in the same run and
called alternately in rounds; and the cost of the check itself (`Authority.check` with a cached
key, timed directly). Goal (issue 15): < 50 µs per call at p50.

mTLS is compared with plain TLS (a second pair of servers: TLS with auth off, and mTLS with auth
on), since TLS itself costs far more than the check and is not what is measured.

    python bench/auth.py [--calls 2000] [--rounds 5] [--out results.json]

Both servers run in this process (grpc.aio on their own threads), each called over loopback by a
blocking client; the added latency is the difference of the medians, round by round.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import ServerThread  # noqa: E402
from report import emit  # noqa: E402

from idf.client import Client  # noqa: E402
from idf.server import auth  # noqa: E402
from idf.store.keys import KeyStore  # noqa: E402

ADMIN = "bench-admin-token"


def _latencies(client: Client, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        client.list_policies()
        out.append(time.perf_counter() - t)
    return out


def _check_cost(calls: int) -> dict[str, float]:
    """Authority.check for one API key in the cache, timed directly (µs)."""
    store = KeyStore(str(Path(tempfile.mkdtemp(prefix="idf-bench-")) / "keys.sqlite3"))
    _, secret = store.create("bench", "default", ("operator",))
    authority = auth.Authority("api-key", store)
    metadata = [("authorization", f"Bearer {secret}")]
    rpc = "idf.v1.PredictService/Predict"
    authority.check(rpc, metadata)  # fills the cache
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        authority.check(rpc, metadata)
        times.append(time.perf_counter() - t)
    store.close()
    times.sort()
    return {"p50_us": times[len(times) // 2] * 1e6, "p95_us": times[int(len(times) * 0.95)] * 1e6}


def _pki(folder: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate `bench`, as PEM files
    (ca.pem, server.pem/.key, client.pem/.key) in `folder`."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def make(cn, issuer=None, ca=False, server=False):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        signer_key, signer = issuer or (key, None)
        b = (x509.CertificateBuilder().subject_name(name).issuer_name(signer.subject if signer else name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))  # fmt: skip
        if server:
            b = b.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return key, b.sign(signer_key, hashes.SHA256())

    def write(name, pair):
        key, cert = pair
        (folder / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
        (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    ca = make("bench CA", ca=True)
    write("ca", ca)
    write("server", make("127.0.0.1", ca, server=True))
    write("client", make("bench", ca))


def main() -> None:
    import grpc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    unlimited = dict(rate_limit_requests_per_s=1e9, rate_limit_burst=1e9,
                     tenant_rate_limit_requests_per_s=1e9, tenant_rate_limit_burst=1e9)  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="idf-bench-"))
    _pki(folder)
    tls = dict(tls_cert_file=folder / "server.pem", tls_key_file=folder / "server.key")
    off = ServerThread(data_dir=folder / "off", auth="off")
    on = ServerThread(data_dir=folder / "on", auth="api-key", admin_token=ADMIN, **unlimited)
    tls_off = ServerThread(data_dir=folder / "tls-off", auth="off", **tls)
    mtls_on = ServerThread(data_dir=folder / "mtls-on", auth="api-key", admin_token=ADMIN,
                           tls_client_ca_file=folder / "ca.pem",
                           mtls_identities={"bench": {"roles": ["viewer"]}}, **tls, **unlimited)  # fmt: skip
    ca, cert, key = ((folder / n).read_bytes() for n in ("ca.pem", "client.pem", "client.key"))
    rounds = []
    try:
        with Client(on.target, api_key=ADMIN, max_attempts=1) as admin:
            secret = admin.create_api_key("bench", ["viewer"]).secret
        with Client(on.target, api_key=secret, max_attempts=1) as k:
            token = k.issue_token().access_token
        clients = {
            "off": Client(off.target, max_attempts=1),
            "api_key": Client(on.target, api_key=secret, max_attempts=1),
            "jwt": Client(on.target, api_key=token, max_attempts=1),
            "tls_off": Client(tls_off.target, credentials=grpc.ssl_channel_credentials(ca), max_attempts=1),
            "mtls": Client(mtls_on.target, credentials=grpc.ssl_channel_credentials(ca, key, cert), max_attempts=1),
        }  # fmt: skip
        for c in clients.values():
            _latencies(c, 200)  # warm-up: channels, caches
        for _ in range(args.rounds):
            p50 = {
                name: statistics.median(_latencies(c, args.calls)) * 1e6
                for name, c in clients.items()
            }
            rounds.append({
                **{f"p50_{n}_us": v for n, v in p50.items()},
                "added_api_key_us": p50["api_key"] - p50["off"],
                "added_jwt_us": p50["jwt"] - p50["off"],
                "added_mtls_us": p50["mtls"] - p50["tls_off"],
            })  # fmt: skip
        for c in clients.values():
            c.close()
    finally:
        for s in (off, on, tls_off, mtls_on):
            s.stop()
    emit(
        {
            "benchmark": "auth",
            "rpc": "ListPolicies",
            "calls_per_round": args.calls,
            "rounds": rounds,
            **{
                f"{k}_median": statistics.median(r[k] for r in rounds)
                for k in ("added_api_key_us", "added_jwt_us", "added_mtls_us")
            },  # fmt: skip
            "check_with_cached_key": _check_cost(20_000),
            "goal_us": 50,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
