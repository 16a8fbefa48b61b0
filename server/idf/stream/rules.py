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

Rule state (which condition holds, the baseline) lives in the worker's memory: after a restart
the first update re-establishes it, so an event may be published again (at least once)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


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


Rule = Threshold | Drift
KINDS = {"threshold": Threshold, "drift": Drift}


def parse(tables: Sequence[Mapping[str, Any]]) -> tuple[Rule, ...]:
    """Rules from config tables ({kind = "threshold", above = 350.0}, ...)."""
    out: list[Rule] = []
    for table in tables:
        options = dict(table)
        kind = options.pop("kind", None)
        if kind not in KINDS:
            raise ValueError(f"a rule's kind is one of {sorted(KINDS)}, got {kind!r}")
        try:
            out.append(KINDS[kind](**{k: float(v) for k, v in options.items()}))
        except TypeError as e:
            raise ValueError(f"{kind} rule: {e}") from None
    return tuple(out)


@dataclass
class RuleState:
    """What the rules of one site remember between updates."""

    holding: dict[int, bool] = field(default_factory=dict)  # rule index -> condition holds
    baseline: float | None = None


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
