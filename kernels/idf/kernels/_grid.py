"""Shared pieces of the grid kernels.

Layout convention: a field is a contiguous tensor of shape (B, *grid) — B independent chains or
frames, `grid` of 1 to 3 axes, C order. Kernels launch a 2-D program grid
(cdiv(sites, BLOCK), B): program (i, b) handles sites [i*BLOCK, (i+1)*BLOCK) of chain b, so no
block straddles two chains and per-block partial sums reduce per chain.

Axis names inside kernels: x is the last (fastest) axis, then y, then z.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from idf.kernels._triton import tl, triton

BOUNDARY_CODES = {"periodic": 0, "zero-flux": 1, "fixed-value": 2}
BLOCK = 1024


def boundary_code(boundary: str) -> int:
    if boundary not in BOUNDARY_CODES:
        raise ValueError(f"boundary must be one of {tuple(BOUNDARY_CODES)}, got {boundary!r}")
    return BOUNDARY_CODES[boundary]


def grid_dims(shape: Sequence[int], ndim: int) -> tuple[int, int, int, int]:
    """(batch, nz, ny, nx) of a (B, *grid) or (*grid) shape with `ndim` grid axes."""
    if not 1 <= ndim <= 3:
        raise ValueError(f"grids have 1 to 3 axes, got {ndim}")
    if len(shape) < ndim:
        raise ValueError(f"shape {tuple(shape)} has fewer than {ndim} axes")
    grid = list(shape[len(shape) - ndim :])
    batch = math.prod(shape[: len(shape) - ndim])
    nz, ny, nx = [1] * (3 - ndim) + grid
    return batch, nz, ny, nx


def params(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """Scalar parameters as a tensor of the field's dtype (Triton passes Python floats as fp32,
    which would silently round float64 runs)."""
    return torch.tensor(list(values), dtype=like.dtype, device=like.device)


def launch_grid(sites: int, batch: int, block: int = BLOCK) -> tuple[int, int]:
    return (triton.cdiv(sites, block), batch)


@triton.jit
def coords(offs, NX, NY, NZ):  # type: ignore[no-untyped-def]
    """(x, y, z) of flat site indices within one chain."""
    x = offs % NX
    y = (offs // NX) % NY
    z = offs // (NX * NY)
    return x, y, z


@triton.jit
def neighbours(ptr, offs, c, n, stride, mask):  # type: ignore[no-untyped-def]
    """Values at the previous and next site along one axis, wrapping around at the edges (the
    wrapped value is what periodic boundaries use; other boundaries replace it)."""
    left = tl.where(c > 0, offs - stride, offs + (n - 1) * stride)
    right = tl.where(c < n - 1, offs + stride, offs - (n - 1) * stride)
    return tl.load(ptr + left, mask=mask), tl.load(ptr + right, mask=mask)
