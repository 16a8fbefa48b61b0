"""Who is calling, and may they: authentication and authorisation at one point for both faces.

Every RPC of the contract names the permission it needs (`option (idf.v1.permission)`,
proto/idf/v1/access.proto); `method_permissions` reads them from the descriptors, so nothing is
listed by hand and an RPC without the option is refused. Roles grant permissions
(`Settings.roles`, defaults in `idf.server.config.ROLES`); a caller without credentials holds the anonymous
permissions (`Settings.anonymous_permissions`: the catalogue and the public proof log).

`Authority.check(rpc, metadata)` runs in the `Guard` interceptor before any servicer code, for
native gRPC and for the REST face alike (REST forwards `authorization` onto the same gRPC call):

- `auth = "off"` (set explicitly; loopback only): every caller is the local administrator of
  tenant `default`.
- `auth = "api-key"` (the default): `authorization: Bearer idf_...` is looked up in the key store (hash of the
  secret, revocation, expiry); a JWT is verified by `idf.server.tokens` (trusted issuers, and the
  service's own tokens); `Bearer <admin_token>` is the bootstrap administrator. Any other
  credential, or a bad key or token of any kind, is UNAUTHENTICATED with one message for all causes (no
  oracle); a call the principal's roles do not allow is PERMISSION_DENIED. Both are written to
  the audit log (`idf.audit`) with the cause, never the secret.

The principal of the current call is `current()` (a context variable the interceptor sets).
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import importlib
import logging
import pkgutil
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc

import idf.v1
from idf.server.config import ANONYMOUS, ROLES
from idf.server.errors import ApiError
from idf.server.ratelimit import RateLimiter
from idf.server.tls import peer_common_name
from idf.server.tokens import InvalidToken, TokenVerifier, looks_like_jwt
from idf.store.keys import ApiKey, KeyStore
from idf.v1 import access_pb2

audit = logging.getLogger("idf.audit")


def contract_modules() -> list[ModuleType]:
    """Every generated module of the contract (idf.v1.*_pb2), found, not listed: a new proto
    file's RPCs are covered without an edit here."""
    names = sorted(m.name for m in pkgutil.iter_modules(idf.v1.__path__) if m.name.endswith("_pb2"))
    return [importlib.import_module(f"idf.v1.{name}") for name in names]


DEFAULT_TENANT = "default"
KEY_CACHE_S = 2.0  # a key looked up within this is not read again (revocation here is immediate)


@dataclass(frozen=True)
class Principal:
    name: str
    tenant: str
    roles: tuple[str, ...]
    source: str  # "api-key", "jwt", "admin-token", "anonymous", "local" (auth off), "none"
    key_id: str = ""
    accounts: tuple[str, ...] = ()  # ledger accounts it acts and pays for (first: default)

    @property
    def operator(self) -> bool:
        """The deployment's operator (the bootstrap admin token, or the local caller with auth
        off): it acts for any account and creates tenants."""
        return self.source in ("local", "admin-token")


LOCAL = Principal("local", DEFAULT_TENANT, ("admin",), "local")
# Outside a call the Guard has bound (a thread the call's context did not reach): nobody, who may
# do nothing. Fail closed: a missed context is a refusal, never an administrator.
NOBODY = Principal("nobody", "", (), "none")


@dataclass(frozen=True)
class _Call:
    """What the Guard binds for the call being served."""

    principal: Principal = NOBODY
    limiter: RateLimiter | None = None  # counts its engine work (None: auth off)
    authority: Authority | None = None  # its store says which tenant owns an account


_CALL: contextvars.ContextVar[_Call] = contextvars.ContextVar("idf_call", default=_Call())


def current() -> Principal:
    """The principal of the call being served (NOBODY outside a call the Guard has bound)."""
    return _CALL.get().principal


