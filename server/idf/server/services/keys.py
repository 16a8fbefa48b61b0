"""KeyService: API keys of the caller's tenant — create (the secret shown once), list, revoke.
The rules of a key (hashing, expiry) are `idf.store.keys`; who may call is `idf.server.auth`
(permission keys.admin)."""

from __future__ import annotations

import logging
import re
from concurrent.futures import Executor

import grpc
from google.protobuf import timestamp_pb2

from idf.engine.market.operations import is_user_account
from idf.server import auth, paging
from idf.server.errors import ApiError, invalid_argument
from idf.server.rpc import run_blocking, unary
from idf.server.tokens import OwnIssuer
from idf.store.keys import AccountOfAnotherTenant, ApiKey, KeyStore
from idf.v1 import keys_pb2, keys_pb2_grpc

audit = logging.getLogger("idf.audit")
PRINCIPAL = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_DESCRIPTION = 256
MAX_TTL_S = 10 * 365 * 86400
MAX_ACCOUNTS = 16


def _time(seconds: float) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromNanoseconds(round(seconds * 1e9))
    return t


def encode(key: ApiKey) -> keys_pb2.ApiKey:
    out = keys_pb2.ApiKey(
        name=f"keys/{key.key_id}",
        prefix=key.prefix,
        principal=key.principal,
        tenant=key.tenant,
        roles=list(key.roles),
        create_time=_time(key.created),
        description=key.description,
        accounts=list(key.accounts),
    )
    if key.expires is not None:
        out.expire_time.CopyFrom(_time(key.expires))
    if key.revoked is not None:
        out.revoke_time.CopyFrom(_time(key.revoked))
    return out


