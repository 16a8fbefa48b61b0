"""JWT bearer tokens (issue 15): an external issuer's RS256/ES256 tokens verified against its JWKS
(file:// here, fetched and cached by PyJWT, re-fetched when a token names a new key), the
service's own EdDSA tokens from the OAuth2 client-credentials grant, and every kind of bad token
refused alike and audited. The tokens are made here with PyJWT and `cryptography`, and one by
hand (HS256 keyed with the issuer's public key: the classic algorithm-confusion attack). The
issuer's JWKS is served over HTTP on loopback, as an identity provider serves it."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import http.server
import json
import logging
import threading
import time
import urllib.error
import urllib.request

import jwt
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from helpers import ServerThread
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from idf.client import Client, PermissionDeniedError, UnauthenticatedError

ADMIN = "token-test-admin"
ISSUER, AUDIENCE = "https://idp.example.test", "idf-api"


def _jwk(public_key, kid: str, alg: str) -> dict:
    algo = RSAAlgorithm if alg == "RS256" else ECAlgorithm
    return {**algo.to_jwk(public_key, as_dict=True), "kid": kid, "alg": alg, "use": "sig"}


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    """An identity provider: an RSA and an EC key, published in a JWKS file."""
    folder = tmp_path_factory.mktemp("idp")
    keys = {
        "rsa-1": (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        "ec-1": (ec.generate_private_key(ec.SECP256R1()), "ES256"),
    }
    (folder / ".well-known").mkdir()
    path = folder / ".well-known" / "jwks.json"

    def publish() -> None:
        path.write_text(
            json.dumps({"keys": [_jwk(k.public_key(), kid, alg) for kid, (k, alg) in keys.items()]})
        )

    publish()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/.well-known/jwks.json"
    yield {"keys": keys, "url": url, "publish": publish}
    httpd.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory, idp):
    trusted = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwks_url": idp["url"],
        "max_skew_s": 30,
        "jwks_refresh_cooldown_s": 1.0,
    }
    s = ServerThread(
        data_dir=tmp_path_factory.mktemp("tokens"), auth="api-key", admin_token=ADMIN, rest_port=0,
        jwt_issuers=[trusted],
    )  # fmt: skip
    yield s
    s.stop()


def _token(idp, kid: str = "rsa-1", **claims) -> str:
    key, alg = idp["keys"][kid]
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "dana", "roles": ["viewer"], "iat": now,
            "nbf": now, "exp": now + 300, **claims}  # fmt: skip
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_with_public_key(idp) -> str:
    """HS256 keyed with the issuer's public RSA key (PEM): verifies under a library that lets the
    token choose the algorithm and hands it the issuer's 'key'."""
    pem = (
        idp["keys"]["rsa-1"][0]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    now = int(time.time())
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    body = _b64(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "eve", "roles": ["admin"],
                            "exp": now + 300}).encode())  # fmt: skip
    signature = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def test_an_external_issuers_tokens_authenticate_with_their_roles(server, idp):
    for kid in ("rsa-1", "ec-1"):
        with Client(server.target, api_key=_token(idp, kid), max_attempts=1) as c:
            c.list_proofs()  # viewer
            with pytest.raises(PermissionDeniedError):
                c.predict(np.ones((8, 8), np.float32), 1, diffusivity=0.1)
    # roles the configuration does not know are dropped, not trusted
    with Client(
        server.target, api_key=_token(idp, roles=["root", "operator"]), max_attempts=1
    ) as c:
        assert c.predict(np.ones((8, 8), np.float32), 1, diffusivity=0.1).frames.shape == (1, 8, 8)
        with pytest.raises(PermissionDeniedError):
            c.list_api_keys()


