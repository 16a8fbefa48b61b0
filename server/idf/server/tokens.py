"""JWT bearer tokens (PyJWT): verified for the issuers the configuration trusts, and issued by the
service itself (OAuth2 client credentials) so machines get short-lived tokens without a
third-party identity provider.

Verification (`TokenVerifier.verify`) refuses, with a cause for the audit log:
- any algorithm but RS256, ES256 and EdDSA (`alg: none` and every HS*, which an attacker could
  sign with a public key, are refused before any key is looked at);
- an issuer (`iss`) that is not configured, or the service's own issuer unless this service
  signed it; a wrong audience (`aud`); an expired token or one not valid yet (`exp`, `nbf`, with
  the issuer's allowed clock skew); a token without `exp`, `iss`, `aud` or `sub`;
- a key id (`kid`) the issuer's JWKS does not hold (the JWKS is fetched over HTTP(S) and cached
  by `jwt.PyJWKClient`, and fetched again when a token names a key it lacks — key rotation — at
  most once per `jwks_refresh_cooldown_s`, so made-up key ids cannot hammer the issuer).

Claims map to a principal: `sub` (or the issuer's `principal_claim`) is its name, the tenant is
the issuer's (configured: an external issuer cannot name another tenant), `roles` (or
`roles_claim`) are kept where they are configured roles, and `accounts` are the ledger accounts it
may act for. The service's own tokens carry the issuing API key's principal, tenant, roles and
accounts, are EdDSA-signed with a key of their own (<data_dir>/keys/token-ed25519.pem), and their
JWKS is served on the REST face at /.well-known/jwks.json.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

ALGORITHMS = ("RS256", "ES256", "EdDSA")


class InvalidToken(Exception):
    """A token that does not authenticate anyone; `str(self)` is the cause (for the audit log)."""


@dataclass(frozen=True)
class Identity:
    principal: str
    tenant: str
    roles: tuple[str, ...]
    accounts: tuple[str, ...]
    expires: float  # exp, seconds since the epoch
    issuer: str


@dataclass(frozen=True)
class TrustedIssuer:
    issuer: str
    audience: str
    jwks_url: str  # https://... (http:// only for a trusted network) serving a JWKS document
    tenant: str = "default"
    principal_claim: str = "sub"
    roles_claim: str = "roles"
    max_skew_s: float = 60.0
    jwks_cache_s: float = 300.0  # how long a fetched JWKS is used before it is fetched again
    jwks_refresh_cooldown_s: float = 30.0  # least time between fetches forced by an unknown kid


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and not credential.startswith("idf_")


class OwnIssuer:
    """The service's own tokens: EdDSA over Ed25519, short-lived."""

    def __init__(self, key: Ed25519PrivateKey, issuer: str, ttl_s: int) -> None:
        self.key, self.issuer, self.ttl_s = key, issuer, ttl_s
        self.public_key = key.public_key()
        jwk = OKPAlgorithm.to_jwk(self.public_key, as_dict=True)
        self.kid = jwk["kid"] = jwt.utils.base64url_encode(
            hashlib.sha256(jwk["x"].encode()).digest()[:12]
        ).decode()
        self.jwk = {**jwk, "alg": "EdDSA", "use": "sig"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk]}

    def issue(
        self,
        principal: str,
        tenant: str,
        roles: Iterable[str],
        accounts: Iterable[str],
        now: float | None = None,
    ) -> tuple[str, int]:
        """(token, seconds it lives)."""  # fmt: skip
        now = time.time() if now is None else now
        claims = {
            "iss": self.issuer, "aud": self.issuer, "sub": principal, "tenant": tenant,
            "roles": list(roles), "accounts": list(accounts), "iat": int(now), "nbf": int(now),
            "exp": int(now) + self.ttl_s, "jti": uuid.uuid4().hex,
        }  # fmt: skip
        token = jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid})
        return token, self.ttl_s


class TokenVerifier:
    def __init__(
        self, trusted: Iterable[TrustedIssuer], own: OwnIssuer | None, roles: Iterable[str]
    ) -> None:
        self.trusted = {t.issuer: t for t in trusted}
        self.own = own
        if own is not None and own.issuer in self.trusted:
            raise ValueError(
                f"issuer {own.issuer!r} is the service's own; name trusted issuers otherwise"
            )
        self.roles = frozenset(roles)
        self._jwks = {
            t.issuer: jwt.PyJWKClient(
                t.jwks_url,
                cache_keys=True,
                lifespan=t.jwks_cache_s,
                timeout=10,
                cooldown_duration=t.jwks_refresh_cooldown_s,
            )
            for t in self.trusted.values()
        }  # fmt: skip

    def verify(self, token: str, now: float | None = None) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as e:
            raise InvalidToken(f"malformed token ({type(e).__name__})") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidToken(f"algorithm {str(alg)[:16]!r} is not accepted")
        issuer = unverified.get("iss")
        if not isinstance(issuer, str):
            raise InvalidToken("no issuer")
        if self.own is not None and issuer == self.own.issuer:
            if alg != "EdDSA" or header.get("kid") != self.own.kid:
                raise InvalidToken("not signed with the service's token key")
            claims = self._decode(token, self.own.public_key, "EdDSA", issuer, issuer, 5.0, now)
            return self._identity(claims, issuer, claims.get("tenant", "default"), "sub", "roles")
        trusted = self.trusted.get(issuer)
        if trusted is None:
            raise InvalidToken("issuer not trusted")
        try:
            key = self._jwks[issuer].get_signing_key(str(header.get("kid", "")))
        except jwt.PyJWKClientError as e:
            raise InvalidToken(
                f"no key for this token in the issuer's JWKS ({str(e)[:80]})"
            ) from None
        claims = self._decode(
            token, key.key, alg, issuer, trusted.audience, trusted.max_skew_s, now
        )
        return self._identity(claims, issuer, trusted.tenant, trusted.principal_claim, trusted.roles_claim)  # fmt: skip

    @staticmethod
    def _decode(token: str, key: Any, alg: str, issuer: str, audience: str, skew: float,
                now: float | None) -> dict[str, Any]:  # fmt: skip
        try:
            return jwt.decode(
                token, key, algorithms=[alg], audience=audience, issuer=issuer, leeway=skew,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise InvalidToken("expired token") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("token not valid yet") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad signature") from None
        except jwt.MissingRequiredClaimError as e:
            raise InvalidToken(f"missing claim {e.claim!r}") from None
        except jwt.PyJWTError as e:
            raise InvalidToken(f"invalid token ({type(e).__name__})") from None

    def _identity(self, claims: dict[str, Any], issuer: str, tenant: str, principal_claim: str,
                  roles_claim: str) -> Identity:  # fmt: skip
        name = claims.get(principal_claim)
        if not isinstance(name, str) or not name:
            raise InvalidToken(f"no {principal_claim} claim")
        roles = claims.get(roles_claim, [])
        roles = roles.split() if isinstance(roles, str) else roles
        kept = (
            tuple(r for r in roles if isinstance(r, str) and r in self.roles)
            if isinstance(roles, list)
            else ()
        )
        granted = claims.get("accounts", [])
        return Identity(
            name[:128], str(tenant), kept,
            tuple(a for a in granted if isinstance(a, str)) if isinstance(granted, list) else (),
            float(claims["exp"]), issuer,
        )  # fmt: skip
