"""A site's live map as readings fold into it (docs/streaming.md): the latest value per grid cell.

"Latest" is by measurement time, ties going to the reading later in the stream: an old reading
that arrives late never hides a newer one, and a reading delivered again after a crash (its
sequence number at or below the map's `sequence`) is skipped. Cells no reading has reached are
NaN. Bad-quality readings are not folded (they are kept in the stream for the record).

Pure numpy, no I/O: the ingest worker (`idf.stream.ingest`) feeds batches and persists the state
(`idf.store.maps`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from idf.store.maps import StoredMap
from idf.stream.frames import latest
from idf.stream.rules import Regime, Rule

# 4 Mi cells (a 2048² site): 64 MiB of state, the largest map a site may have
MAX_SITE_CELLS = 1 << 22


FILLS = ("none", "nearest", "linear")
# past this many observed cells a linear fill is nearest (triangulating tens of thousands of
# points takes seconds; a map that dense has little left to fill)
LINEAR_MAX_POINTS = 4096


def filled(values: np.ndarray, how: str, spacing: tuple[float, ...] = ()) -> np.ndarray:
    """The map with its unobserved (NaN) cells filled, for sites of sparse sensors: `nearest`,
    the value of the nearest observed cell (an exact Euclidean distance transform, O(cells));
    `linear`, 2-D piecewise-linear interpolation over the Delaunay triangulation of the observed
    cells, and nearest outside their convex hull. Observed cells keep their readings; a map with
    no reading stays NaN."""
    observed = np.isfinite(values)
    if how == "none" or observed.all() or not observed.any():
        return values
    from scipy import interpolate, ndimage

    nearest_index = ndimage.distance_transform_edt(  # in physical distance (the spacing)
        ~observed, sampling=spacing or None, return_distances=False, return_indices=True
    )
    out = values[tuple(nearest_index)]
    if how == "linear" and 3 <= observed.sum() <= LINEAR_MAX_POINTS:
        scale = np.asarray(spacing or (1.0,) * values.ndim)
        points = np.argwhere(observed) * scale
        try:
            inside = interpolate.griddata(
                points, values[observed], np.argwhere(~observed) * scale, method="linear"
            )
        except Exception:  # collinear sensors: no triangulation, nearest everywhere
            inside = np.full(int((~observed).sum()), np.nan)
        hole = np.argwhere(~observed)
        ok = np.isfinite(inside)
        out[tuple(hole[ok].T)] = inside[ok]
    return out


@dataclass(frozen=True)
class Site:
    """A site as configured: its id, tenant, grid and units."""

    id: str
    tenant: str
    shape: tuple[int, ...]
    units: str = ""
    spacing: tuple[float, ...] = ()
    rules: tuple[Rule, ...] = ()  # evaluated on each update (idf.stream.rules)
    fill: str = "none"  # unobserved cells as served: none (NaN), nearest, linear (see `filled`)

    def __post_init__(self) -> None:
        if not 1 <= len(self.shape) <= 3 or any(n < 1 for n in self.shape):
            raise ValueError(
                f"site {self.id}: shape needs 1 to 3 positive extents, got {self.shape}"
            )
        if int(np.prod(self.shape)) > MAX_SITE_CELLS:
            raise ValueError(f"site {self.id}: at most {MAX_SITE_CELLS} cells, got {self.shape}")
        if self.fill not in FILLS:
            raise ValueError(f"site {self.id}: fill is one of {FILLS}, got {self.fill!r}")
        if self.fill == "linear" and len(self.shape) != 2:
            raise ValueError(f"site {self.id}: linear fill needs a 2-D grid")
        if any(isinstance(r, Regime) for r in self.rules) and len(self.shape) != 2:
            raise ValueError(f"site {self.id}: a regime rule needs a 2-D grid")
        if self.spacing and (
            len(self.spacing) != len(self.shape) or any(not s > 0 for s in self.spacing)
        ):
            raise ValueError(f"site {self.id}: spacing needs one positive value per axis")

    def outside(self, index: Sequence[int]) -> str | None:
        """Why `index` is not a cell of this site's grid (None when it is)."""
        if len(index) != len(self.shape):
            return (
                f"has {len(index)} axes, the site's grid has {len(self.shape)} {list(self.shape)}"
            )
        if any(not 0 <= i < n for i, n in zip(index, self.shape)):
            return f"{list(index)} is outside the site's grid {list(self.shape)}"
        return None


class SiteMap(StoredMap):
    """The state of one site's map (a stored map that readings fold into); new: all NaN."""

    def __init__(
        self,
        shape: tuple[int, ...],
        values: np.ndarray | None = None,
        times: np.ndarray | None = None,
        reading_count: int = 0,
        sequence: int = 0,
        updated: float = 0.0,
    ) -> None:
        super().__init__(
            tuple(shape),
            np.full(shape, np.nan) if values is None else values,
            np.full(shape, -np.inf) if times is None else times,
            reading_count,
            sequence,
            updated,
        )

    @classmethod
    def of(cls, stored: StoredMap) -> SiteMap:
        return cls(stored.shape, stored.values, stored.times, stored.reading_count,
                   stored.sequence, stored.updated)  # fmt: skip

    @property
    def observed_count(self) -> int:
        return int(np.count_nonzero(np.isfinite(self.times)))

    def fold(
        self,
        sequences: np.ndarray,
        cells: np.ndarray,
        values: np.ndarray,
        measured: np.ndarray,
        now: float,
    ) -> int:
        """Fold a batch in stream order: `sequences` (int64, non-decreasing: the readings of one
        stream message share its sequence), flat cell indices, values and measurement times, one
        per reading. Equal times at a cell: the later reading in the batch wins (the sort below
        is stable). Returns how many readings were new (sequence above the map's)."""
        new = sequences > self.sequence
        if not new.any():
            return 0
        sequences, cells = sequences[new], cells[new]  # delivered again after a crash: skipped
        values, measured = values[new], measured[new]
        # per cell the reading with the largest (time, position in the batch)
        cells, values, measured = latest(cells, values, measured)
        flat_times, flat_values = self.times.reshape(-1), self.values.reshape(-1)
        newer = measured >= flat_times[cells]  # equal time: the later sequence wins
        flat_values[cells[newer]] = values[newer]
        flat_times[cells[newer]] = measured[newer]
        self.reading_count += len(sequences)
        self.sequence = int(sequences.max())
        self.updated = now
        return len(sequences)
