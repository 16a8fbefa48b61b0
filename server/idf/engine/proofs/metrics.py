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
    return Cost(
        site_updates=frames * sites, state_bytes=sites * SEQUENCE_BYTES_PER_SITE + 64 * frames
    )


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
        index: list[slice | int] = [slice(None)] * len(shape)
        for edge in (0, n - 1):
            index[axis] = edge
            mask[tuple(index)] = True
    return mask


SAFE_MAGNITUDE = 1e100  # below it no square, sum or FFT power of a field overflows float64
LINEAR_METRICS = (
    "rmse",
    "conserved_rmse",
    "boundary_rmse",
    "max_error",
    "fourier_rmse_low",
    "fourier_rmse_mid",
    "fourier_rmse_high",
)  # scale with the field


def _real(a: np.ndarray, name: str) -> np.ndarray:
    """`a` as float64, or a ParameterError naming it (empty, not real-valued, NaN or Inf)."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise ParameterError(name, f"must hold real numbers, got dtype {a.dtype}")
    if a.size == 0:
        raise ParameterError(name, "is empty")
    a = _f64(a)
    if not np.isfinite(a).all():
        raise ParameterError(name, "contains NaN or Inf")
    return a


def _scale(*arrays: np.ndarray) -> float:
    """1, or a power of two near the largest magnitude when it passes SAFE_MAGNITUDE: fields
    near float64's maximum are measured divided by it (exact: a power of two), so no
    intermediate overflows; metrics that scale with the field are multiplied back (a clean inf
    if the true value is past float64's range, which every policy threshold judges FAIL)."""
    return _power_of_two(max(float(np.max(np.abs(a))) for a in arrays))


def _power_of_two(top: float) -> float:
    """1 below SAFE_MAGNITUDE, else 2^(e-1) for top = m·2^e, m in [0.5, 1): scaled values stay
    below 2 and the scale itself is representable (2^1024 is not)."""
    return 1.0 if top <= SAFE_MAGNITUDE else math.ldexp(1.0, math.frexp(top)[1] - 1)


def compare(prediction: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Every prediction-versus-reference metric. Raises ParameterError naming the input when a
    metric is undefined (shape or dtype mismatch, empty or non-real fields, NaN or Inf, a zero
    reference, a zero reference total). Never overflows: see `_scale`."""
    prediction, reference = np.asarray(prediction), np.asarray(reference)
    if prediction.shape != reference.shape:
        raise ParameterError(
            "reference",
            f"shape {list(reference.shape)[:4]} differs from the prediction's {list(prediction.shape)[:4]}",
        )
    if prediction.dtype != reference.dtype:
        raise ParameterError(
            "reference", f"dtype {reference.dtype} differs from the prediction's {prediction.dtype}"
        )
    if not 1 <= prediction.ndim <= 3:
        raise ParameterError("prediction", f"fields have 1 to 3 axes, got {prediction.ndim}")
    p, r = _real(prediction, "prediction"), _real(reference, "reference")
    scale = _scale(p, r)
    if scale != 1.0:
        p, r = p / scale, r / scale
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
        float(np.corrcoef(sp, sr)[0, 1])
        if sp.size > 1 and sp.std() > 0 and sr.std() > 0
        else float("nan")
    )
    if not math.isfinite(out["spectrum_correlation"]):
        del out["spectrum_correlation"]  # undefined (constant spectra, too few modes): not reported
    if scale != 1.0:
        for name in LINEAR_METRICS:
            out[name] = (
                out[name] * scale
            )  # Python floats: past the range this is inf, never an error
    return out


def shannon_entropy(u: np.ndarray) -> float:
    u = _f64(u)
    p = u / u.sum()
    nz = p[p > 0]
    return float(-np.sum(nz * np.log(nz)))


def sequence_metrics(frames: Sequence[np.ndarray]) -> dict[str, float]:
    """Conservation and second-law metrics of a time sequence of frames (oldest first). Both are
    scale-invariant: frames near float64's maximum are measured divided by a power of two (see
    `_scale`), so nothing overflows. A ParameterError names the frame that is empty, not real,
    NaN or Inf, or of another shape."""
    if len(frames) < 2:
        raise ParameterError("sequence", "needs at least 2 frames")
    shape = np.shape(frames[0])
    top = 0.0
    for i, f in enumerate(frames):
        if np.shape(f) != shape:
            raise ParameterError(
                f"sequence[{i}]",
                f"shape {list(np.shape(f))[:4]} differs from sequence[0]'s {list(shape)[:4]}",
            )
        a = np.asarray(f)
        if a.dtype.kind not in "biuf":
            raise ParameterError(f"sequence[{i}]", f"must hold real numbers, got dtype {a.dtype}")
        if a.size == 0:
            raise ParameterError(f"sequence[{i}]", "is empty")
        if not np.isfinite(a).all():
            raise ParameterError(f"sequence[{i}]", "contains NaN or Inf")
        top = max(top, float(np.max(np.abs(_f64(a)))))
    scale = _power_of_two(top)

    def scaled(f: np.ndarray) -> np.ndarray:
        return _f64(f) if scale == 1.0 else _f64(f) / scale

    totals = np.array([np.sum(scaled(f)) for f in frames])
    if totals[0] == 0:
        raise ParameterError("sequence[0]", "has a zero total: the relative drift is undefined")
    out = {"total_drift": float(np.max(np.abs(totals - totals[0])) / abs(totals[0]))}
    if all((np.asarray(f) >= 0).all() for f in frames) and np.all(totals > 0):
        h = np.array([shannon_entropy(scaled(f)) for f in frames])
        out["entropy_decrease"] = float(max(0.0, -np.min(np.diff(h))))
    return out
