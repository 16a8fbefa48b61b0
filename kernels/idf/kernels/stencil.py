"""Laplacian and gradient on regular grids of 1 to 3 axes (5-point in 2D, 7-point in 3D),
anisotropic spacing, three boundary conditions. Leading axes beyond the grid are batch axes.

Boundaries are cell-centred, as in the transport step: the boundary sits on the face h/2 beyond
the edge cell, and a ghost value u* outside the edge stands in for the missing neighbour:
    periodic     u* = the value at the opposite edge;
    zero-flux    u* = u[edge]            (Neumann: zero normal derivative on the face);
    fixed-value  u* = 2 g - u[edge]      (Dirichlet: the face value (u* + u[edge]) / 2 is g).

    laplacian(u)[i] = sum_a (u[i-e_a] - 2 u[i] + u[i+e_a]) / h_a^2
    gradient(u)[a, i] = (u[i+e_a] - u[i-e_a]) / (2 h_a)          (central differences)

`laplacian` / `gradient` run the Triton kernel for CUDA tensors and the torch reference
otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from idf.kernels import _grid
from idf.kernels._grid import coords, neighbours
from idf.kernels._triton import tl, triton, use_triton


def _ghosted(
    u: torch.Tensor, axis: int, boundary: str, g: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(left, right) neighbour values along `axis`, ghosts at the edges."""
    n = u.shape[axis]
    left = torch.roll(u, 1, axis)
    right = torch.roll(u, -1, axis)
    if boundary == "periodic":
        return left, right
    first = u.narrow(axis, 0, 1)
    last = u.narrow(axis, n - 1, 1)
    ghost_first = first if boundary == "zero-flux" else 2 * g - first
    ghost_last = last if boundary == "zero-flux" else 2 * g - last
    left = torch.cat([ghost_first, left.narrow(axis, 1, n - 1)], dim=axis)
    right = torch.cat([right.narrow(axis, 0, n - 1), ghost_last], dim=axis)
    return left, right


def _check(spacing: Sequence[float], boundary: str, u: torch.Tensor) -> None:
    _grid.boundary_code(boundary)
    if not 1 <= len(spacing) <= min(3, u.ndim):
        raise ValueError(
            f"spacing needs 1 to 3 values, at most u.ndim={u.ndim}; got {list(spacing)}"
        )


def laplacian_reference(
    u: torch.Tensor,
    spacing: Sequence[float],
    boundary: str = "periodic",
    boundary_value: float = 0.0,
) -> torch.Tensor:
    _check(spacing, boundary, u)
    out = torch.zeros_like(u)
    first_axis = u.ndim - len(spacing)
    for axis, h in enumerate(spacing, start=first_axis):
        left, right = _ghosted(u, axis, boundary, boundary_value)
        out += (left - 2 * u + right) / (h * h)
    return out


def gradient_reference(
    u: torch.Tensor,
    spacing: Sequence[float],
    boundary: str = "periodic",
    boundary_value: float = 0.0,
) -> torch.Tensor:
    """Shape (len(spacing), *u.shape): component a is d/dx_a along grid axis a."""
    _check(spacing, boundary, u)
    first_axis = u.ndim - len(spacing)
    parts = []
    for axis, h in enumerate(spacing, start=first_axis):
        left, right = _ghosted(u, axis, boundary, boundary_value)
        parts.append((right - left) / (2 * h))
    return torch.stack(parts)


@triton.jit
def _ghost(u, left, right, c, n, g, BC: tl.constexpr):  # type: ignore[no-untyped-def]
    if BC == 1:
        left = tl.where(c == 0, u, left)
        right = tl.where(c == n - 1, u, right)
    if BC == 2:
        left = tl.where(c == 0, 2 * g - u, left)
        right = tl.where(c == n - 1, 2 * g - u, right)
    return left, right


