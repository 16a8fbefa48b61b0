"""Metropolis-adjusted Langevin (MALA) step for the phi^4 / Gaussian-free-field energy.

Per chain: propose y = x - eta grad E(x) + sqrt(2 eta T) xi, then accept with probability
    min(1, exp(-(E(y) - E(x)) / T) q(x|y) / q(y|x)),
    log q(y|x) = -|xi|^2 / 2,   log q(x|y) = -|x - y + eta grad E(y)|^2 / (4 eta T),
which makes exp(-E/T) exactly stationary. Two fused passes (the proposal pass is the Langevin
kernel, which also sums E(x) and |xi|^2; the reverse pass sums E(y) and the reverse residual),
one uniform per chain, and a select.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from idf.kernels import _grid
from idf.kernels._triton import use_triton
from idf.kernels.phi4 import MODE_PROPOSE, MODE_REVERSE, Phi4, launch_phi4, phi4_reference
from idf.kernels.random import cpu_generator, philox_uniform, step_seed


@dataclass(frozen=True)
class MalaResult:
    phi: torch.Tensor  # the new states (B, *grid)
    energy: torch.Tensor  # E of the new states, float64 (B,)
    accepted: torch.Tensor  # bool (B,)
    log_alpha: torch.Tensor  # float64 (B,)


def _sigma(step_size: float, temperature: float) -> float:
    if not (step_size > 0 and temperature > 0):
        raise ValueError(
            f"MALA needs step_size > 0 and temperature > 0, got {step_size}, {temperature}"
        )
    return math.sqrt(2.0 * step_size * temperature)


def mala_decide(
    phi: torch.Tensor,
    proposal: torch.Tensor,
    e_x: torch.Tensor,
    e_y: torch.Tensor,
    xi2: torch.Tensor,
    r2: torch.Tensor,
    uniform: torch.Tensor,
    temperature: float,
    sigma: float,
    ndim: int,
) -> MalaResult:
    """Accept or reject each chain's proposal from the energies and the squared noise and reverse
    residual norms (shared by the reference, the fused kernel and the engine's generic MALA)."""
    log_alpha = -(e_y - e_x) / temperature - r2 / (2 * sigma**2) + xi2 / 2
    accepted = torch.log(uniform.to(torch.float64)) < log_alpha
    select = accepted.reshape(accepted.shape + (1,) * ndim)
    return MalaResult(
        torch.where(select, proposal, phi), torch.where(accepted, e_y, e_x), accepted, log_alpha
    )


def mala_step_reference(
    phi: torch.Tensor,
    model: Phi4,
    *,
    step_size: float,
    temperature: float,
    noise: torch.Tensor,
    uniform: torch.Tensor,
    ndim: int = 2,
) -> MalaResult:
    sigma = _sigma(step_size, temperature)
    axes = tuple(range(phi.ndim - ndim, phi.ndim))
    ev_x = phi4_reference(phi, model, ndim)
    proposal = phi - step_size * ev_x.gradient + sigma * noise
    ev_y = phi4_reference(proposal, model, ndim)
    r = phi - proposal + step_size * ev_y.gradient
    xi2 = (noise * noise).sum(axes, dtype=torch.float64)
    r2 = (r * r).sum(axes, dtype=torch.float64)
    return mala_decide(
        phi, proposal, ev_x.energy, ev_y.energy, xi2, r2, uniform, temperature, sigma, ndim
    )


def mala_step_triton(
    phi: torch.Tensor,
    model: Phi4,
    *,
    step_size: float,
    temperature: float,
    key: int,
    uniform: torch.Tensor,
    ndim: int = 2,
    block: int = _grid.BLOCK,
) -> MalaResult:
    sigma = _sigma(step_size, temperature)
    phi = phi.contiguous()
    batch_shape = phi.shape[: phi.ndim - ndim]
    proposal = torch.empty_like(phi)
    forward = launch_phi4(
        phi,
        model,
        ndim,
        MODE_PROPOSE,
        eta=step_size,
        sigma=sigma,
        seed=key,
        out=proposal,
        block=block,
    )
    reverse = launch_phi4(proposal, model, ndim, MODE_REVERSE, eta=step_size, aux=phi, block=block)
    e_x, xi2 = forward.sum(-1, dtype=torch.float64).reshape(2, *batch_shape)
    e_y, r2 = reverse.sum(-1, dtype=torch.float64).reshape(2, *batch_shape)
    return mala_decide(phi, proposal, e_x, e_y, xi2, r2, uniform, temperature, sigma, ndim)


def mala_step(
    phi: torch.Tensor,
    model: Phi4,
    *,
    step_size: float,
    temperature: float,
    seed: int,
    step: int,
    ndim: int = 2,
) -> MalaResult:
    """One MALA step of every chain in `phi` (B, *grid)."""
    batch_shape = tuple(phi.shape[: phi.ndim - ndim])
    if use_triton(phi):
        uniform = philox_uniform(
            step_seed(seed, step, 1), batch_shape or (1,), device=phi.device
        ).reshape(batch_shape)
        return mala_step_triton(
            phi,
            model,
            step_size=step_size,
            temperature=temperature,
            key=step_seed(seed, step),
            uniform=uniform,
            ndim=ndim,
        )
    gen = cpu_generator(seed, step)
    noise = torch.randn(phi.shape, generator=gen, dtype=phi.dtype)
    uniform = torch.rand(batch_shape, generator=gen, dtype=torch.float64)
    return mala_step_reference(
        phi,
        model,
        step_size=step_size,
        temperature=temperature,
        noise=noise,
        uniform=uniform,
        ndim=ndim,
    )
