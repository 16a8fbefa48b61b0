"""Validation metrics of a prediction p against a reference r (same shape, 1 to 3 grid axes),
and conservation metrics of a time sequence. Definitions with formulas: docs/metrics.md.
The error metrics follow PDEBench's (Takamoto et al. 2022), implemented here from the formulas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from idf.engine.cost import Cost
from idf.engine.errors import ParameterError

BANDS = {"low": (0, 4), "mid": (5, 12), "high": (13, None)}  # radial wavenumber index, inclusive


# Peak bytes per site, measured with tracemalloc (numpy reports its buffers to it) on 1-D, 2-D
# and 3-D float32/float64 fields: compare holds float64 copies, the difference, the FFT of the
# difference (complex128), radius bins and both spectra (65-89 B/site); sequence metrics hold one
# frame's float64 copy and its entropy terms at a time (24 B/site) plus the frames' totals.
COMPARE_BYTES_PER_SITE = 96
SEQUENCE_BYTES_PER_SITE = 48


def estimate_compare(shape: Sequence[int]) -> Cost:
    """The cost of `compare` on fields of `shape` (see idf.engine.cost): each site is read once
    per metric pass; site_updates counts the sites compared. Never raises."""
    sites = math.prod(int(n) for n in shape)
    return Cost(site_updates=sites, state_bytes=sites * COMPARE_BYTES_PER_SITE)


def estimate_sequence(frames: int, shape: Sequence[int]) -> Cost:
    """The cost of `sequence_metrics` on `frames` frames of `shape`: frames x sites site reads;
    memory is per frame (one frame is converted at a time). Never raises."""
    sites = math.prod(int(n) for n in shape)
    frames = max(0, int(frames))
    return Cost(site_updates=frames * sites, state_bytes=sites * SEQUENCE_BYTES_PER_SITE + 64 * frames)


def _f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _radius_bins(shape: tuple[int, ...]) -> np.ndarray:
    """Rounded index-space radius of every FFT mode, in numpy's (unshifted) FFT layout."""
    k = np.meshgrid(*(np.fft.fftfreq(n) * n for n in shape), indexing="ij")
    return np.rint(np.sqrt(sum(c * c for c in k))).astype(np.int64)


def radial_spectrum(x: np.ndarray) -> np.ndarray:
    """Mean |FFT(x - mean x)|^2 / N per rounded radius (the mean removed: a centred field)."""
    x = _f64(x)
    power = np.abs(np.fft.fftn(x - x.mean())) ** 2 / x.size
    bins = _radius_bins(x.shape).ravel()
    return np.bincount(bins, weights=power.ravel()) / np.bincount(bins)


def boundary_mask(shape: tuple[int, ...]) -> np.ndarray:
    """True on sites with an index 0 or n-1 along any axis."""
    mask = np.zeros(shape, dtype=bool)
    for axis, n in enumerate(shape):
        index = [slice(None)] * len(shape)
        for edge in (0, n - 1):
            index[axis] = edge
            mask[tuple(index)] = True
    return mask


def compare(prediction: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Every prediction-versus-reference metric. Raises ParameterError naming the input when a
    metric is undefined (shape or dtype mismatch, a zero reference, a zero reference total)."""
    if prediction.shape != reference.shape:
        raise ParameterError("reference", f"shape {reference.shape} differs from the prediction's {prediction.shape}")
    if prediction.dtype != reference.dtype:
        raise ParameterError("reference", f"dtype {reference.dtype} differs from the prediction's {prediction.dtype}")
    if not 1 <= prediction.ndim <= 3:
        raise ParameterError("prediction", f"fields have 1 to 3 axes, got {prediction.ndim}")
    p, r = _f64(prediction), _f64(reference)
    if not (np.isfinite(p).all() and np.isfinite(r).all()):
        raise ParameterError("prediction" if not np.isfinite(p).all() else "reference", "contains NaN or Inf")
    d = p - r
    n = d.size
    ref_norm = math.sqrt(float(np.sum(r * r)))
    if ref_norm == 0:
        raise ParameterError("reference", "is identically zero: normalised errors are undefined")
    ref_total = float(np.sum(r))
    if ref_total == 0:
        raise ParameterError("reference", "has a zero total: energy fidelity is undefined")
    pred_total = float(np.sum(p))
    out = {
        "rmse": math.sqrt(float(np.mean(d * d))),
        "nrmse": math.sqrt(float(np.sum(d * d))) / ref_norm,
        "conserved_rmse": abs(pred_total - ref_total) / n,
        "boundary_rmse": math.sqrt(float(np.mean(d[boundary_mask(d.shape)] ** 2))),
        "max_error": float(np.max(np.abs(d))),
        "energy_fidelity": 1 - abs(pred_total - ref_total) / abs(ref_total),
    }
    power = np.abs(np.fft.fftn(d)) ** 2
    radius = _radius_bins(d.shape)
    for band, (lo, hi) in BANDS.items():
        sel = (radius >= lo) & (radius <= hi if hi is not None else True)
        out[f"fourier_rmse_{band}"] = math.sqrt(float(np.sum(power[sel]))) / n
    sp, sr = radial_spectrum(p)[1:], radial_spectrum(r)[1:]
    out["spectrum_correlation"] = (
        float(np.corrcoef(sp, sr)[0, 1]) if sp.size > 1 and sp.std() > 0 and sr.std() > 0 else float("nan")
    )
    if not math.isfinite(out["spectrum_correlation"]):
        del out["spectrum_correlation"]  # undefined (constant spectra, too few modes): not reported
    return out


def shannon_entropy(u: np.ndarray) -> float:
    u = _f64(u)
    p = u / u.sum()
    nz = p[p > 0]
    return float(-np.sum(nz * np.log(nz)))


def sequence_metrics(frames: Sequence[np.ndarray]) -> dict[str, float]:
    """Conservation and second-law metrics of a time sequence of frames (oldest first)."""
    if len(frames) < 2:
        raise ParameterError("sequence", "needs at least 2 frames")
    shape = frames[0].shape
    for i, f in enumerate(frames):
        if f.shape != shape:
            raise ParameterError(f"sequence[{i}]", f"shape {f.shape} differs from sequence[0]'s {shape}")
        if not np.isfinite(f).all():
            raise ParameterError(f"sequence[{i}]", "contains NaN or Inf")
    totals = np.array([np.sum(_f64(f)) for f in frames])
    if totals[0] == 0:
        raise ParameterError("sequence[0]", "has a zero total: the relative drift is undefined")
    out = {"total_drift": float(np.max(np.abs(totals - totals[0])) / abs(totals[0]))}
    if all((f >= 0).all() for f in frames) and np.all(totals > 0):
        h = np.array([shannon_entropy(f) for f in frames])
        out["entropy_decrease"] = float(max(0.0, -np.min(np.diff(h))))
    return out