def test_key_rotation_is_picked_up_from_the_jwks(server, idp):
    idp["keys"]["rsa-2"] = (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")
    try:
        fresh = _token(idp, "rsa-2")
        with Client(server.target, api_key=fresh, max_attempts=1) as c:
            with pytest.raises(UnauthenticatedError):  # not published yet
                c.list_proofs()
        idp["publish"]()
        time.sleep(2.1)  # past the server's memory of the refusal (KEY_CACHE_S)
        with Client(server.target, api_key=fresh, max_attempts=1) as c:
            c.list_proofs()  # an unknown kid makes PyJWKClient fetch the JWKS again
    finally:
        del idp["keys"]["rsa-2"]
        idp["publish"]()


def test_bad_tokens_of_every_kind_are_refused_alike_and_audited(server, idp, caplog):
    now = int(time.time())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad = {
        "expired token": _token(idp, exp=now - 120, iat=now - 600, nbf=now - 600),
        "token not valid yet": _token(idp, nbf=now + 600),
        "wrong audience": _token(idp, aud="someone-else"),
        "issuer not trusted": _token(idp, iss="https://evil.example.test"),
        "bad signature": jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": "eve", "exp": now + 300},
            other,
            algorithm="RS256",
            headers={"kid": "rsa-1"},
        ),  # fmt: skip
        "algorithm 'none'": jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": "eve", "exp": now + 300}, None, algorithm="none"
        ),
        "algorithm 'HS256'": _hs256_with_public_key(idp),
        "no key for this token": _token(idp, "rsa-1")
        and jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": "eve", "exp": now + 300},
            idp["keys"]["rsa-1"][0],
            algorithm="RS256",
            headers={"kid": "nobody-knows-me"},
        ),  # fmt: skip
        "missing claim 'exp'": _token(idp, exp=None),
        "malformed token": "a.b.c",
    }
    messages = set()
    with caplog.at_level(logging.WARNING, logger="idf.audit"):
        for token in bad.values():
            with Client(server.target, api_key=token, max_attempts=1) as c:
                with pytest.raises(UnauthenticatedError) as e:
                    c.list_models()
                messages.add(e.value.message)
    assert messages == {"the credential is not valid"}
    causes = " | ".join(getattr(r, "cause", "") for r in caplog.records)
    for cause in bad:
        assert cause.split(" (")[0] in causes, f"{cause!r} not audited: {causes}"


def _http(server, method: str, path: str, data: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.running.rest_port}{path}", data=data, method=method,
        headers=headers or {},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_the_service_issues_its_own_tokens_by_client_credentials(server):
    with Client(server.target, api_key=ADMIN, max_attempts=1) as admin:
        created = admin.create_api_key("etl", ["operator"], accounts=["etl"])
    with Client(server.target, api_key=created.secret, max_attempts=1) as c:
        token = c.issue_token()
    assert token.token_type == "Bearer" and token.expires_in == 600
    # the token is an EdDSA JWT the published JWKS verifies (checked here with PyJWT alone)
    status, jwks = _http(server, "GET", "/.well-known/jwks.json")
    assert status == 200 and jwks["keys"][0]["alg"] == "EdDSA"
    key = jwt.PyJWK(jwks["keys"][0]).key
    claims = jwt.decode(token.access_token, key, algorithms=["EdDSA"], audience="idf", issuer="idf")
    assert (claims["sub"], claims["roles"], claims["accounts"]) == (
        "etl",
        ["operator"],
        ["market/accounts/etl"],
    )
    with Client(server.target, api_key=token.access_token, max_attempts=1) as c:
        c.predict(np.ones((8, 8), np.float32), 1, diffusivity=0.1)
        with pytest.raises(PermissionDeniedError):  # a token does not renew itself
            c.issue_token()
    # the OAuth2 endpoint: form or HTTP Basic
    form = f"grant_type=client_credentials&client_secret={created.secret}".encode()
    status, body = _http(server, "POST", "/oauth2/token", form,
                         {"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert status == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 600
    basic = base64.b64encode(f"etl:{created.secret}".encode()).decode()
    status, body = _http(server, "POST", "/oauth2/token", b"grant_type=client_credentials",
                         {"Authorization": f"Basic {basic}"})  # fmt: skip
    assert status == 200 and body["access_token"].count(".") == 2
    status, body = _http(
        server, "POST", "/oauth2/token", b"grant_type=client_credentials&client_secret=idf_x"
    )
    assert status == 401 and body["error"] == "invalid_client"
    status, body = _http(server, "POST", "/oauth2/token", b"grant_type=password")
    assert status == 400 and body["error"] == "unsupported_grant_type"
