"""Reverse diffusion: the probability-flow ODE (deterministic, Heun) and EDM's stochastic sampler,
with observation-likelihood and energy guidance. Definitions in docs/diffusion.md.

Noise ladder (EDM): σ_i = (σ_max^(1/ρ) + i/(N−1)·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ, i < N, σ_N = 0, ρ = 7,
σ_max = 80·σ_d, σ_min = 0.004·σ_d (EDM's 80 and 0.002 at σ_d = 0.5, scaled with the data).

Guidance replaces the denoiser D by D′, using Gaussian approximations of the unknown x0 given
x_σ: Var[x0 | x_σ] ≈ v(σ) = σ²σ_d²/(σ² + σ_d²) and ∂D/∂x ≈ v(σ)/σ² (both exact for x0 ~ N(0, σ_d²)):
- observations y at mask m with noise s_y: D′ = D + m·(y − D)·v/(s_y² + v) — the gradient of
  log N(y; m·D, s_y² + v) pulled back through D. With s_y = 0 it pins D to the observations.
- energy E at temperature T with scale λ: D′ = argmin_y |y − D|²/(2v) + λE(y)/T, the posterior
  mode of N(D, v) times exp(−λE/T), found by PROX_ITERATIONS of accelerated gradient descent. For
  a Gaussian prior whose posterior covariance is v·I this is exactly the denoiser of
  p(x)·exp(−λE(x)/T) (a test checks the sampled spectrum); as σ → 0 it adds −λ∇E/T to the
  learned score — the physics energy's gradient at the scale the caller sets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from idf.engine.errors import Cancelled, Diverged, ParameterError
from idf.engine.sampling.denoiser import Denoiser
from idf.engine.sampling.energy import Energy

RHO = 7.0
# Fields per uninterruptible denoiser evaluation (a stop is honoured between chunks). Requests of
# up to CHUNK fields — every default — run as one batch, so their results are unchanged.
CHUNK = 64
PROX_ITERATIONS = 20
DETERMINISTIC = "heun"
STOCHASTIC = "stochastic"
METHODS = (DETERMINISTIC, STOCHASTIC)


@dataclass(frozen=True)
class Guidance:
    values: torch.Tensor | None = None  # (1|B, 1, H, W) observed values (0 where unobserved)
    mask: torch.Tensor | None = None  # (1|B, 1, H, W) 1 at observed sites
    noise_std: float = 0.0
    energy: Energy | None = None
    energy_scale: float = 0.0
    temperature: float = 1.0
    total: float | None = (
        None  # exact constraint: Σx = total, by projecting D′ (the last step returns D′)
    )


def sigma_ladder(steps: int, sigma_data: float) -> torch.Tensor:
    smax, smin = 80.0 * sigma_data, 0.004 * sigma_data
    i = torch.arange(steps, dtype=torch.float64)
    s = (smax ** (1 / RHO) + i / max(steps - 1, 1) * (smin ** (1 / RHO) - smax ** (1 / RHO))) ** RHO
    return torch.cat([s, torch.zeros(1, dtype=torch.float64)])


def guided(model: Denoiser, g: Guidance) -> Callable[[torch.Tensor, float], torch.Tensor]:
    sd2 = model.sigma_data**2

    def d(x: torch.Tensor, sigma: float) -> torch.Tensor:
        s = torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device)
        values: torch.Tensor | None = None
        mask: torch.Tensor | None = None
        if g.mask is not None:
            if g.values is None:
                raise ValueError("guidance with a mask needs the observed values")
            values, mask = g.values.expand_as(x), g.mask.expand_as(x)
        out = model(x, s, values, mask)
        v = sigma**2 * sd2 / (sigma**2 + sd2)
        if mask is not None and values is not None:
            out = out + mask * (values - out) * (v / (g.noise_std**2 + v))
        if g.energy is not None and g.energy_scale:
            out = _energy_prox(out, g.energy, g.energy_scale / g.temperature, v)
        if g.total is not None:
            n = out.shape[-1] * out.shape[-2]
            out = (
                out
                - (out.sum((-2, -1), keepdim=True, dtype=torch.float64) - g.total).to(out.dtype) / n
            )
        return out

    return d


def _energy_prox(d: torch.Tensor, energy: Energy, lam: float, v: float) -> torch.Tensor:
    """argmin_y |y − d|²/(2v) + lam·E(y) by Nesterov's method for strongly convex functions, with
    the energy's Hessian bounds lo ⪯ ∇²E ⪯ hi on |y| <= 2·max|d| (room for |y| to grow)."""
    lo, hi = energy.hessian_bounds(2 * float(d.abs().max()), 2)
    big = 1 / v + lam * hi
    small = max(1 / v + lam * lo, 1e-3 / v)
    beta = (math.sqrt(big / small) - 1) / (math.sqrt(big / small) + 1)
    y = prev = d
    for _ in range(PROX_ITERATIONS):
        z = y + beta * (y - prev)
        grad = (z - d) / v + lam * energy.gradient(z[:, 0], 2)[:, None]
        prev, y = y, z - grad / big
    return y


