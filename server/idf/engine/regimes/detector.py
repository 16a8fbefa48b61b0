"""The regime detector: multinomial logistic regression on the physical window features of
`idf.engine.regimes.features`, trained on generated Kolmogorov trajectories labelled by their dynamics.

Why hand-written: seven standardised features and three classes need ~30 weights; a Newton-free
full-batch gradient descent in numpy is deterministic, dependency-free and easy to audit, where
scikit-learn would be a new server dependency for one call.

The artefact is JSON: classes, feature names, standardisation, weights, and the training record
(Reynolds numbers, seeds, command). Evaluation is split by trajectory: held-out Reynolds numbers
and seeds the training never saw.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from idf.engine.flows.navier_stokes import FlowSpec
from idf.engine.regimes import features as regimes

TRAIN_RE = {
    "steady": (8.0, 12.0, 16.0, 19.0),
    "periodic": (21.0, 23.0, 26.0, 28.0),
    "chaotic": (32.0, 45.0, 60.0, 90.0),
}
HELD_OUT_RE = {
    "steady": (10.0, 14.0, 18.0),
    "periodic": (22.0, 24.0, 27.0),
    "chaotic": (35.0, 50.0, 75.0, 110.0),
}
TRAIN_SEEDS = (0, 1, 2)
HELD_OUT_SEEDS = (100, 101)
INTERVALS = (0.5, 1.0)  # frame intervals the windows are cut at
WINDOW_FRAMES = 96


@dataclass
class Detector:
    classes: list[str]
    features: list[str]
    mean: list[float]
    scale: list[float]
    weights: list[list[float]]  # (features + 1) x classes, last row the bias
    record: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, feats: dict[str, float]) -> np.ndarray:
        x = (np.array([feats[f] for f in self.features]) - self.mean) / self.scale
        logits = np.append(x, 1.0) @ np.array(self.weights)
        p = np.exp(logits - logits.max())
        return p / p.sum()

    def save(self, path: Path) -> None:
        tmp = Path(str(path) + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "Detector":
        return cls(**json.loads(Path(path).read_text()))


def windows(labelled: regimes.Labelled) -> list[tuple[np.ndarray, float]]:
    """Non-overlapping windows of WINDOW_FRAMES frames at each interval in INTERVALS."""
    out = []
    for interval in INTERVALS:
        stride = max(1, round(interval / labelled.frame_interval))
        frames = labelled.frames[::stride]
        for start in range(0, len(frames) - WINDOW_FRAMES + 1, WINDOW_FRAMES):
            out.append((frames[start : start + WINDOW_FRAMES], stride * labelled.frame_interval))
    return out


def dataset(
    reynolds: Mapping[str, tuple[float, ...]],
    seeds: tuple[int, ...],
    resolution: int = 32,
    progress: Callable[[int, int], None] = lambda i, n: None,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Features X (windows × features), labels y (class index from the trajectory's dynamics), and
    one record per trajectory. The Re grouping only chooses which runs to make; labels are measured."""
    runs = [(re, s) for group in reynolds.values() for re in group for s in seeds]
    xs, ys, records = [], [], []
    for i, (re, seed) in enumerate(runs):
        lab = regimes.label_trajectory(FlowSpec(resolution=resolution, reynolds=re), seed)
        records.append(
            {
                "reynolds": re,
                "seed": seed,
                "regime": lab.regime,
                "relative_rate": lab.relative_rate,
                "lyapunov": lab.lyapunov,
            }
        )
        for frames, interval in windows(lab):
            f = regimes.window_features(frames, interval)
            xs.append([f[k] for k in regimes.FEATURES])
            ys.append(regimes.REGIMES.index(lab.regime))
        progress(i + 1, len(runs))
    return np.array(xs), np.array(ys), records


def fit(
    x: np.ndarray, y: np.ndarray, *, l2: float = 1e-3, iterations: int = 5000, rate: float = 0.5
) -> Detector:
    """Class-balanced multinomial logistic regression by full-batch gradient descent."""
    k = len(regimes.REGIMES)
    mean, scale = x.mean(0), x.std(0) + 1e-9
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    onehot = np.eye(k)[y]
    counts = np.bincount(y, minlength=k).astype(float)
    weight = (len(y) / (k * np.maximum(counts, 1)))[y][:, None]  # each class counts equally
    w = np.zeros((z.shape[1], k))
    for _ in range(iterations):
        logits = z @ w
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = z.T @ ((p - onehot) * weight) / len(y) + l2 * np.vstack([w[:-1], np.zeros((1, k))])
        w -= rate * grad
    return Detector(
        list(regimes.REGIMES), list(regimes.FEATURES), mean.tolist(), scale.tolist(), w.tolist()
    )


def confusion(detector: Detector, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    k = len(detector.classes)
    m = np.zeros((k, k), dtype=int)
    for xi, yi in zip(x, y):
        p = detector.probabilities(dict(zip(detector.features, xi)))
        m[yi, int(np.argmax(p))] += 1
    return m


def balanced_accuracy(m: np.ndarray) -> float:
    rows = m.sum(1)
    present = rows > 0
    return float(np.mean(np.diag(m)[present] / rows[present]))


def train(
    out: Path,
    *,
    command: str = "",
    progress: Callable[[str, int, int], None] = lambda s, i, n: None,
) -> dict[str, Any]:
    """Generate the training and held-out trajectories, fit, evaluate, save; returns the report."""
    t0 = time.perf_counter()
    x, y, train_records = dataset(
        TRAIN_RE, TRAIN_SEEDS, progress=lambda i, n: progress("training runs", i, n)
    )
    xh, yh, held_records = dataset(
        HELD_OUT_RE, HELD_OUT_SEEDS, progress=lambda i, n: progress("held-out runs", i, n)
    )
    detector = fit(x, y)
    m_train, m_held = confusion(detector, x, y), confusion(detector, xh, yh)
    report = {
        "train_balanced_accuracy": balanced_accuracy(m_train),
        "held_out_balanced_accuracy": balanced_accuracy(m_held),
        "held_out_confusion": m_held.tolist(),
        "train_windows": int(len(y)),
        "held_out_windows": int(len(yh)),
        "classes": list(regimes.REGIMES),
        "seconds": time.perf_counter() - t0,
    }
    detector.record = {
        "command": command,
        "train_runs": train_records,
        "held_out_runs": held_records,
        "window_frames": WINDOW_FRAMES,
        "intervals": list(INTERVALS),
        "resolution": 32,
        **report,
    }
    detector.save(out)
    return report


def decide(
    detector: Detector,
    frames: np.ndarray,
    interval: float,
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[str, dict[str, float], dict[str, float], int]:
    """(label or "undetermined", class probabilities, features, frames still needed)."""
    needed = regimes.frames_needed(len(frames), interval)
    if needed:
        return "undetermined", {}, {}, needed
    feats = regimes.window_features(frames, interval, should_stop)
    p = detector.probabilities(feats)
    return detector.classes[int(np.argmax(p))], dict(zip(detector.classes, p.tolist())), feats, 0