@triton.jit
def _stencil_kernel(  # type: ignore[no-untyped-def]
    u_ptr,
    out_ptr,
    p_ptr,
    N,
    NX,
    NY,
    NZ,
    NDIM: tl.constexpr,
    BC: tl.constexpr,
    GRADIENT: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """p = [g, h2_z, h2_y, h2_x, 2h_z, 2h_y, 2h_x]. Laplacian: out is (B, *grid).
    Gradient: out is (NDIM, B, *grid), component-major."""
    chain = tl.program_id(1).to(tl.int64)
    base = chain * N
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    u_chain = u_ptr + base
    x, y, z = coords(offs, NX, NY, NZ)
    u = tl.load(u_chain + offs, mask=mask)
    g = tl.load(p_ptr)
    total = tl.num_programs(1).to(tl.int64) * N  # elements of one gradient component
    acc = u * 0
    if NDIM == 3:
        left, right = neighbours(u_chain, offs, z, NZ, NX * NY, mask)
        left, right = _ghost(u, left, right, z, NZ, g, BC)
        if GRADIENT:
            tl.store(out_ptr + base + offs, (right - left) / tl.load(p_ptr + 4), mask=mask)
        else:
            acc += (left - 2 * u + right) / tl.load(p_ptr + 1)
    if NDIM >= 2:
        left, right = neighbours(u_chain, offs, y, NY, NX, mask)
        left, right = _ghost(u, left, right, y, NY, g, BC)
        if GRADIENT:
            tl.store(
                out_ptr + (NDIM - 2) * total + base + offs,
                (right - left) / tl.load(p_ptr + 5),
                mask=mask,
            )
        else:
            acc += (left - 2 * u + right) / tl.load(p_ptr + 2)
    left, right = neighbours(u_chain, offs, x, NX, 1, mask)
    left, right = _ghost(u, left, right, x, NX, g, BC)
    if GRADIENT:
        tl.store(
            out_ptr + (NDIM - 1) * total + base + offs,
            (right - left) / tl.load(p_ptr + 6),
            mask=mask,
        )
    else:
        acc += (left - 2 * u + right) / tl.load(p_ptr + 3)
        tl.store(out_ptr + base + offs, acc, mask=mask)


def _stencil_triton(
    u: torch.Tensor,
    spacing: Sequence[float],
    boundary: str,
    boundary_value: float,
    gradient: bool,
    block: int,
) -> torch.Tensor:
    _check(spacing, boundary, u)
    ndim = len(spacing)
    batch, nz, ny, nx = _grid.grid_dims(u.shape, ndim)
    u = u.contiguous()
    h = [1.0] * (3 - ndim) + list(spacing)
    p = _grid.params([boundary_value, *(x * x for x in h), *(2 * x for x in h)], u)
    out = torch.empty((ndim, *u.shape) if gradient else u.shape, dtype=u.dtype, device=u.device)
    sites = nx * ny * nz
    _stencil_kernel[_grid.launch_grid(sites, batch, block)](
        u,
        out,
        p,
        sites,
        nx,
        ny,
        nz,
        NDIM=ndim,
        BC=_grid.boundary_code(boundary),
        GRADIENT=gradient,
        BLOCK=block,
    )
    return out


def laplacian_triton(
    u: torch.Tensor,
    spacing: Sequence[float],
    boundary: str = "periodic",
    boundary_value: float = 0.0,
    *,
    block: int = _grid.BLOCK,
) -> torch.Tensor:
    return _stencil_triton(u, spacing, boundary, boundary_value, False, block)


def gradient_triton(
    u: torch.Tensor,
    spacing: Sequence[float],
    boundary: str = "periodic",
    boundary_value: float = 0.0,
    *,
    block: int = _grid.BLOCK,
) -> torch.Tensor:
    return _stencil_triton(u, spacing, boundary, boundary_value, True, block)


def laplacian(
    u: torch.Tensor,
    spacing: Sequence[float],
    boundary: str = "periodic",
    boundary_value: float = 0.0,
) -> torch.Tensor:
    """Discrete Laplacian (see the module docstring)."""
    if use_triton(u):
        return laplacian_triton(u, spacing, boundary, boundary_value)
    return laplacian_reference(u, spacing, boundary, boundary_value)


def gradient(
    u: torch.Tensor,
    spacing: Sequence[float],
    boundary: str = "periodic",
    boundary_value: float = 0.0,
) -> torch.Tensor:
    """Central-difference gradient, shape (len(spacing), *u.shape)."""
    if use_triton(u):
        return gradient_triton(u, spacing, boundary, boundary_value)
    return gradient_reference(u, spacing, boundary, boundary_value)
