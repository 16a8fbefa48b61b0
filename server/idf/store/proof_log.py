"""The append-only proof log's storage: leaves (signed records) in index order.

Appends are serialised and atomic: one transaction takes the log's write lock (SQLite
`BEGIN IMMEDIATE`; PostgreSQL `LOCK TABLE ... SHARE ROW EXCLUSIVE`), reads the next index,
inserts, commits. A retried request (same request id) returns the first append. Nothing here
hashes trees: the server builds Merkle proofs from `leaf_hashes`.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Leaf:
    index: int
    proof_id: str
    record: bytes
    signature: bytes
    leaf_hash: bytes
    policy: str
    verdict: str
    producer: str
    create_time: str
    request_id: str | None


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


class ProofLog(Protocol):
    def append(self, leaf: NewLeaf) -> tuple[Leaf, bool]: ...
    def get(self, proof_id: str) -> Leaf | None: ...
    def leaf_hashes(self, start: int = 0) -> list[bytes]: ...
    def list(self, *, before: int | None, limit: int, policy: str = "", verdict: str = "", producer: str = "") -> list[Leaf]: ...
    def close(self) -> None: ...


_COLUMNS = "idx, proof_id, record, signature, leaf_hash, policy, verdict, producer, create_time, request_id"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS proof_leaves (
    idx BIGINT PRIMARY KEY,
    proof_id TEXT NOT NULL UNIQUE,
    record {blob} NOT NULL,
    signature {blob} NOT NULL,
    leaf_hash {blob} NOT NULL,
    policy TEXT NOT NULL,
    verdict TEXT NOT NULL,
    producer TEXT NOT NULL,
    create_time TEXT NOT NULL,
    request_id TEXT UNIQUE
)"""


def _leaf(row: tuple) -> Leaf:
    return Leaf(row[0], row[1], bytes(row[2]), bytes(row[3]), bytes(row[4]), *row[5:])


def _filters(policy: str, verdict: str, producer: str, before: int | None, mark: str) -> tuple[str, list]:
    where, args = [], []
    for column, value in (("policy", policy), ("verdict", verdict), ("producer", producer)):
        if value:
            where.append(f"{column} = {mark}")
            args.append(value)
    if before is not None:
        where.append(f"idx < {mark}")
        args.append(before)
    return (" WHERE " + " AND ".join(where)) if where else "", args


class SqliteProofLog:
    """The embedded default: one SQLite file in WAL mode, fsync on commit."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA.format(blob="BLOB"))
        self._lock = threading.Lock()

    def append(self, leaf: NewLeaf) -> tuple[Leaf, bool]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if leaf.request_id:
                    row = self._db.execute(f"SELECT {_COLUMNS} FROM proof_leaves WHERE request_id = ?", (leaf.request_id,)).fetchone()
                    if row:
                        self._db.execute("COMMIT")
                        return _leaf(row), False
                (index,) = self._db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM proof_leaves").fetchone()
                values = (index, leaf.proof_id, leaf.record, leaf.signature, leaf.leaf_hash, leaf.policy,
                          leaf.verdict, leaf.producer, leaf.create_time, leaf.request_id)
                self._db.execute(f"INSERT INTO proof_leaves ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", values)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return _leaf(values), True

    def get(self, proof_id: str) -> Leaf | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM proof_leaves WHERE proof_id = ?", (proof_id,)).fetchone()
        return _leaf(row) if row else None

    def leaf_hashes(self, start: int = 0) -> list[bytes]:
        with self._lock:
            rows = self._db.execute("SELECT leaf_hash FROM proof_leaves WHERE idx >= ? ORDER BY idx", (start,)).fetchall()
        return [bytes(r[0]) for r in rows]

    def list(self, *, before: int | None, limit: int, policy: str = "", verdict: str = "", producer: str = "") -> list[Leaf]:
        where, args = _filters(policy, verdict, producer, before, "?")
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM proof_leaves{where} ORDER BY idx DESC LIMIT ?", (*args, limit)).fetchall()
        return [_leaf(r) for r in rows]

    def close(self) -> None:
        self._db.close()


class PostgresProofLog:
    """PostgreSQL: the same table; appends serialised by a table lock inside the transaction."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._db = psycopg.connect(url, autocommit=True)
        self._db.execute(_SCHEMA.format(blob="BYTEA"))
        self._lock = threading.Lock()

    def append(self, leaf: NewLeaf) -> tuple[Leaf, bool]:
        with self._lock, self._db.transaction():
            self._db.execute("LOCK TABLE proof_leaves IN SHARE ROW EXCLUSIVE MODE")
            if leaf.request_id:
                row = self._db.execute(f"SELECT {_COLUMNS} FROM proof_leaves WHERE request_id = %s", (leaf.request_id,)).fetchone()
                if row:
                    return _leaf(row), False
            (index,) = self._db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM proof_leaves").fetchone()
            values = (index, leaf.proof_id, leaf.record, leaf.signature, leaf.leaf_hash, leaf.policy,
                      leaf.verdict, leaf.producer, leaf.create_time, leaf.request_id)
            self._db.execute(f"INSERT INTO proof_leaves ({_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", values)
        return _leaf(values), True

    def get(self, proof_id: str) -> Leaf | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM proof_leaves WHERE proof_id = %s", (proof_id,)).fetchone()
        return _leaf(row) if row else None

    def leaf_hashes(self, start: int = 0) -> list[bytes]:
        with self._lock:
            rows = self._db.execute("SELECT leaf_hash FROM proof_leaves WHERE idx >= %s ORDER BY idx", (start,)).fetchall()
        return [bytes(r[0]) for r in rows]

    def list(self, *, before: int | None, limit: int, policy: str = "", verdict: str = "", producer: str = "") -> list[Leaf]:
        where, args = _filters(policy, verdict, producer, before, "%s")
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM proof_leaves{where} ORDER BY idx DESC LIMIT %s", (*args, limit)).fetchall()
        return [_leaf(r) for r in rows]

    def close(self) -> None:
        self._db.close()


def open_proof_log(url: str) -> ProofLog:
    """`postgresql://...` for PostgreSQL; anything else is a SQLite path (or sqlite:///path)."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresProofLog(url)
    return SqliteProofLog(url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url)
