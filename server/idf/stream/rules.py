"""Rules on a site's map updates, evaluated by the ingest worker after each commit; what they find
is published as JSON events on `idf.events.<tenant>.<site>` (docs/streaming.md).

Rules fire on changes of condition (edge-triggered), not on every update:

- `threshold` (`above` and/or `below`): `threshold.crossed` when cells of the map first lie
  beyond the bounds (their count, the extreme value and its cell), `threshold.cleared` when none
  does any more.
- `drift` (`tolerance`, relative): the map's total against a baseline, the total of the first map
  in which every cell holds a reading (conservation: a closed system's total should not move);
  `drift.exceeded` when |total / baseline - 1| first passes the tolerance, `drift.recovered` when
  it is back within it. A map with unobserved cells is not judged.
- `regime` (`interval` seconds, `time_unit` seconds per time unit of the detector's flows,
  default 1, `model` a regime detector, default the shipped one): the site's map is taken as a
  frame every `interval` seconds of measurement time (idf.stream.frames), as served (filled) and
  resampled to the detector's 32²; once the window holds the frames `DetectRegime` needs (at
  least 40 time units, 32 frames), each new frame is judged, and `regime.changed` is published
  when the label differs from the last one (`previous` null the first time). The detector was
  trained on Kolmogorov-flow vorticity (docs/regimes.md): on other fields its label says which of
  those dynamics the map's resembles (steady, periodic, chaotic). Needs a 2-D grid; a window with
  unobserved cells is not judged.

Rule state (which condition holds, the baseline, a regime rule's frames and label) lives in the
worker's memory: after a restart the first update re-establishes it (a regime window refills
first), so an event may be published again (at least once)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from idf.engine import models
from idf.engine.regimes import detector as regime_detector
from idf.engine.regimes import features
from idf.stream.frames import Frames


@dataclass(frozen=True)
class Threshold:
    above: float | None = None
    below: float | None = None

    def __post_init__(self) -> None:
        if self.above is None and self.below is None:
            raise ValueError("a threshold rule needs above and/or below")
        for v in (self.above, self.below):
            if v is not None and not math.isfinite(v):
                raise ValueError("threshold bounds are finite numbers")


@dataclass(frozen=True)
class Drift:
    tolerance: float

    def __post_init__(self) -> None:
        if not 0 < self.tolerance < math.inf:
            raise ValueError("a drift rule's tolerance is a positive number (relative)")


@dataclass(frozen=True)
class Regime:
    interval: float  # seconds of measurement time between frames
    time_unit: float = 1.0  # seconds per time unit of the detector's flows
    model: str = models.DEFAULT_DETECTOR

    def __post_init__(self) -> None:
        if not (0 < self.interval < math.inf and 0 < self.time_unit < math.inf):
            raise ValueError("a regime rule's interval and time_unit are positive seconds")
        if self.step > features.MAX_INTERVAL:
            raise ValueError(
                f"a regime rule's interval is at most {features.MAX_INTERVAL:g} time units "
                f"({features.MAX_INTERVAL * self.time_unit:g} s at time_unit {self.time_unit:g})"
            )
        if self.model not in models.detectors():
            raise ValueError(
                f"unknown regime detector {self.model!r}; available: {models.detectors()}"
            )

    @property
    def step(self) -> float:
        """The frames' spacing in the detector's time units."""
        return self.interval / self.time_unit

    @property
    def window(self) -> int:
        """Frames judged at once: what the detector needs to decide."""
        return features.frames_needed(0, self.step)


Rule = Threshold | Drift | Regime
KINDS: dict[str, type[Rule]] = {"threshold": Threshold, "drift": Drift, "regime": Regime}


def parse(tables: Sequence[Mapping[str, Any]]) -> tuple[Rule, ...]:
    """Rules from config tables ({kind = "threshold", above = 350.0}, ...)."""
    out: list[Rule] = []
    for table in tables:
        options = dict(table)
        kind = options.pop("kind", None)
        if kind not in KINDS:
            raise ValueError(f"a rule's kind is one of {sorted(KINDS)}, got {kind!r}")
        try:
            out.append(
                KINDS[kind](**{k: v if k == "model" else float(v) for k, v in options.items()})
            )
        except TypeError as e:
            raise ValueError(f"{kind} rule: {e}") from None
    return tuple(out)


@dataclass
class RuleState:
    """What the rules of one site remember between updates."""

    holding: dict[int, bool] = field(default_factory=dict)  # rule index -> condition holds
    baseline: float | None = None
    frames: dict[int, Frames] = field(default_factory=dict)  # regime rule index -> its frames
    regime: dict[int, str] = field(default_factory=dict)  # regime rule index -> last label


def take(
    rules: Sequence[Rule],
    memory: RuleState,
    values: np.ndarray,
    times: np.ndarray,
    batch: tuple[np.ndarray, np.ndarray, np.ndarray],
    served: Callable[[np.ndarray], np.ndarray],
) -> None:
    """Before a batch is folded into a map (`values`, `times`): the regime rules' frames of the
    ticks it passes. `batch`: its new readings' flat cells, values and measurement times;
    `served`: a map as the site serves it (filled)."""
    for i, rule in enumerate(rules):
        if isinstance(rule, Regime):
            frames = memory.frames.setdefault(i, Frames(rule.interval, rule.window))
            frames.take(values, times, *batch, lambda f: features.resample(served(f)[None])[0])


def evaluate(
    rules: Sequence[Rule], memory: RuleState, values: np.ndarray, times: np.ndarray
) -> list[dict[str, Any]]:
    """The events of one map update (values NaN where no reading arrived)."""
    events: list[dict[str, Any]] = []
    observed = np.isfinite(times)
    for i, rule in enumerate(rules):
        if isinstance(rule, Threshold):
            beyond = np.zeros(values.shape, dtype=bool)
            if rule.above is not None:
                beyond |= observed & (values > rule.above)
            if rule.below is not None:
                beyond |= observed & (values < rule.below)
            holds = bool(beyond.any())
            detail: dict[str, Any] = {"above": rule.above, "below": rule.below}
            if holds:
                worst = np.where(beyond, np.abs(values - _bound(rule, values)), -np.inf)
                cell = np.unravel_index(int(np.argmax(worst)), values.shape)
                detail |= {"cells": int(beyond.sum()), "value": float(values[cell]),
                           "cell": [int(c) for c in cell]}  # fmt: skip
            name = "threshold.crossed" if holds else "threshold.cleared"
        elif isinstance(rule, Regime):
            frames = memory.frames.get(i)
            if frames is None or not frames.fresh:  # no new frame since the last judgement
                continue
            frames.fresh = False
            window = frames.window()
            if window is None:
                continue
            detector = models.load_detector(rule.model)
            label, p, _, _ = regime_detector.decide(detector, window, rule.step)
            previous = memory.regime.get(i)
            if label == previous or label == "undetermined":
                continue
            memory.regime[i] = label
            events.append({"event": "regime.changed", "rule": i, "regime": label,
                           "previous": previous, "probabilities": p, "model": rule.model,
                           "frames": len(window), "interval": rule.interval})  # fmt: skip
            continue
        else:
            if not observed.all():
                continue
            total = float(values.sum(dtype=np.float64))
            if memory.baseline is None:
                memory.baseline = total
                continue
            change = total / memory.baseline - 1 if memory.baseline else math.inf
            holds = abs(change) > rule.tolerance
            detail = {"total": total, "baseline": memory.baseline,
                      "relative_change": change, "tolerance": rule.tolerance}  # fmt: skip
            name = "drift.exceeded" if holds else "drift.recovered"
        if holds != memory.holding.get(i, False):
            memory.holding[i] = holds
            events.append({"event": name, "rule": i, **detail})
    return events


def _bound(rule: Threshold, values: np.ndarray) -> np.ndarray:
    """Per cell, the bound it is measured from (above where it is above, else below)."""
    above = rule.above if rule.above is not None else math.inf
    below = rule.below if rule.below is not None else -math.inf
    return np.where(values > above, above, below)
