"""The SQL plumbing every store shares: one connection, `?` placeholders rewritten for the
driver, and a write transaction that serialises writers (SQLite `BEGIN IMMEDIATE`, which takes
the database's write lock across processes; PostgreSQL, a transaction that locks the tables it
names)."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


class Database:
    def __init__(self, url: str, schema: Sequence[str]) -> None:
        self.postgres = is_postgres(url)
        self.lock = threading.RLock()
        if self.postgres:
            import psycopg

            self.mark = "%s"
            self._db = psycopg.connect(url, autocommit=True)
            blob = "BYTEA"
        else:
            path = url.removeprefix("sqlite:///")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.mark = "?"
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            blob = "BLOB"
        for statement in schema:
            self._db.execute(statement.format(blob=blob))

    def one(self, sql: str, args: tuple = ()) -> tuple | None:
        return self._db.execute(sql.replace("?", self.mark), args).fetchone()

    def all(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self._db.execute(sql.replace("?", self.mark), args).fetchall()

    def run(self, sql: str, args: tuple = ()) -> None:
        self._db.execute(sql.replace("?", self.mark), args)

    def many(self, sql: str, rows: Sequence[tuple]) -> None:
        """One statement for many rows (inside a write transaction)."""
        if not rows:
            return
        if self.postgres:
            with self._db.cursor() as cursor:
                cursor.executemany(sql.replace("?", self.mark), rows)
        else:
            self._db.executemany(sql, rows)

    def columns(self, table: str) -> set[str]:
        """The column names of `table` (empty when it does not exist)."""
        if self.postgres:
            rows = self.all(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?",
                (table,),
            )
        else:
            rows = [(r[1],) for r in self.all(f"PRAGMA table_info({table})")]
        return {r[0] for r in rows}

    def drop_unique(self, table: str, column: str) -> None:
        """PostgreSQL: drop the single-column UNIQUE constraint(s) on `table.column` (in a write
        transaction). SQLite cannot drop a constraint: rebuild the table instead."""
        assert self.postgres
        rows = self.all(
            "SELECT c.conname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)"
            " WHERE c.conrelid = to_regclass(?) AND c.contype = 'u' AND array_length(c.conkey, 1) = 1 AND a.attname = ?",
            (table, column),
        )
        for (name,) in rows:
            self.run(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')

    @contextlib.contextmanager
    def write(self, *tables: str) -> Iterator[None]:
        """One serialised, atomic write transaction (rolled back on any exception)."""
        with self.lock:
            if self.postgres:
                with self._db.transaction():
                    for table in tables:
                        self._db.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
                    yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
