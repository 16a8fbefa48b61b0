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


class MapStore:
    def __init__(self, url: str) -> None:
        self.db = Database(url, [_SCHEMA, _PROGRESS])

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

    def progress(self, consumer: str) -> int:
        """The sequence through which `consumer` has applied every reading (0: none)."""
        with self.db.lock:
            row = self.db.one(
                "SELECT sequence FROM ingest_progress WHERE consumer = ?", (consumer,)
            )
        return int(row[0]) if row else 0

    def save(self, maps: Iterable[tuple[str, str, StoredMap]], consumer: str, through: int) -> None:
        """Upsert (tenant, site, map) rows and `consumer`'s progress, all or none."""
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
        with self.db.write("site_maps"):
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

    def close(self) -> None:
        self.db.close()
