"""The append-only proof log's storage: leaves (signed records) in index order.

Appends are serialised and atomic (`Database.write`): one transaction takes the log's write
lock, reads the next index, inserts, commits. A retried request (same caller account and
request id, same fingerprint of its inputs) returns the first append; the same key with another
fingerprint raises `IdempotencyKeyReused`. Logs written before keys were scoped by account are
migrated in place (their leaves keep account ''). Every leaf belongs to a tenant (the caller's):
reads and lists filter by it, and request ids are scoped by (tenant, account); the tree itself
is one global log. Logs written before tenants are migrated in place (tenant 'default'). Nothing here hashes trees: the server builds
Merkle proofs from `leaf_hashes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from idf.store.ledger import IdempotencyKeyReused
from idf.store.sql import Database


@dataclass(frozen=True)
class NewLeaf:
    proof_id: str
    record: bytes
    signature: bytes
    leaf_hash: bytes
    policy: str
    verdict: str
    producer: str
    create_time: str
    request_id: str | None
    account: str = ""  # the caller's account: scopes request_id
    fingerprint: str | None = None  # of the request's inputs, for idempotency
    tenant: str = "default"  # whose proof it is: reads and lists are scoped by it


@dataclass(frozen=True)
class Leaf(NewLeaf):
    """A stored leaf: a NewLeaf and its index in the log."""

    index: int = -1


class ProofLog(Protocol):
    def append(self, leaf: NewLeaf) -> tuple[Leaf, bool]: ...
    def get(self, proof_id: str, tenant: str | None = None) -> Leaf | None: ...
    def leaf_hashes(self, start: int = 0) -> list[bytes]: ...
    def list(
        self,
        *,
        before: int | None,
        limit: int,
        policy: str = "",
        verdict: str = "",
        producer: str = "",
        tenant: str | None = None,
    ) -> list[Leaf]: ...
    def close(self) -> None: ...


_COLUMNS = "idx, proof_id, record, signature, leaf_hash, policy, verdict, producer, create_time, request_id, account, fingerprint, tenant"
_LEGACY = "idx, proof_id, record, signature, leaf_hash, policy, verdict, producer, create_time, request_id"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    idx BIGINT PRIMARY KEY,
    proof_id TEXT NOT NULL UNIQUE,
    record {blob} NOT NULL,
    signature {blob} NOT NULL,
    leaf_hash {blob} NOT NULL,
    policy TEXT NOT NULL,
    verdict TEXT NOT NULL,
    producer TEXT NOT NULL,
    create_time TEXT NOT NULL,
    request_id TEXT,
    account TEXT NOT NULL DEFAULT '',
    fingerprint TEXT,
    tenant TEXT NOT NULL DEFAULT 'default'
)"""
# request ids are scoped by (tenant, account); the index of before tenants is dropped
_KEY_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS proof_leaves_tenant_key ON proof_leaves (tenant, account, request_id)"


def _leaf(row: tuple) -> Leaf:
    return Leaf(row[1], bytes(row[2]), bytes(row[3]), bytes(row[4]), *row[5:], index=row[0])


def _filters(
    policy: str,
    verdict: str,
    producer: str,
    before: int | None,
    mark: str,
    tenant: str | None = None,
) -> tuple[str, list]:
    where, args = [], []
    for column, value in (
        ("policy", policy),
        ("verdict", verdict),
        ("producer", producer),
        ("tenant", tenant),
    ):
        if value:
            where.append(f"{column} = {mark}")
            args.append(value)
    if before is not None:
        where.append(f"idx < {mark}")
        args.append(before)
    return (" WHERE " + " AND ".join(where)) if where else "", args


