"""Sites' live maps, persisted (SQLite in the data directory by default, PostgreSQL when
configured): one row per (tenant, site) with the values and per-cell measurement times as
little-endian float64 blobs, the reading count and the readings-stream sequence folded in up to.

`save` writes every map of an ingest batch in one transaction, with the consumer's progress (the
readings-stream sequence through which every reading is applied): the worker acknowledges the
batch's readings only after it commits, so an acknowledged reading is in a durable map; after a
crash the worker resumes the stream just past the progress, and a reading delivered again is
recognised by its sequence number (idf.stream.maps)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from idf.store.sql import Database


@dataclass
class StoredMap:
    """A site's map as stored: values and per-cell measurement times (float64), the count of
    readings folded in, the stream sequence folded up to, when it last changed (0: never)."""

    shape: tuple[int, ...]
    values: np.ndarray
    times: np.ndarray
    reading_count: int = 0
    sequence: int = 0
    updated: float = 0.0


_SCHEMA = """
CREATE TABLE IF NOT EXISTS site_maps (
    tenant TEXT NOT NULL,
    site TEXT NOT NULL,
    shape TEXT NOT NULL,
    map_values {blob} NOT NULL,
    map_times {blob} NOT NULL,
    reading_count BIGINT NOT NULL,
    sequence BIGINT NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, site)
)"""
_PROGRESS = """
CREATE TABLE IF NOT EXISTS ingest_progress (
    consumer TEXT PRIMARY KEY,
    sequence BIGINT NOT NULL
)"""


def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in text.split("x"))


class ProgressMoved(Exception):
    """The stored progress is not what this worker last wrote: another worker is applying."""

    def __init__(self, stored: int, expected: int) -> None:
        super().__init__(f"ingest progress is {stored}, expected {expected}")
        self.stored, self.expected = stored, expected


class MapStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.db = Database(url, [_SCHEMA, _PROGRESS])
        self._lock_file: Any = None

    def load(self, tenant: str, site: str) -> StoredMap | None:
        with self.db.lock:
            row = self.db.one(
                "SELECT shape, map_values, map_times, reading_count, sequence, updated"
                " FROM site_maps WHERE tenant = ? AND site = ?",
                (tenant, site),
            )
        if row is None:
            return None
        shape = _shape(row[0])
        return StoredMap(
            shape,
            np.frombuffer(bytes(row[1]), dtype="<f8").reshape(shape).copy(),
            np.frombuffer(bytes(row[2]), dtype="<f8").reshape(shape).copy(),
            int(row[3]),
            int(row[4]),
            float(row[5]),
        )

    def sequence(self, tenant: str, site: str) -> int:
        """The stream sequence a site's map is folded up to (0: no map): a cheap change check."""
        with self.db.lock:
            row = self.db.one(
                "SELECT sequence FROM site_maps WHERE tenant = ? AND site = ?", (tenant, site)
            )
        return int(row[0]) if row else 0

    def progress(self, consumer: str) -> int:
        """The sequence through which `consumer` has applied every reading (0: none)."""
        with self.db.lock:
            return self._progress(consumer)

    def _progress(self, consumer: str) -> int:
        row = self.db.one("SELECT sequence FROM ingest_progress WHERE consumer = ?", (consumer,))
        return int(row[0]) if row else 0

    def _expect(self, consumer: str, expected: int) -> None:
        """In a write transaction: the stored progress is `expected`, else ProgressMoved."""
        stored = self._progress(consumer)
        if stored != expected:
            raise ProgressMoved(stored, expected)

    def lead(self, consumer: str) -> bool:
        """Try to become the one worker of `consumer` (True: this store connection now holds it
        until it closes; a dead worker's hold ends with its connection or process): PostgreSQL,
        a session advisory lock; SQLite, an exclusive flock on a file beside the database."""
        if self.db.postgres:
            with self.db.lock:
                row = self.db.one("SELECT pg_try_advisory_lock(hashtext(?))", (f"idf:{consumer}",))
            return bool(row and row[0])
        import fcntl

        if self._lock_file is None:
            self._lock_file = open(f"{self.url.removeprefix('sqlite:///')}.{consumer}.lock", "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def save(
        self,
        maps: Iterable[tuple[str, str, StoredMap]],
        consumer: str,
        through: int,
        expected: int,
    ) -> None:
        """Upsert (tenant, site, map) rows and `consumer`'s progress, all or none — provided the
        stored progress is still `expected` (else `ProgressMoved`: another worker wrote it)."""
        rows = [
            (
                tenant,
                site,
                "x".join(str(n) for n in m.shape),
                m.values.astype("<f8").tobytes(),
                m.times.astype("<f8").tobytes(),
                m.reading_count,
                m.sequence,
                m.updated,
            )
            for tenant, site, m in maps
        ]
        with self.db.write("site_maps", "ingest_progress"):
            self._expect(consumer, expected)
            self.db.many(
                "INSERT INTO site_maps (tenant, site, shape, map_values, map_times, reading_count,"
                " sequence, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (tenant, site) DO UPDATE SET shape = excluded.shape,"
                " map_values = excluded.map_values, map_times = excluded.map_times,"
                " reading_count = excluded.reading_count, sequence = excluded.sequence,"
                " updated = excluded.updated",
                rows,
            )
            self.db.run(
                "INSERT INTO ingest_progress (consumer, sequence) VALUES (?, ?) ON CONFLICT"
                " (consumer) DO UPDATE SET sequence = excluded.sequence",
                (consumer, through),
            )

    def restart(self, consumer: str, expected: int) -> None:
        """The stream starts afresh (recreated): progress and every map's sequence back to 0
        (values and times are kept: a newer reading still replaces an older one)."""
        with self.db.write("site_maps", "ingest_progress"):
            self._expect(consumer, expected)
            self.db.run("UPDATE site_maps SET sequence = 0")
            self.db.run("UPDATE ingest_progress SET sequence = 0 WHERE consumer = ?", (consumer,))

    def close(self) -> None:
        self.db.close()
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