def method_permissions(modules: Iterable[ModuleType] | None = None) -> dict[str, str]:
    """'idf.v1.Service/Method' -> the permission its option names ('' when it has none)."""
    out = {}
    for module in contract_modules() if modules is None else modules:
        for service in module.DESCRIPTOR.services_by_name.values():  # type: ignore[attr-defined]
            for m in service.methods:
                out[f"{service.full_name}/{m.name}"] = m.GetOptions().Extensions[
                    access_pb2.permission
                ]
    return out


def _unauthenticated(message: str = "the credential is not valid") -> ApiError:
    return ApiError(grpc.StatusCode.UNAUTHENTICATED, message, reason="UNAUTHENTICATED")


def _refused(
    rpc: str, cause: str, peer: str, message: str = "the credential is not valid", **extra: str
) -> ApiError:
    """UNAUTHENTICATED, with the cause in the audit log (never in the answer)."""
    audit.warning(
        "auth refused",
        extra={"event": "auth.refused", "rpc": rpc, "cause": cause, "peer": peer, **extra},
    )
    return _unauthenticated(message)


def bearer(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The bearer credential of `authorization` metadata; '' when the header is malformed,
    None when there is none."""
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            scheme, _, credential = text.strip().partition(" ")
            return credential.strip() if scheme.lower() == "bearer" else ""
    return None


class Authority:
    def __init__(
        self,
        mode: str,
        keys: KeyStore | None,
        *,
        roles: Mapping[str, Iterable[str]] = ROLES,
        anonymous: Iterable[str] = ANONYMOUS,  # the configuration's defaults
        admin_token: str | None = None,
        tokens: TokenVerifier | None = None,
        identities: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if mode not in ("off", "api-key"):
            raise ValueError(f"auth mode {mode!r}")
        if mode != "off" and keys is None:
            raise ValueError("api-key authentication needs a key store")
        self.mode, self.keys, self.admin_token = mode, keys, admin_token
        self.roles = {name: frozenset(p) for name, p in roles.items()}
        self.anonymous = frozenset(anonymous)
        self.permissions = method_permissions()
        self.tokens = tokens  # JWTs: trusted issuers and the service's own (None: no JWTs)
        # mTLS: client certificate CN -> its principal
        self.identities = {
            cn: Principal(
                cn,
                str(v.get("tenant", DEFAULT_TENANT)),
                tuple(v.get("roles", ())),
                "mtls",
                accounts=tuple(v.get("accounts", ())),
            )
            for cn, v in (identities or {}).items()
        }
        self._memory: dict[str, tuple[ApiKey | Principal | None, str, float]] = {}  # see _recall
        self._lock = threading.Lock()

    # -- permissions ---------------------------------------------------------------------------
    def allows(self, principal: Principal, permission: str) -> bool:
        granted = (
            self.anonymous
            if principal.source == "anonymous"
            else frozenset().union(*(self.roles.get(r, frozenset()) for r in principal.roles))
        )
        return "*" in granted or permission in granted

    def check(
        self,
        rpc: str,
        metadata: Iterable[tuple[str, str | bytes]] | None,
        peer: str = "",
        auth_context: dict[str, list[bytes]] | None = None,
    ) -> Principal:
        """The caller's principal if it may call `rpc` ('idf.v1.Service/Method'; methods of
        other services, health and reflection, need nothing); else UNAUTHENTICATED or
        PERMISSION_DENIED, audited."""
        principal = self.authenticate(rpc, metadata, peer, auth_context)
        if rpc not in self.permissions:
            if rpc.startswith("idf.v1."):  # a method of the contract without its permission: refuse
                raise self._deny(principal, rpc, "", peer)
            return principal
        permission = self.permissions[rpc]
        if not permission or not self.allows(principal, permission):
            if principal.source == "anonymous":
                raise _refused(rpc, "no credential", peer,
                               f"{rpc.rpartition('/')[2]} needs credentials: send authorization: Bearer <API key>")  # fmt: skip
            raise self._deny(principal, rpc, permission, peer)
        if permission.endswith(".admin"):
            audit.info(
                "admin call",
                extra={
                    "event": "admin.call",
                    "rpc": rpc,
                    "principal": principal.name,
                    "tenant": principal.tenant,
                    "peer": peer,
                },
            )
        return principal

    def _deny(self, principal: Principal, rpc: str, permission: str, peer: str) -> ApiError:
        audit.warning(
            "permission denied",
            extra={
                "event": "auth.denied",
                "rpc": rpc,
                "permission": permission or "(none declared)",
                "principal": principal.name,
                "tenant": principal.tenant,
                "roles": list(principal.roles),
                "peer": peer,
            },
        )
        return ApiError(
            grpc.StatusCode.PERMISSION_DENIED,
            f"{principal.name} may not call {rpc.rpartition('/')[2]}"
            + (f" (needs {permission})" if permission else ""),
            reason="PERMISSION_DENIED",
        )

    # -- credentials ---------------------------------------------------------------------------
    def authenticate(
        self,
        rpc: str,
        metadata: Iterable[tuple[str, str | bytes]] | None,
        peer: str = "",
        auth_context: dict[str, list[bytes]] | None = None,
    ) -> Principal:
        if self.mode == "off":
            return LOCAL
        credential = bearer(metadata)
        if credential is None:
            cn = peer_common_name(auth_context)  # verified by the TLS handshake
            if cn is None:
                return Principal("anonymous", DEFAULT_TENANT, (), "anonymous")
            if cn not in self.identities:
                raise _refused(rpc, "certificate not mapped", peer, common_name=cn[:128])
            return self.identities[cn]
        if self.admin_token and hmac.compare_digest(credential.encode(), self.admin_token.encode()):
            return Principal("admin", DEFAULT_TENANT, ("admin",), "admin-token")
        if self.tokens is not None and looks_like_jwt(credential):
            recalled = self._recall(credential, time.time())
            principal, cause = recalled[:2] if recalled else self.verify_token(credential)
            if principal is None:
                raise _refused(rpc, cause, peer)
            return principal  # type: ignore[return-value]
        key, cause = self._key(credential)
        if key is None:
            raise _refused(
                rpc, cause, peer, key_id=credential[4:16] if credential.startswith("idf_") else ""
            )
        return Principal(key.principal, key.tenant, key.roles, "api-key", key.key_id, key.accounts)

    def _key(self, credential: str) -> tuple[ApiKey | None, str]:
        """The valid key this credential is, or (None, why not)."""
        if not credential:
            return None, "malformed authorization header"
        now = time.time()
        recalled = self._recall(credential, now)
        key = recalled[0] if recalled else self.load(credential, now)
        if not isinstance(key, ApiKey):
            return None, "unknown or malformed key"
        if key.revoked is not None:
            return None, "revoked key"
        if not key.valid_at(now):
            return None, "expired key"
        return key, ""

    # One memory of recent answers, for keys and tokens alike: sha256(credential) -> (the key as
    # stored, the principal a token authenticates, or None; why not; until when it holds). Keys
    # are held KEY_CACHE_S (their expiry and revocation are checked at each use), tokens until
    # their exp, at most KEY_CACHE_S; bounded, so a flood of made-up credentials cannot grow it.
    def _recall(self, credential: str, now: float) -> tuple[ApiKey | Principal | None, str] | None:
        digest = hashlib.sha256(credential.encode()).hexdigest()
        with self._lock:
            hit = self._memory.get(digest)
        return (hit[0], hit[1]) if hit is not None and now < hit[2] else None

    def _remember(
        self, credential: str, answer: ApiKey | Principal | None, cause: str, until: float
    ) -> None:
        with self._lock:
            if len(self._memory) > 10_000:
                self._memory.clear()
            self._memory[hashlib.sha256(credential.encode()).hexdigest()] = (answer, cause, until)

    def verify_token(
        self, credential: str, now: float | None = None
    ) -> tuple[Principal | None, str]:
        """Verify a JWT (blocking: a JWKS may be fetched) and remember the answer."""
        assert self.tokens is not None
        now = time.time() if now is None else now
        try:
            identity = self.tokens.verify(credential, now)
        except InvalidToken as e:
            self._remember(credential, None, str(e), now + KEY_CACHE_S)
            return None, str(e)
        # an issuer's tenant acts only for its tenant's accounts, whatever the token claims
        accounts = tuple(
            a for a in identity.accounts
            if self.keys is not None and self.keys.tenant_of(a) == identity.tenant
        )  # fmt: skip
        principal = Principal(
            identity.principal, identity.tenant, identity.roles, "jwt", "", accounts
        )
        self._remember(credential, principal, "", min(identity.expires, now + KEY_CACHE_S))
        return principal, ""

    def lookup(self, credential: str) -> None:
        """The blocking part of authenticating `credential` (a store read, a JWKS fetch, a
        signature check), run off the event loop; its answer is remembered for `check`."""
        if self.tokens is not None and looks_like_jwt(credential):
            self.verify_token(credential)
        else:
            self.load(credential)

    def load(self, credential: str, now: float | None = None) -> ApiKey | None:
        """Look the key up in the store (blocking) and remember the answer for KEY_CACHE_S."""
        assert self.keys is not None
        now = time.time() if now is None else now
        key = self.keys.find(credential)
        self._remember(credential, key, "", now + KEY_CACHE_S)
        return key

    def needs_lookup(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
        """The credential to `lookup` off the event loop before `check`, if any."""
        if self.mode == "off":
            return None
        credential = bearer(metadata)
        if not credential or (self.admin_token and credential == self.admin_token):
            return None
        return None if self._recall(credential, time.time()) is not None else credential

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (after revoking it here: refused from the next call)."""
        with self._lock:
            for digest, (answer, _, _) in list(self._memory.items()):
                if isinstance(answer, ApiKey) and answer.key_id == key_id:
                    del self._memory[digest]


