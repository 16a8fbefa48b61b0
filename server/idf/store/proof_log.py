"""The append-only proof log's storage: leaves (signed records) in index order.

Appends are serialised and atomic: one transaction takes the log's write lock (SQLite
`BEGIN IMMEDIATE`; PostgreSQL `LOCK TABLE ... SHARE ROW EXCLUSIVE`), reads the next index,
inserts, commits. A retried request (same request id) returns the first append. Nothing here
hashes trees: the server builds Merkle proofs from `leaf_hashes`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
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


class _SqlProofLog:
    """The SQL both stores share; subclasses open the connection and the write transaction."""

    mark = "?"  # parameter placeholder

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def _write(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def _one(self, sql: str, args: tuple) -> tuple | None:
        return self._db.execute(sql.replace("?", self.mark), args).fetchone()  # type: ignore[attr-defined]

    def _run(self, sql: str, args: tuple) -> None:
        self._db.execute(sql.replace("?", self.mark), args)  # type: ignore[attr-defined]

    def _all(self, sql: str, args: tuple) -> list[tuple]:
        return self._db.execute(sql.replace("?", self.mark), args).fetchall()  # type: ignore[attr-defined]

    def append(self, leaf: NewLeaf) -> tuple[Leaf, bool]:
        with self._lock, self._write():
            if leaf.request_id:
                row = self._one(f"SELECT {_COLUMNS} FROM proof_leaves WHERE request_id = ?", (leaf.request_id,))
                if row:
                    return _leaf(row), False
            (index,) = self._one("SELECT COALESCE(MAX(idx) + 1, 0) FROM proof_leaves", ())  # type: ignore[misc]
            values = (index, leaf.proof_id, leaf.record, leaf.signature, leaf.leaf_hash, leaf.policy,
                      leaf.verdict, leaf.producer, leaf.create_time, leaf.request_id)
            self._run(f"INSERT INTO proof_leaves ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", values)
        return _leaf(values), True

    def get(self, proof_id: str) -> Leaf | None:
        with self._lock:
            row = self._one(f"SELECT {_COLUMNS} FROM proof_leaves WHERE proof_id = ?", (proof_id,))
        return _leaf(row) if row else None

    def leaf_hashes(self, start: int = 0) -> list[bytes]:
        with self._lock:
            rows = self._all("SELECT leaf_hash FROM proof_leaves WHERE idx >= ? ORDER BY idx", (start,))
        return [bytes(r[0]) for r in rows]

    def list(self, *, before: int | None, limit: int, policy: str = "", verdict: str = "", producer: str = "") -> list[Leaf]:
        where, args = _filters(policy, verdict, producer, before, "?")
        with self._lock:
            rows = self._all(f"SELECT {_COLUMNS} FROM proof_leaves{where} ORDER BY idx DESC LIMIT ?", (*args, limit))
        return [_leaf(r) for r in rows]

    def close(self) -> None:
        self._db.close()  # type: ignore[attr-defined]


class SqliteProofLog(_SqlProofLog):
    """The embedded default: one SQLite file in WAL mode, fsync on commit."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA.format(blob="BLOB"))

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")  # takes the database's write lock (other processes too)
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


class PostgresProofLog(_SqlProofLog):
    """PostgreSQL: the same table; appends serialised by a table lock inside the transaction."""

    mark = "%s"

    def __init__(self, url: str) -> None:
        import psycopg

        super().__init__()
        self._db = psycopg.connect(url, autocommit=True)
        self._db.execute(_SCHEMA.format(blob="BYTEA"))

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        with self._db.transaction():
            self._db.execute("LOCK TABLE proof_leaves IN SHARE ROW EXCLUSIVE MODE")
            yield


def open_proof_log(url: str) -> ProofLog:
    """`postgresql://...` for PostgreSQL; anything else is a SQLite path (or sqlite:///path)."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresProofLog(url)
    return SqliteProofLog(url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url)