class SqlProofLog:
    """The log on SQLite (a path or sqlite:///path) or PostgreSQL (postgresql://...)."""

    def __init__(self, url: str) -> None:
        self.db = Database(url, [_SCHEMA.replace("{table}", "proof_leaves")])
        db = self.db
        if "account" not in db.columns(
            "proof_leaves"
        ):  # written before keys were scoped by account
            with db.write("proof_leaves"):
                if "account" not in db.columns("proof_leaves"):
                    if db.postgres:
                        db.drop_unique("proof_leaves", "request_id")
                        db.run(
                            "ALTER TABLE proof_leaves ADD COLUMN account TEXT NOT NULL DEFAULT ''"
                        )
                        db.run("ALTER TABLE proof_leaves ADD COLUMN fingerprint TEXT")
                    else:  # SQLite cannot drop the UNIQUE on request_id: rebuild the table
                        db.run(
                            _SCHEMA.replace("{table}", "proof_leaves_scoped").format(blob="BLOB")
                        )
                        db.run(
                            f"INSERT INTO proof_leaves_scoped ({_LEGACY}) SELECT {_LEGACY} FROM proof_leaves"
                        )
                        db.run("DROP TABLE proof_leaves")
                        db.run("ALTER TABLE proof_leaves_scoped RENAME TO proof_leaves")
        if "tenant" not in db.columns("proof_leaves"):  # written before tenants
            with db.write("proof_leaves"):
                if "tenant" not in db.columns("proof_leaves"):
                    db.run(
                        "ALTER TABLE proof_leaves ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default'"
                    )
        with db.write("proof_leaves"):
            db.run(_KEY_INDEX)
            db.run("DROP INDEX IF EXISTS proof_leaves_key")

    def append(self, leaf: NewLeaf) -> tuple[Leaf, bool]:
        db = self.db
        with db.write("proof_leaves"):
            if leaf.request_id:
                row = db.one(
                    f"SELECT {_COLUMNS} FROM proof_leaves WHERE tenant = ? AND account = ? AND request_id = ?",
                    (leaf.tenant, leaf.account, leaf.request_id),
                )
                if row:
                    first = _leaf(row)
                    if (
                        first.fingerprint is not None
                        and leaf.fingerprint is not None
                        and first.fingerprint != leaf.fingerprint
                    ):
                        raise IdempotencyKeyReused("CreateProof", leaf.request_id)
                    return first, False
            (index,) = db.one("SELECT COALESCE(MAX(idx) + 1, 0) FROM proof_leaves")  # type: ignore[misc]
            values = (
                index,
                leaf.proof_id,
                leaf.record,
                leaf.signature,
                leaf.leaf_hash,
                leaf.policy,
                leaf.verdict,
                leaf.producer,
                leaf.create_time,
                leaf.request_id,
                leaf.account,
                leaf.fingerprint,
                leaf.tenant,
            )
            db.run(
                f"INSERT INTO proof_leaves ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", values
            )
        return _leaf(values), True

    def get(self, proof_id: str, tenant: str | None = None) -> Leaf | None:
        """The leaf of `proof_id` (None also when it belongs to another tenant than `tenant`)."""
        with self.db.lock:
            row = self.db.one(
                f"SELECT {_COLUMNS} FROM proof_leaves WHERE proof_id = ?", (proof_id,)
            )
        leaf = _leaf(row) if row else None
        return None if leaf is None or (tenant is not None and leaf.tenant != tenant) else leaf

    def leaf_hashes(self, start: int = 0) -> list[bytes]:
        with self.db.lock:
            rows = self.db.all(
                "SELECT leaf_hash FROM proof_leaves WHERE idx >= ? ORDER BY idx", (start,)
            )
        return [bytes(r[0]) for r in rows]

    def list(
        self,
        *,
        before: int | None,
        limit: int,
        policy: str = "",
        verdict: str = "",
        producer: str = "",
        tenant: str | None = None,
    ) -> list[Leaf]:
        where, args = _filters(policy, verdict, producer, before, "?", tenant)
        with self.db.lock:
            rows = self.db.all(
                f"SELECT {_COLUMNS} FROM proof_leaves{where} ORDER BY idx DESC LIMIT ?",
                (*args, limit),
            )
        return [_leaf(r) for r in rows]

    def close(self) -> None:
        self.db.close()


def open_proof_log(url: str) -> ProofLog:
    """`postgresql://...` for PostgreSQL; anything else is a SQLite path (or sqlite:///path)."""
    return SqlProofLog(url)
