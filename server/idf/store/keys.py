"""API keys: who may call, stored as a hash of the secret (never the secret).

A key's secret is `idf_<key id>_<43 characters of base64url>`: the id (12 lowercase base32
characters, 60 bits) finds the row, the rest (32 random bytes) is the credential; the row holds
SHA-256 of the whole secret. A fast hash is right here: the secret has 256 bits of entropy, so
there is nothing to brute-force that a slow password hash would protect. Rows are scoped by
tenant: listing and revoking see only the caller's tenant.

A key also names the ledger accounts its calls act and pay for. An account belongs to the tenant
that first grants it (`account_tenants`, written in the same transaction as the key): a grant of
another tenant's account is refused (`AccountOfAnotherTenant`), so no tenant can hand itself
another's money.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from idf.store.sql import Database

PREFIX = "idf_"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    principal TEXT NOT NULL,
    tenant TEXT NOT NULL,
    roles TEXT NOT NULL,
    description TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION,
    revoked DOUBLE PRECISION,
    accounts TEXT NOT NULL DEFAULT ''
)"""
_OWNERS = """
CREATE TABLE IF NOT EXISTS account_tenants (
    account TEXT PRIMARY KEY,
    tenant TEXT NOT NULL
)"""
_INDEX = "CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant, created)"
_COLUMNS = "key_id, secret_hash, principal, tenant, roles, description, created, expires, revoked, accounts"


class AccountOfAnotherTenant(Exception):
    def __init__(self, account: str) -> None:
        super().__init__(f"{account} belongs to another tenant")
        self.account = account


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    principal: str
    tenant: str
    roles: tuple[str, ...]
    description: str
    created: float  # seconds since the epoch
    expires: float | None
    revoked: float | None
    accounts: tuple[str, ...] = ()  # ledger accounts its calls act and pay for (first: default)

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.key_id}"

    def valid_at(self, now: float) -> bool:
        return self.revoked is None and (self.expires is None or now < self.expires)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _key(row: tuple) -> ApiKey:
    key_id, _, principal, tenant, roles, description, created, expires, revoked, accounts = row
    return ApiKey(
        key_id,
        principal,
        tenant,
        tuple(r for r in roles.split(",") if r),
        description,
        float(created),
        None if expires is None else float(expires),
        None if revoked is None else float(revoked),
        tuple(a for a in accounts.split(",") if a),
    )


def key_id_of(secret: str) -> str | None:
    """The key id of a well-formed key secret, else None."""
    if not secret.startswith(PREFIX):
        return None
    key_id, sep, rest = secret[len(PREFIX) :].partition("_")
    return key_id if sep and len(key_id) == 12 and len(rest) == 43 else None


class KeyStore:
    """API keys on SQLite (a path or sqlite:///path) or PostgreSQL (postgresql://...)."""

    def __init__(self, url: str) -> None:
        self.db = Database(url, [_SCHEMA, _OWNERS])
        with self.db.write("api_keys"):
            if "accounts" not in self.db.columns("api_keys"):  # written before keys named accounts
                self.db.run("ALTER TABLE api_keys ADD COLUMN accounts TEXT NOT NULL DEFAULT ''")
            self.db.run(_INDEX)

    def create(
        self,
        principal: str,
        tenant: str,
        roles: tuple[str, ...],
        *,
        ttl: float = 0,
        description: str = "",
        accounts: tuple[str, ...] = (),
        now: float | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret (returned once, never stored). Its accounts become the
        tenant's if no tenant holds them; `AccountOfAnotherTenant` when one does (nothing is
        written then)."""
        now = time.time() if now is None else now
        key_id = base64.b32encode(secrets.token_bytes(10)).decode().lower()[:12]
        secret = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(
            key_id,
            principal,
            tenant,
            tuple(roles),
            description,
            now,
            now + ttl if ttl > 0 else None,
            None,
            tuple(accounts),
        )
        with self.db.write("api_keys", "account_tenants"):
            for account in accounts:
                row = self.db.one(
                    "SELECT tenant FROM account_tenants WHERE account = ?", (account,)
                )
                if row is None:
                    self.db.run(
                        "INSERT INTO account_tenants (account, tenant) VALUES (?, ?)",
                        (account, tenant),
                    )
                elif row[0] != tenant:
                    raise AccountOfAnotherTenant(account)
            self.db.run(
                f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key_id,
                    _hash(secret),
                    principal,
                    tenant,
                    ",".join(roles),
                    description,
                    now,
                    key.expires,
                    None,
                    ",".join(accounts),
                ),
            )
        return key, secret

    def tenant_of(self, account: str) -> str | None:
        """The tenant an account belongs to (None: none has granted it yet)."""
        with self.db.lock:
            row = self.db.one("SELECT tenant FROM account_tenants WHERE account = ?", (account,))
        return None if row is None else str(row[0])

    def find(self, secret: str) -> ApiKey | None:
        """The key whose secret this is (valid or not: the caller checks `valid_at`), or None
        when no key has this secret. Compares the hashes in constant time."""
        key_id = key_id_of(secret)
        if key_id is None:
            return None
        with self.db.lock:
            row = self.db.one(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,))
        if row is None or not hmac.compare_digest(row[1], _hash(secret)):
            return None
        return _key(row)

    def list(
        self, tenant: str, *, after: tuple[float, str] | None = None, limit: int = 100
    ) -> list[ApiKey]:
        """The tenant's keys, newest first (then by id); `after` = (created, key_id) of the last
        key of the previous page."""
        sql = f"SELECT {_COLUMNS} FROM api_keys WHERE tenant = ?"
        args: tuple = (tenant,)
        if after is not None:
            sql += " AND (created < ? OR (created = ? AND key_id > ?))"
            args = (tenant, after[0], after[0], after[1])
        with self.db.lock:
            rows = self.db.all(sql + " ORDER BY created DESC, key_id LIMIT ?", (*args, limit))
        return [_key(r) for r in rows]

    def revoke(self, key_id: str, tenant: str, now: float | None = None) -> ApiKey | None:
        """Revoke the tenant's key (idempotent: the first revocation time stays); None when the
        tenant has no such key."""
        now = time.time() if now is None else now
        with self.db.write("api_keys"):
            self.db.run(
                "UPDATE api_keys SET revoked = ? WHERE key_id = ? AND tenant = ? AND revoked IS NULL",
                (now, key_id, tenant),
            )
            row = self.db.one(
                f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ? AND tenant = ?", (key_id, tenant)
            )
        return None if row is None else _key(row)

    def close(self) -> None:
        self.db.close()