def bind(
    principal: Principal, limiter: RateLimiter | None = None, authority: Authority | None = None
) -> None:
    """The current call's principal, the rate limiter its engine work is counted by, and the
    authority (whose store says which tenant owns an account)."""
    _CALL.set(_Call(principal, limiter, authority))


def rate_key(principal: Principal, peer: str) -> str:
    """Whose buckets a call draws from: the principal, or for anonymous callers their host."""
    if principal.source == "anonymous":
        return "anonymous@" + peer.rsplit(":", 1)[0]
    return f"{principal.tenant}/{principal.name}"


def admit_work(site_updates: int, peer: str = "") -> None:
    """Take an engine call's work from the current principal's work bucket (RATE_LIMITED when it
    is short); nothing when no limiter is bound (auth off)."""
    call = _CALL.get()
    if call.limiter is not None:
        principal = call.principal
        call.limiter.admit_work(rate_key(principal, peer), site_updates, principal.tenant)


def acting_account(requested: str | None, field: str) -> str | None:
    """The ledger account the current call acts and pays for: `requested` when the caller may
    act for it (its key grants it; administrators and the local caller (auth off) any), the
    caller's default account when it names none, else PERMISSION_DENIED naming `field`. None
    when the caller names none and has none."""
    principal = current()
    if not requested:
        return None if principal.operator or not principal.accounts else principal.accounts[0]
    if principal.operator or requested in principal.accounts:
        return requested
    authority = _CALL.get().authority
    if "admin" in principal.roles and authority is not None and authority.keys is not None:
        owner = authority.keys.tenant_of(requested)  # a tenant's admins: its own accounts
        if owner == principal.tenant:
            return requested
    audit.warning(
        "account denied",
        extra={
            "event": "auth.account_denied",
            "principal": principal.name,
            "tenant": principal.tenant,
            "account": requested,
        },
    )
    raise ApiError(
        grpc.StatusCode.PERMISSION_DENIED,
        f"{principal.name} may not act for {requested}"
        + (f"; its accounts: {', '.join(principal.accounts)}" if principal.accounts else ""),
        reason="ACCOUNT_NOT_GRANTED",
        violations=[(field, "not an account of the caller")],
    )
