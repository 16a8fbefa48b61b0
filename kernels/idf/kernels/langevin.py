"""Unadjusted Langevin step for the phi^4 / Gaussian-free-field energy, fused into one pass:

    phi <- phi - eta * dE/dphi + sqrt(2 eta T) * xi,   xi ~ N(0, 1)

The Triton kernel reads each site and its neighbours once, draws xi in-kernel (Philox, keyed by
`step_seed(seed, step)` and the site index; no noise tensor), writes the new field once and
leaves per-block partial sums of E(phi) — the energy of the state it started from.
"""

from __future__ import annotations

import math

import torch

from idf.kernels import _grid
from idf.kernels._triton import use_triton
from idf.kernels.phi4 import MODE_PROPOSE, Phi4, launch_phi4, phi4_reference
from idf.kernels.random import cpu_generator, step_seed


def _check(step_size: float, temperature: float) -> float:
    if not (step_size > 0 and temperature >= 0):
        raise ValueError(f"need step_size > 0 and temperature >= 0, got {step_size}, {temperature}")
    return math.sqrt(2.0 * step_size * temperature)


def langevin_step_reference(
    phi: torch.Tensor,
    model: Phi4,
    *,
    step_size: float,
    temperature: float,
    noise: torch.Tensor,
    ndim: int = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(new phi, E(phi) per chain) with the given standard-normal noise."""
    sigma = _check(step_size, temperature)
    ev = phi4_reference(phi, model, ndim)
    return phi - step_size * ev.gradient + sigma * noise, ev.energy


def langevin_step_cpu(
    phi: torch.Tensor,
    model: Phi4,
    *,
    step_size: float,
    temperature: float,
    noise: torch.Tensor,
    ndim: int = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The CPU path: the reference's step with fewer passes and temporaries. The Laplacian is
    rebuilt from the forward differences d_a = phi[i+e_a] - phi_i as d_a[i-e_a] - d_a[i], and
    the energy is summed term by term without a per-site tensor, so results agree with the
    reference to rounding (not bit for bit)."""
    sigma = _check(step_size, temperature)
    axes = tuple(range(phi.ndim - ndim, phi.ndim))
    d = torch.roll(phi, -1, axes[0]).sub_(phi)
    bond, lap = d * d, torch.roll(d, 1, axes[0]).sub_(d)
    for axis in axes[1:]:
        d = torch.roll(phi, -1, axis).sub_(phi)
        bond.addcmul_(d, d)
        lap.add_(torch.roll(d, 1, axis).sub_(d))
    p2 = phi * phi
    f64 = torch.float64
    energy = (
        (0.5 * model.kappa) * bond.sum(axes, dtype=f64)
        + (0.5 * model.a) * p2.sum(axes, dtype=f64)
        + (0.25 * model.b) * (p2 * p2).sum(axes, dtype=f64)
        - (model.h * phi).sum(axes, dtype=f64)
    )
    grad = (
        lap.mul_(model.kappa)
        .add_(phi, alpha=model.a)
        .addcmul_(p2, phi, value=model.b)
        .sub_(model.h)
    )
    return torch.add(phi, grad, alpha=-step_size).add_(noise, alpha=sigma), energy


def langevin_step_triton(
    phi: torch.Tensor,
    model: Phi4,
    *,
    step_size: float,
    temperature: float,
    key: int,
    ndim: int = 2,
    block: int = _grid.BLOCK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused kernel; `key` is the Philox seed of this step (see `step_seed`)."""
    sigma = _check(step_size, temperature)
    phi = phi.contiguous()
    new = torch.empty_like(phi)
    part = launch_phi4(
        phi, model, ndim, MODE_PROPOSE, eta=step_size, sigma=sigma, seed=key, out=new, block=block
    )
    return new, part[0].sum(-1, dtype=torch.float64).reshape(phi.shape[: phi.ndim - ndim])


def langevin_step(
    phi: torch.Tensor,
    model: Phi4,
    *,
    step_size: float,
    temperature: float,
    seed: int,
    step: int,
    ndim: int = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Langevin step of every chain in `phi` (B, *grid): (new phi, E(old phi) per chain)."""
    if use_triton(phi):
        return langevin_step_triton(
            phi,
            model,
            step_size=step_size,
            temperature=temperature,
            key=step_seed(seed, step),
            ndim=ndim,
        )
    noise = torch.randn(phi.shape, generator=cpu_generator(seed, step), dtype=phi.dtype)
    return langevin_step_cpu(
        phi, model, step_size=step_size, temperature=temperature, noise=noise, ndim=ndim
    )
