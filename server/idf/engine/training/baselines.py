"""The baselines reconstruction has to beat, measured in the same run (bench/diffusion.py):

- linear interpolation: scipy's Delaunay-based `griddata` over the observations tiled 3×3 (the
  grid is periodic), nearest-neighbour where the triangulation does not reach;
- kriging: the Gaussian-process posterior mean with the field family's own stationary covariance
  and mean, estimated from training fields by FFT (the periodic family is translation invariant).
  It is the best *linear* estimator for the family, the strongest baseline a learned prior can face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import griddata


def linear_interpolation(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill a periodic 2-D field from the sites where `mask` is true."""
    h, w = mask.shape
    pts = np.argwhere(mask).astype(np.float64)
    vals = values[mask].astype(np.float64)
    tiles = [(dy * h, dx * w) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    p = np.concatenate([pts + np.array(t) for t in tiles])
    v = np.tile(vals, len(tiles))
    grid = (
        np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), -1)
        .reshape(-1, 2)
        .astype(np.float64)
    )
    out = griddata(p, v, grid, method="linear")
    holes = np.isnan(out)
    if holes.any():
        out[holes] = griddata(p, v, grid[holes], method="nearest")
    return out.reshape(h, w)


@dataclass(frozen=True)
class StationaryCovariance:
    mean: float
    covariance: np.ndarray  # (H, W): C(Δ) for every periodic lag Δ

    @classmethod
    def estimate(cls, fields: np.ndarray) -> "StationaryCovariance":
        x = fields.astype(np.float64)
        mu = float(x.mean())
        spectrum = np.mean(np.abs(np.fft.fft2(x - mu)) ** 2, axis=0) / (x.shape[-1] * x.shape[-2])
        return cls(mu, np.fft.ifft2(spectrum).real)

    def kriging(
        self, values: np.ndarray, mask: np.ndarray, noise_std: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Simple kriging: posterior mean and standard deviation at every site."""
        h, w = mask.shape
        obs = np.argwhere(mask)
        grid = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), -1).reshape(-1, 2)

        def cov(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            d = (a[:, None, :] - b[None, :, :]) % np.array([h, w])
            return self.covariance[d[..., 0], d[..., 1]]

        k_oo = cov(obs, obs) + (noise_std**2 + 1e-10 * self.covariance[0, 0]) * np.eye(len(obs))
        k_go = cov(grid, obs)
        chol = np.linalg.cholesky(k_oo)
        alpha = np.linalg.solve(
            chol.T, np.linalg.solve(chol, values[mask].astype(np.float64) - self.mean)
        )
        mean = self.mean + k_go @ alpha
        v = np.linalg.solve(chol, k_go.T)
        var = np.maximum(self.covariance[0, 0] - np.sum(v * v, axis=0), 0.0)
        return mean.reshape(h, w), np.sqrt(var).reshape(h, w)
