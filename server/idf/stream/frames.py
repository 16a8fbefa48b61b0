"""Frames of a site's map at a regular interval of measurement time: what a regime rule judges
(idf.stream.rules).

Tick k is the time k × interval (seconds since the epoch). Its frame holds, per cell, the latest
reading measured at or before the tick; it is taken when the first reading measured after the tick
is folded, from the map as it was plus the batch's readings up to the tick, so it does not depend
on how the stream was cut into batches. A reading measured before a tick but folded after its
frame was taken is in the map, not in that frame. The first tick is the first at or after the
newest reading the map held when the rule started (or the first reading, for an empty map). A
jump of more than a window's ticks (a sensor that was silent a long time) refills the whole
window.

Pure numpy: the ingest worker calls `take` while it folds a batch (idf.stream.ingest)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import numpy as np


def latest(
    cells: np.ndarray, values: np.ndarray, measured: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell, the reading with the largest (measurement time, position): one row per cell."""
    order = np.lexsort((measured, cells))  # stable: equal times keep their order
    cells, values, measured = cells[order], values[order], measured[order]
    last = np.ones(len(cells), dtype=bool)
    last[:-1] = cells[1:] != cells[:-1]
    return cells[last], values[last], measured[last]


class Frames:
    """The last `size` frames of a site's map, one per tick of `interval` seconds."""

    def __init__(self, interval: float, size: int) -> None:
        self.interval, self.size = interval, size
        self.frames: deque[np.ndarray] = deque(maxlen=size)
        self.last: int | None = None  # the latest tick taken
        self.fresh = False  # a frame was taken since the window was last judged

    def take(
        self,
        values: np.ndarray,
        times: np.ndarray,
        cells: np.ndarray,
        new_values: np.ndarray,
        measured: np.ndarray,
        serve: Callable[[np.ndarray], np.ndarray],
    ) -> None:
        """Take the frames of the ticks a batch passes. `values`/`times`: the map before the
        batch (left as they are); `cells` (flat indices), `new_values`, `measured`: the batch's
        new readings; `serve`: what is kept of a frame (the map as served, reduced)."""
        if not len(measured):
            return
        if self.last is None:  # the first tick the map as it stands can be taken at
            seen = times[np.isfinite(times)]
            start = float(seen.max()) if seen.size else float(measured.min())
            self.last = math.ceil(start / self.interval) - 1
        first = self.last + 1
        last = math.ceil(float(measured.max()) / self.interval) - 1  # ticks before the newest
        if last < first:
            return
        first = max(first, last - self.size + 1)  # older ticks would leave the window at once
        order = np.argsort(measured, kind="stable")
        m, c, v = measured[order], cells[order], new_values[order]
        flat_values, flat_times = values.reshape(-1).copy(), times.reshape(-1).copy()
        done = 0
        for k in range(first, last + 1):
            upto = int(np.searchsorted(m, k * self.interval, side="right"))
            if upto > done:
                cc, vv, mm = latest(c[done:upto], v[done:upto], m[done:upto])
                newer = mm >= flat_times[cc]
                flat_values[cc[newer]] = vv[newer]
                flat_times[cc[newer]] = mm[newer]
                done = upto
            self.frames.append(serve(flat_values.reshape(values.shape).copy()))
        self.last = last
        self.fresh = True

    def window(self) -> np.ndarray | None:
        """The full window, oldest first, when it is full and every cell of it is known."""
        if len(self.frames) < self.size:
            return None
        stacked = np.stack(self.frames)
        return stacked if bool(np.isfinite(stacked).all()) else None
