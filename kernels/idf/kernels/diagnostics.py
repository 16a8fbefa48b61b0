"""Reductions and diagnostics of fields (B, *grid):

- `total`: sum over the grid, accumulated in float64 (torch's reduction on every device; the
  fused sampler kernels also return their totals as per-block partial sums).
- `shannon_entropy`: H = -sum_i p_i log p_i of the normalised field p = u / sum(u), u >= 0, with
  0 log 0 = 0 (nats). Triton kernel on CUDA (one pass after the total), torch elsewhere.
- `radial_power_spectrum`: P(k) = |FFT(u)(k)|^2 / N, centred (zero mode in the middle, as
  fftshift), averaged over shells of integer radius: bin b holds the modes whose index-space
  radius |k| = sqrt(sum_a k_a^2), k_a in [-n_a/2, n_a/2), rounds to b; b = 0 is the mean mode.
  Returns (b, mean power per bin, modes per bin). The FFT is torch.fft (cuFFT on GPU, pocketfft
  on CPU): a library FFT beats anything we would write.
"""

from __future__ import annotations

from typing import cast

import torch

from idf.kernels import _grid
from idf.kernels._triton import tl, triton, use_triton


def _axes(x: torch.Tensor, ndim: int) -> tuple[int, ...]:
    if not 1 <= ndim <= min(3, x.ndim):
        raise ValueError(f"ndim must be 1..3 and <= x.ndim, got {ndim}")
    return tuple(range(x.ndim - ndim, x.ndim))


def total(x: torch.Tensor, ndim: int = 2) -> torch.Tensor:
    """Sum over the grid per chain, float64."""
    return x.sum(_axes(x, ndim), dtype=torch.float64)


def _normaliser(x: torch.Tensor, ndim: int) -> torch.Tensor:
    if torch.any(x < 0):
        raise ValueError("entropy needs a non-negative field")
    z = total(x, ndim)
    if torch.any(z <= 0):
        raise ValueError("entropy needs a field with a positive total")
    return z


def shannon_entropy_reference(x: torch.Tensor, ndim: int = 2) -> torch.Tensor:
    z = _normaliser(x, ndim)
    p = x.to(torch.float64) / z.reshape(z.shape + (1,) * ndim)
    terms = torch.where(p > 0, -p * torch.log(torch.where(p > 0, p, 1.0)), 0.0)
    return terms.sum(_axes(x, ndim))


@triton.jit
def _entropy_kernel(x_ptr, z_ptr, part_ptr, N, NBLOCKS, BLOCK: tl.constexpr):  # type: ignore[no-untyped-def]
    pid = tl.program_id(0)
    chain = tl.program_id(1).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    p = tl.load(x_ptr + chain * N + offs, mask=mask, other=0.0).to(tl.float64) / tl.load(
        z_ptr + chain
    )
    safe = tl.where(p > 0, p, 1.0)
    tl.store(
        part_ptr + chain * NBLOCKS + pid, tl.sum(tl.where(p > 0, -p * tl.log(safe), 0.0), axis=0)
    )


def shannon_entropy_triton(
    x: torch.Tensor, ndim: int = 2, *, block: int = _grid.BLOCK
) -> torch.Tensor:
    z = _normaliser(x, ndim).contiguous()
    x = x.contiguous()
    batch, nz, ny, nx = _grid.grid_dims(x.shape, ndim)
    grid = _grid.launch_grid(nx * ny * nz, batch, block)
    part = torch.empty((batch, grid[0]), dtype=torch.float64, device=x.device)
    _entropy_kernel[grid](x, z.reshape(-1), part, nx * ny * nz, grid[0], BLOCK=block)
    return part.sum(-1).reshape(z.shape)


def shannon_entropy(x: torch.Tensor, ndim: int = 2) -> torch.Tensor:
    """Shannon entropy (nats) of each chain's normalised field."""
    if use_triton(x):
        return shannon_entropy_triton(x, ndim)
    return shannon_entropy_reference(x, ndim)


def radial_power_spectrum(
    x: torch.Tensor, ndim: int = 2
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(bin radius b, mean power per bin (B, nbins), modes per bin) — see the module docstring."""
    axes = _axes(x, ndim)
    grid = x.shape[x.ndim - ndim :]
    n = 1
    for s in grid:
        n *= s
    power = torch.fft.fftshift(
        torch.fft.fftn(x.to(torch.float64), dim=axes).abs() ** 2 / n, dim=axes
    )
    k = torch.meshgrid(
        *(torch.arange(s, device=x.device, dtype=torch.float64) - s // 2 for s in grid),
        indexing="ij",
    )
    radius = torch.sqrt(cast(torch.Tensor, sum(c * c for c in k)))
    bins = torch.round(radius).to(torch.int64).reshape(-1)
    nbins = int(bins.max()) + 1
    counts = torch.bincount(bins, minlength=nbins)
    flat = power.reshape(*power.shape[: x.ndim - ndim], -1)
    sums = torch.zeros(*flat.shape[:-1], nbins, dtype=torch.float64, device=x.device)
    sums.index_add_(sums.ndim - 1, bins, flat)
    return torch.arange(nbins, device=x.device), sums / counts, counts
