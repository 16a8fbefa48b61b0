"""phi^4 (Ginzburg-Landau) lattice energy, value and gradient, on periodic lattices of 1 to 3
axes, in lattice units. The Gaussian free field is the case b = 0, a = m^2.

    E(phi) = sum_i e_i,
    e_i    = kappa/2 sum_a (phi[i+e_a] - phi[i])^2 + a/2 phi_i^2 + b/4 phi_i^4 - h_i phi_i
    dE/dphi_i = kappa sum_a (2 phi_i - phi[i+e_a] - phi[i-e_a]) + a phi_i + b phi_i^3 - h_i

(each bond is counted once, with its left site, so the per-site energies sum to E). h is a
constant or a field of the grid's shape, shared by every chain. Fields have shape (B, *grid).

The same Triton kernel, in three modes, also makes the fused Langevin / MALA passes
(`idf.kernels.langevin`, `idf.kernels.mala`): every pass reads each site and its neighbours once,
writes once, and leaves per-block partial sums for the reductions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from idf.kernels import _grid
from idf.kernels._grid import coords, neighbours
from idf.kernels._triton import tl, triton, use_triton

MODE_EVALUATE, MODE_PROPOSE, MODE_REVERSE = 0, 1, 2


@dataclass(frozen=True)
class Phi4:
    """Parameters of the phi^4 energy (lattice units). `h` is a float or a grid-shaped tensor."""

    kappa: float = 1.0
    a: float = -1.0
    b: float = 1.0
    h: float | torch.Tensor = 0.0

    @classmethod
    def gaussian_free_field(cls, kappa: float = 1.0, mass2: float = 1.0) -> Phi4:
        return cls(kappa=kappa, a=mass2, b=0.0, h=0.0)


@dataclass(frozen=True)
class Evaluation:
    site_energy: torch.Tensor  # (B, *grid)
    gradient: torch.Tensor  # (B, *grid)
    energy: torch.Tensor  # (B,) float64 totals


def _bonds(phi: torch.Tensor, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum_a (phi[i+e_a] - phi_i)^2, sum_a (2 phi_i - phi[i+e_a] - phi[i-e_a])), periodic."""
    bond = torch.zeros_like(phi)
    lap = torch.zeros_like(phi)
    for axis in range(phi.ndim - ndim, phi.ndim):
        right = torch.roll(phi, -1, axis)
        left = torch.roll(phi, 1, axis)
        d = right - phi
        bond += d * d
        lap += 2 * phi - left - right
    return bond, lap


def phi4_site_energy_reference(phi: torch.Tensor, model: Phi4, ndim: int = 2) -> torch.Tensor:
    bond, _ = _bonds(phi, ndim)
    p2 = phi * phi
    e = (0.5 * model.kappa) * bond + (0.5 * model.a) * p2 + (0.25 * model.b) * (p2 * p2)
    return e - model.h * phi


def phi4_gradient_reference(phi: torch.Tensor, model: Phi4, ndim: int = 2) -> torch.Tensor:
    _, lap = _bonds(phi, ndim)
    p2 = phi * phi
    g = model.kappa * lap + model.a * phi + model.b * (p2 * phi)
    return g - model.h


def phi4_reference(phi: torch.Tensor, model: Phi4, ndim: int = 2) -> Evaluation:
    e = phi4_site_energy_reference(phi, model, ndim)
    grid_axes = tuple(range(phi.ndim - ndim, phi.ndim))
    return Evaluation(
        e, phi4_gradient_reference(phi, model, ndim), e.sum(grid_axes, dtype=torch.float64)
    )