class KeyServicer(keys_pb2_grpc.KeyServiceServicer):
    def __init__(
        self,
        executor: Executor,
        keys: KeyStore,
        authority: auth.Authority,
        issuer: OwnIssuer | None = None,
    ) -> None:
        self.executor, self.keys, self.authority, self.issuer = executor, keys, authority, issuer

    @unary
    async def IssueToken(
        self, request: keys_pb2.IssueTokenRequest, context: grpc.aio.ServicerContext
    ) -> keys_pb2.IssueTokenResponse:
        caller = auth.current()
        if self.issuer is None or self.authority.mode == "off":
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this server issues no tokens: authentication is off",
                reason="TOKENS_OFF",
            )
        if caller.source != "api-key":  # a token cannot renew itself past its lifetime
            raise ApiError(
                grpc.StatusCode.PERMISSION_DENIED,
                "tokens are issued in exchange for an API key",
                reason="API_KEY_REQUIRED",
            )
        token, ttl = self.issuer.issue(caller.name, caller.tenant, caller.roles, caller.accounts)
        audit.info(
            "token issued",
            extra={
                "event": "token.issued",
                "key_id": caller.key_id,
                "principal": caller.name,
                "tenant": caller.tenant,
                "expires_in": ttl,
            },
        )
        return keys_pb2.IssueTokenResponse(access_token=token, token_type="Bearer", expires_in=ttl)

    @unary
    async def CreateApiKey(
        self, request: keys_pb2.CreateApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> keys_pb2.CreateApiKeyResponse:
        if not PRINCIPAL.match(request.principal):
            raise invalid_argument(
                "principal", "1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
            )
        if not request.roles:
            raise invalid_argument("roles", f"name at least one of {sorted(self.authority.roles)}")
        for i, role in enumerate(request.roles):
            if role not in self.authority.roles:
                raise invalid_argument(
                    f"roles[{i}]", f"unknown role; configured: {sorted(self.authority.roles)}"
                )
        if not 0 <= request.ttl_seconds <= MAX_TTL_S:
            raise invalid_argument("ttl_seconds", f"must be in 0..{MAX_TTL_S} (0: no expiry)")
        if len(request.description) > MAX_DESCRIPTION:
            raise invalid_argument("description", f"at most {MAX_DESCRIPTION} characters")
        if len(request.accounts) > MAX_ACCOUNTS:
            raise invalid_argument("accounts", f"at most {MAX_ACCOUNTS} accounts per key")
        for i, account in enumerate(request.accounts):
            if not is_user_account(account):
                raise invalid_argument(f"accounts[{i}]", "must look like market/accounts/{id}")
        accounts = tuple(dict.fromkeys(request.accounts))
        caller = auth.current()
        tenant = request.tenant or caller.tenant
        if tenant != caller.tenant and not caller.operator:
            raise ApiError(
                grpc.StatusCode.PERMISSION_DENIED,
                "only the deployment's operator (the admin token) creates keys in other tenants",
                reason="OTHER_TENANT",
                violations=[("tenant", "not the caller's tenant")],
            )
        if not PRINCIPAL.match(tenant):
            raise invalid_argument("tenant", "1 to 64 of a-z, 0-9, '.', '_', '-'")
        try:
            key, secret = await self._create(request, tenant, accounts)
        except AccountOfAnotherTenant as e:
            raise ApiError(
                grpc.StatusCode.PERMISSION_DENIED,
                str(e),
                reason="ACCOUNT_OF_ANOTHER_TENANT",
                violations=[(f"accounts[{list(accounts).index(e.account)}]", str(e))],
            ) from None
        audit.info(
            "api key created",
            extra={
                "event": "key.created",
                "key_id": key.key_id,
                "principal": key.principal,
                "tenant": key.tenant,
                "roles": list(key.roles),
                "accounts": list(key.accounts),
                "by": caller.name,
            },
        )
        return keys_pb2.CreateApiKeyResponse(api_key=encode(key), secret=secret)

    async def _create(
        self,
        request: keys_pb2.CreateApiKeyRequest,
        tenant: str,
        accounts: tuple[str, ...],
    ) -> tuple[ApiKey, str]:
        return await run_blocking(
            self.executor,
            lambda: self.keys.create(
                request.principal,
                tenant,
                tuple(dict.fromkeys(request.roles)),
                ttl=request.ttl_seconds,
                description=request.description,
                accounts=accounts,
            ),
        )

    @unary
    async def ListApiKeys(
        self, request: keys_pb2.ListApiKeysRequest, context: grpc.aio.ServicerContext
    ) -> keys_pb2.ListApiKeysResponse:
        size = paging.page_size(request.page_size)
        after = None
        if request.page_token:
            created, sep, key_id = paging.decode_str(request.page_token, "keys").partition("|")
            try:
                after = (float(created), key_id)
            except ValueError:
                raise invalid_argument("page_token", "not a token this server issued") from None
            if not sep:
                raise invalid_argument("page_token", "not a token this server issued")
        tenant = auth.current().tenant
        keys = await run_blocking(
            self.executor, lambda: self.keys.list(tenant, after=after, limit=size + 1)
        )
        page = keys[:size]
        token = (
            paging.encode("keys", f"{page[-1].created!r}|{page[-1].key_id}")
            if len(keys) > size
            else ""
        )
        return keys_pb2.ListApiKeysResponse(
            api_keys=[encode(k) for k in page], next_page_token=token
        )

    @unary
    async def RevokeApiKey(
        self, request: keys_pb2.RevokeApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> keys_pb2.RevokeApiKeyResponse:
        prefix, _, key_id = request.name.partition("/")
        if prefix != "keys" or not key_id:
            raise invalid_argument("name", "must look like keys/{key_id}")
        caller = auth.current()
        key = await run_blocking(self.executor, lambda: self.keys.revoke(key_id, caller.tenant))
        if key is None:
            raise ApiError(
                grpc.StatusCode.NOT_FOUND, f"{request.name} does not exist", reason="KEY_NOT_FOUND"
            )
        self.authority.forget(key_id)
        audit.info(
            "api key revoked",
            extra={
                "event": "key.revoked",
                "key_id": key_id,
                "tenant": key.tenant,
                "by": caller.name,
            },
        )
        return keys_pb2.RevokeApiKeyResponse(api_key=encode(key))