def sample(
    model: Denoiser,
    count: int,
    *,
    steps: int = 32,
    method: str = STOCHASTIC,
    churn: float = 30.0,
    guidance: Guidance | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int, float, torch.Tensor], None] = lambda i, n, s, x: None,
    should_stop: Callable[[], bool] = lambda: False,
    blame: str = "observations",
) -> tuple[torch.Tensor, int]:
    """`count` fields of the model's side, (count, 1, H, W) float32, and the denoiser evaluations spent.

    `method`: "heun" integrates the probability-flow ODE (2nd order, EDM algorithm 1);
    "stochastic" adds EDM's churn (algorithm 2: noise raised by γ = min(churn/steps, √2 − 1) before
    each Heun step). Raises Cancelled before any denoiser evaluation once `should_stop()` turns
    true (with the evaluations x sites done), and Diverged on `blame` when the fields stop being
    finite.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    if steps < 1 or count < 1:
        raise ParameterError(
            "steps" if steps < 1 else "count", f"must be >= 1, got {steps if steps < 1 else count}"
        )
    d = guided(model, guidance or Guidance())
    gen = torch.Generator(device="cpu").manual_seed(int(seed) % 2**63)
    side = model.side
    sig = sigma_ladder(steps, model.sigma_data).tolist()
    x = (
        (torch.randn((count, 1, side, side), generator=gen, dtype=torch.float64) * sig[0])
        .float()
        .to(device)
    )
    gamma = min(churn / steps, math.sqrt(2) - 1) if method == STOCHASTIC else 0.0
    evaluations = 0

    per_field = guidance is not None and guidance.mask is not None and guidance.mask.shape[0] > 1

    def denoise(x: torch.Tensor, sigma: float) -> torch.Tensor:
        """One denoiser evaluation of every field, `should_stop` checked before each chunk of at
        most CHUNK fields (one U-Net pass over a large batch would be seconds that no stop can
        interrupt). Batches up to CHUNK are evaluated whole, exactly as before."""
        if x.shape[0] <= CHUNK or per_field:
            if should_stop():
                raise Cancelled(evaluations * side * side)
            return d(x, sigma)
        parts = []
        for start in range(0, x.shape[0], CHUNK):
            if should_stop():
                raise Cancelled((evaluations + start) * side * side)
            parts.append(d(x[start : start + CHUNK], sigma))
        return torch.cat(parts)

    with torch.no_grad():
        for i in range(steps):
            s_cur, s_next = sig[i], sig[i + 1]
            if gamma > 0 and s_next > 0:
                s_hat = s_cur * (1 + gamma)
                noise = torch.randn(x.shape, generator=gen).to(device)
                x = x + math.sqrt(s_hat**2 - s_cur**2) * noise
                s_cur = s_hat
            slope = (x - denoise(x, s_cur)) / s_cur
            x_next = x + (s_next - s_cur) * slope
            evaluations += count
            if s_next > 0:
                slope2 = (x_next - denoise(x_next, s_next)) / s_next
                x_next = x + (s_next - s_cur) * 0.5 * (slope + slope2)
                evaluations += count
            x = x_next
            if not bool(torch.isfinite(x).all()):
                raise Diverged(
                    blame,
                    f"the reverse diffusion left floating-point range at step {i} of {steps}: "
                    f"the guidance or the observations are too large for the model",
                    step=i,
                    site_updates=evaluations * side * side,
                )
            progress(i + 1, steps, s_next, x)
    return x, evaluations