@triton.jit
def phi4_kernel(  # type: ignore[no-untyped-def]
    phi_ptr,
    h_ptr,
    aux_ptr,
    out_ptr,
    grad_ptr,
    part_ptr,
    p_ptr,
    seed,
    N,
    NX,
    NY,
    NZ,
    NBLOCKS,
    NDIM: tl.constexpr,
    HAS_H: tl.constexpr,
    MODE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """p = [kappa/2, kappa, a/2, a, b/4, b, h, eta, sigma].

    MODE 0 (evaluate): out = per-site energy, grad = gradient, part[0] = partial E.
    MODE 1 (propose):  out = phi - eta grad + sigma xi (xi ~ N(0,1) from Philox),
                       part[0] = partial E(phi), part[1] = partial sum xi^2.
    MODE 2 (reverse):  phi is a MALA proposal y and aux the current state x:
                       part[0] = partial E(y), part[1] = partial sum (x - y + eta grad(y))^2.
    part has shape (2, B, NBLOCKS).
    """
    pid = tl.program_id(0)
    chain = tl.program_id(1).to(tl.int64)
    base = chain * N
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    phi_chain = phi_ptr + base
    x, y, z = coords(offs, NX, NY, NZ)
    phi = tl.load(phi_chain + offs, mask=mask, other=0.0)
    bond = phi * 0
    lap = phi * 0
    if NDIM == 3:
        left, right = neighbours(phi_chain, offs, z, NZ, NX * NY, mask)
        d = right - phi
        bond += d * d
        lap += 2 * phi - left - right
    if NDIM >= 2:
        left, right = neighbours(phi_chain, offs, y, NY, NX, mask)
        d = right - phi
        bond += d * d
        lap += 2 * phi - left - right
    left, right = neighbours(phi_chain, offs, x, NX, 1, mask)
    d = right - phi
    bond += d * d
    lap += 2 * phi - left - right
    p2 = phi * phi
    e = tl.load(p_ptr) * bond + tl.load(p_ptr + 2) * p2 + tl.load(p_ptr + 4) * (p2 * p2)
    grad = tl.load(p_ptr + 1) * lap + tl.load(p_ptr + 3) * phi + tl.load(p_ptr + 5) * (p2 * phi)
    if HAS_H:
        h = tl.load(h_ptr + offs, mask=mask, other=0.0)
    else:
        h = tl.load(p_ptr + 6)
    e = e - h * phi
    grad = grad - h
    e = tl.where(mask, e, 0.0)
    slot = chain * NBLOCKS + pid
    stride = tl.num_programs(1).to(tl.int64) * NBLOCKS  # part[1] - part[0]
    tl.store(part_ptr + slot, tl.sum(e, axis=0))
    if MODE == 0:
        tl.store(out_ptr + base + offs, e, mask=mask)
        tl.store(grad_ptr + base + offs, grad, mask=mask)
    if MODE == 1:
        xi = tl.randn(seed, (base + offs).to(tl.int32)).to(phi.dtype)
        new = phi - tl.load(p_ptr + 7) * grad + tl.load(p_ptr + 8) * xi
        tl.store(out_ptr + base + offs, new, mask=mask)
        tl.store(part_ptr + stride + slot, tl.sum(tl.where(mask, xi * xi, 0.0), axis=0))
    if MODE == 2:
        current = tl.load(aux_ptr + base + offs, mask=mask, other=0.0)
        r = current - phi + tl.load(p_ptr + 7) * grad
        tl.store(part_ptr + stride + slot, tl.sum(tl.where(mask, r * r, 0.0), axis=0))


def launch_phi4(
    phi: torch.Tensor,
    model: Phi4,
    ndim: int,
    mode: int,
    *,
    eta: float = 0.0,
    sigma: float = 0.0,
    seed: int = 0,
    aux: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    grad: torch.Tensor | None = None,
    block: int = _grid.BLOCK,
) -> torch.Tensor:
    """Run the phi^4 kernel in `mode`; returns the partial sums, shape (2, B, blocks)."""
    batch, nz, ny, nx = _grid.grid_dims(phi.shape, ndim)
    sites = nx * ny * nz
    if batch * sites >= 2**31:
        raise ValueError("at most 2^31 sites per launch (32-bit Philox counters)")
    has_h = isinstance(model.h, torch.Tensor)
    h_scalar = 0.0 if has_h else float(model.h)
    p = _grid.params(
        [
            0.5 * model.kappa,
            model.kappa,
            0.5 * model.a,
            model.a,
            0.25 * model.b,
            model.b,
            h_scalar,
            eta,
            sigma,
        ],
        phi,
    )
    h = model.h.to(phi.dtype).contiguous() if has_h else phi  # type: ignore[union-attr]
    if has_h and h.numel() != sites:
        raise ValueError(f"the external field has {h.numel()} values for {sites} sites")
    grid = _grid.launch_grid(sites, batch, block)
    part = torch.empty((2, batch, grid[0]), dtype=phi.dtype, device=phi.device)
    phi4_kernel[grid](
        phi,
        h,
        aux if aux is not None else phi,
        out if out is not None else phi,
        grad if grad is not None else phi,
        part,
        p,
        seed,
        sites,
        nx,
        ny,
        nz,
        grid[0],
        NDIM=ndim,
        HAS_H=has_h,
        MODE=mode,
        BLOCK=block,
    )
    return part


def phi4_triton(
    phi: torch.Tensor, model: Phi4, ndim: int = 2, *, block: int = _grid.BLOCK
) -> Evaluation:
    phi = phi.contiguous()
    site = torch.empty_like(phi)
    grad = torch.empty_like(phi)
    part = launch_phi4(phi, model, ndim, MODE_EVALUATE, out=site, grad=grad, block=block)
    batch_shape = phi.shape[: phi.ndim - ndim]
    return Evaluation(site, grad, part[0].sum(-1, dtype=torch.float64).reshape(batch_shape))


def phi4(phi: torch.Tensor, model: Phi4, ndim: int = 2) -> Evaluation:
    """Per-site energy, gradient and total energy per chain (Triton on CUDA, torch elsewhere)."""
    if use_triton(phi):
        return phi4_triton(phi, model, ndim)
    return phi4_reference(phi, model, ndim)


def phi4_gradient(phi: torch.Tensor, model: Phi4, ndim: int = 2) -> torch.Tensor:
    """dE/dphi only (Triton on CUDA, torch elsewhere): what guidance and gradient flows need."""
    if use_triton(phi):
        return phi4_triton(phi, model, ndim).gradient
    return phi4_gradient_reference(phi, model, ndim)
