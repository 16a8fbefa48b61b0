"""The frames a regime rule judges (idf.stream.frames), against a brute-force oracle written here:
the frame of tick k (time k × interval) holds, per cell, the latest reading measured at or before
the tick, whatever batches the stream was cut into."""

from __future__ import annotations

import math

import numpy as np
import pytest

from idf.stream import rules
from idf.stream.frames import Frames

SHAPE = (5, 4)


def oracle(times0: np.ndarray, values0: np.ndarray, cells: np.ndarray, values: np.ndarray,
           measured: np.ndarray, ticks: range, interval: float) -> list[np.ndarray]:  # fmt: skip
    """Per tick, per cell, by loops: the reading with the largest time at or before the tick
    (the map before the stream included); NaN where none."""
    out = []
    for k in ticks:
        tau = k * interval
        frame = np.full(SHAPE, np.nan).reshape(-1)
        best = np.full(frame.size, -np.inf)
        for c in range(frame.size):
            if times0[c] <= tau:
                frame[c], best[c] = values0[c], times0[c]
        for c, v, t in zip(cells, values, measured):
            if t <= tau and t > best[c]:
                frame[c], best[c] = v, t
        out.append(frame.reshape(SHAPE))
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("size", [3, 1000])
def test_frames_follow_the_readings_whatever_the_batches(seed, size):
    rng = np.random.default_rng(seed)
    interval = 0.7
    n = 300
    # a map with some readings already (before time 5), then readings in time order (distinct
    # continuous times: no ties), cut into random batches, each shuffled
    times0 = np.where(rng.random(20) < 0.5, rng.uniform(0, 5, 20), -np.inf)
    values0 = np.where(np.isfinite(times0), rng.normal(size=20), np.nan)
    measured = np.sort(rng.uniform(3, 40, n))
    cells, values = rng.integers(0, 20, n), rng.normal(size=n)
    frames = Frames(interval, size)
    map_values, map_times = values0.reshape(SHAPE).copy(), times0.reshape(SHAPE).copy()
    cuts = np.sort(rng.choice(np.arange(1, n), size=int(rng.integers(1, 40)), replace=False))
    for batch in np.split(np.arange(n), cuts):
        batch = rng.permutation(batch)
        frames.take(map_values, map_times, cells[batch], values[batch], measured[batch],
                    lambda f: f)  # fmt: skip
        for c, v, t in zip(cells[batch], values[batch], measured[batch]):  # fold (the worker's)
            if t >= map_times.flat[c]:
                map_values.flat[c], map_times.flat[c] = v, t
    known = times0[np.isfinite(times0)]
    first = math.ceil((known.max() if known.size else measured[0]) / interval)
    last = math.ceil(measured[-1] / interval) - 1  # ticks before the newest reading
    expected = oracle(times0, values0, cells, values, measured, range(first, last + 1), interval)
    got = list(frames.frames)
    assert frames.last == last and len(got) == min(size, len(expected))
    for a, b in zip(got, expected[-len(got) :]):
        np.testing.assert_array_equal(a, b)


def test_a_window_is_judged_only_when_full_and_known():
    frames = Frames(1.0, 3)
    grid = np.full((2, 2), np.nan), np.full((2, 2), -np.inf)
    frames.take(*grid, np.array([0]), np.array([1.0]), np.array([0.5]), lambda f: f)
    frames.take(*grid, np.array([0]), np.array([1.0]), np.array([3.5]), lambda f: f)
    assert len(frames.frames) == 3 and frames.window() is None  # three cells never observed
    full = Frames(1.0, 3)  # a map known everywhere since time 0
    values, times = np.zeros((2, 2)), np.zeros((2, 2))
    full.take(values, times, np.array([1]), np.array([2.0]), np.array([2.5]), lambda f: f)
    first = full.window()  # ticks 0, 1, 2: before the reading
    assert first is not None and full.fresh and not first.any()
    values[0, 1], times[0, 1] = 2.0, 2.5  # folded
    full.take(values, times, np.array([1]), np.array([5.0]), np.array([3.5]), lambda f: f)
    window = full.window()
    assert window is not None and window.shape == (3, 2, 2)
    assert [float(w[0, 1]) for w in window] == [0.0, 0.0, 2.0]  # ticks 1, 2, 3


def test_regime_rules_are_checked():
    regime = rules.parse([{"kind": "regime", "interval": 0.5}])[0]
    assert isinstance(regime, rules.Regime) and regime.window == 81  # 40 time units at 0.5
    assert rules.parse([{"kind": "regime", "interval": 4, "time_unit": 2}])[0].window == 32
    for bad in ({"interval": 0}, {"interval": 3.0}, {"interval": 1, "time_unit": -1},
                {"interval": 1, "model": "none"}, {"interval": 1, "colour": 2}):  # fmt: skip
        with pytest.raises(ValueError):
            rules.parse([{"kind": "regime", **bad}])
    from idf.stream.maps import Site

    with pytest.raises(ValueError, match="2-D"):
        Site("s", "default", (8,), rules=(regime,))
