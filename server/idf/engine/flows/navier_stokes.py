"""2-D incompressible Navier–Stokes in vorticity form on the periodic box [0, 2π)², pseudo-spectral.

    ∂ω/∂t + u·∇ω = ν∇²ω − αω + f,   u = (∂ψ/∂y, −∂ψ/∂x),  −∇²ψ = ω

Kolmogorov forcing: the body force F = (A sin(n y), 0) on the velocity, so f = ∂F_y/∂x − ∂F_x/∂y
= −A·n·cos(n y). Reynolds number Re = √A·(L/2π)^(3/2)/ν = √A/ν (Chandler & Kerswell 2013, L = 2π).

Time stepping (IMEX, second order): Crank–Nicolson for the linear terms (−ν|k|² − α, diagonal in
Fourier space) and Adams–Bashforth 2 for advection and forcing (forward Euler on the first step).
Advection is computed on the grid and dealiased by the 2/3 rule. The step is fixed per run; a run
whose CFL number max|u|·dt/dx exceeds MAX_CFL stops with a ParameterError rather than blowing up.

Validated (tests/test_navier_stokes.py): the Taylor–Green vortex's and a single-shell field's exact
viscous decay (advection vanishes identically; Crank–Nicolson's factor to rounding); the energy
budget dE/dt = P − 2νZ − 2αE with injection P = ⟨F·u⟩ and enstrophy Z = ⟨ω²⟩/2, time-averaged in
a statistically steady state; the laminar Kolmogorov flow. The nonlinear term, in ways that see the
direction of transport: the tendency of ω = cos x + cos 2y equals its closed-form Jacobian
(3/2) sin x sin 2y, and a short Euler run leaves a third-order remainder to its Taylor series;
trajectories from a random state at Re 40 agree with an independent solver (numpy, flux-form
advection, RK4; tests/physics/ns_reference.py) to 5e-5, converging at second order in dt. Linear
stability: the growth (and decay) rates of perturbed laminar Kolmogorov flow match the
eigenvalues of its linearised operator to 3e-4. Euler (ν = α = 0): band-limited fields conserve
energy and enstrophy up to the stepper's O(dt²) error, and a field on one shell |k| = const stays
steady to rounding.
Runs on any torch device (CUDA when given); float64 by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from idf.engine.errors import Cancelled, ParameterError

MAX_CFL = 0.8


@dataclass(frozen=True)
class FlowSpec:
    resolution: int = 64  # grid points per side
    reynolds: float = 40.0  # Re = sqrt(A) / nu
    drag: float = 0.1  # linear drag alpha
    forcing_wavenumber: int = 4
    forcing_amplitude: float = 1.0  # A
    dt: float = 0.0  # 0: from the laminar velocity scale at CFL 0.25

    @property
    def viscosity(self) -> float:
        return math.sqrt(self.forcing_amplitude) / self.reynolds

    def time_step(self) -> float:
        if self.dt:
            return self.dt
        n, a = self.forcing_wavenumber, self.forcing_amplitude
        laminar = (
            a / (self.viscosity * n * n + self.drag)
            if (self.viscosity * n * n + self.drag) > 0
            else a
        )
        return 0.25 * (2 * math.pi / self.resolution) / max(laminar, 1.0)


def check(spec: FlowSpec) -> None:
    if spec.resolution < 8 or spec.resolution % 2:
        raise ParameterError("resolution", f"must be even and >= 8, got {spec.resolution}")
    if not (math.isfinite(spec.reynolds) and spec.reynolds > 0):
        raise ParameterError("reynolds", f"must be finite and > 0, got {spec.reynolds}")
    if not (math.isfinite(spec.drag) and spec.drag >= 0):
        raise ParameterError("drag", f"must be finite and >= 0, got {spec.drag}")
    if not (math.isfinite(spec.forcing_amplitude) and spec.forcing_amplitude >= 0):
        raise ParameterError(
            "forcing_amplitude", f"must be finite and >= 0, got {spec.forcing_amplitude}"
        )
    if not 0 <= spec.forcing_wavenumber < spec.resolution // 3:
        raise ParameterError(
            "forcing_wavenumber", f"must be in [0, {spec.resolution // 3}) at this resolution"
        )
    if not (math.isfinite(spec.dt) and spec.dt >= 0):
        raise ParameterError("dt", f"must be finite and >= 0, got {spec.dt}")


class Solver:
    """Holds the spectral operators of one grid; `advance` integrates a batch of vorticity fields."""

    def __init__(
        self, spec: FlowSpec, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64
    ) -> None:
        check(spec)
        self.spec, self.device, self.dtype = spec, torch.device(device), dtype
        n = spec.resolution
        k = torch.fft.fftfreq(n, d=1.0 / n, dtype=dtype, device=self.device)
        kr = torch.fft.rfftfreq(n, d=1.0 / n, dtype=dtype, device=self.device)
        self.ky, self.kx = k[:, None], kr[None, :]  # axis 0 is y, axis 1 is x
        self.k2 = self.kx**2 + self.ky**2
        self.inv_k2 = torch.where(
            self.k2 > 0, 1.0 / self.k2.clamp(min=1e-30), torch.zeros_like(self.k2)
        )
        self.dealias = ((self.ky.abs() < n / 3) & (self.kx.abs() < n / 3)).to(dtype)
        self.linear = -spec.viscosity * self.k2 - spec.drag
        self.dt = spec.time_step()
        grid = torch.arange(n, dtype=dtype, device=self.device) * (2 * math.pi / n)
        self.y = grid[:, None].expand(n, n)
        self.x = grid[None, :].expand(n, n)
        forcing = (
            -spec.forcing_amplitude
            * spec.forcing_wavenumber
            * torch.cos(spec.forcing_wavenumber * self.y)
        )
        self.forcing_hat = torch.fft.rfft2(forcing)
        self.body_force_x = spec.forcing_amplitude * torch.sin(spec.forcing_wavenumber * self.y)

    def velocity(self, w_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        psi = w_hat * self.inv_k2
        n = self.spec.resolution
        u = torch.fft.irfft2(1j * self.ky * psi, s=(n, n))
        v = torch.fft.irfft2(-1j * self.kx * psi, s=(n, n))
        return u, v

    def tendency(self, w_hat: torch.Tensor) -> torch.Tensor:
        """Dealiased −u·∇ω plus forcing, in Fourier space."""
        n = self.spec.resolution
        u, v = self.velocity(w_hat)
        wx = torch.fft.irfft2(1j * self.kx * w_hat, s=(n, n))
        wy = torch.fft.irfft2(1j * self.ky * w_hat, s=(n, n))
        return torch.fft.rfft2(-(u * wx + v * wy)) * self.dealias + self.forcing_hat

    def cfl(self, w_hat: torch.Tensor) -> float:
        u, v = self.velocity(w_hat.detach())
        return (
            float(torch.maximum(u.abs().max(), v.abs().max()))
            * self.dt
            / (2 * math.pi / self.spec.resolution)
        )

    def advance(
        self,
        w: torch.Tensor,
        steps: int,
        *,
        frame_every: int = 1,
        reynolds: torch.Tensor | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> torch.Tensor:
        """Integrate `steps` steps from vorticity w (…, n, n); returns the frames after every
        `frame_every` steps, shape (steps // frame_every, …, n, n). `reynolds` (shape (B,) for
        w of shape (B, n, n)) gives each field its own Reynolds number instead of the spec's.
        Differentiable: gradients flow through the steps (the learned forecaster trains so)."""
        w_hat = torch.fft.rfft2(w.to(self.device, self.dtype))
        linear = self.linear
        if reynolds is not None:
            nu = math.sqrt(self.spec.forcing_amplitude) / reynolds.to(self.device, self.dtype)
            linear = -nu.reshape(-1, 1, 1) * self.k2 - self.spec.drag
        half = 0.5 * self.dt * linear
        lhs, rhs = 1 - half, 1 + half
        previous = None
        frames = []
        for i in range(steps):
            if should_stop():
                raise Cancelled(w.numel() * i)  # site updates done: every field's sites, i steps
            current = self.tendency(w_hat)
            explicit = current if previous is None else 1.5 * current - 0.5 * previous
            w_hat = (rhs * w_hat + self.dt * explicit) / lhs
            previous = current
            if (i + 1) % frame_every == 0:
                if self.cfl(w_hat) > MAX_CFL or not bool(torch.isfinite(w_hat).all()):
                    raise ParameterError(
                        "dt",
                        f"CFL number above {MAX_CFL} at t = {(i + 1) * self.dt:.4g}; "
                        f"use a smaller dt than {self.dt:.4g}",
                    )
                frames.append(torch.fft.irfft2(w_hat, s=(self.spec.resolution,) * 2))
        return torch.stack(frames) if frames else w.new_zeros((0, *w.shape))

    def evolve(
        self, w: torch.Tensor, duration: float, *, should_stop: Callable[[], bool] = lambda: False
    ) -> torch.Tensor:
        """The state after `duration` time units (whole steps, rounded down, at least one)."""
        steps = max(1, int(duration / self.dt))
        return self.advance(w, steps, frame_every=steps, should_stop=should_stop)[-1]

    # diagnostics ------------------------------------------------------------------------------
    def kinetic_energy_density(self, w: torch.Tensor) -> torch.Tensor:
        u, v = self.velocity(torch.fft.rfft2(w.to(self.device, self.dtype)))
        return 0.5 * (u * u + v * v)

    def energy(self, w: torch.Tensor) -> torch.Tensor:
        """Domain-mean kinetic energy (as are the diagnostics below)."""
        return self.kinetic_energy_density(w).mean((-2, -1))

    def enstrophy(self, w: torch.Tensor) -> torch.Tensor:
        return 0.5 * (w.to(self.dtype) ** 2).mean((-2, -1))

    def injection(self, w: torch.Tensor) -> torch.Tensor:
        u, _ = self.velocity(torch.fft.rfft2(w.to(self.device, self.dtype)))
        return (self.body_force_x * u).mean((-2, -1))

    def dissipation(self, w: torch.Tensor) -> torch.Tensor:
        return 2 * self.spec.viscosity * self.enstrophy(w) + 2 * self.spec.drag * self.energy(w)


def exact_interval_spec(spec: FlowSpec, interval: float) -> tuple[FlowSpec, int]:
    """`spec` with the largest step no longer than its default that divides `interval` exactly,
    and the number of steps per interval: frames land exactly `interval` apart."""
    steps = math.ceil(interval / replace(spec, dt=0.0).time_step() - 1e-9)
    return replace(spec, dt=interval / steps), steps


def random_vorticity(
    resolution: int,
    seed: int,
    peak: float = 4.0,
    rms: float = 2.0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """A random initial vorticity from `seed`: Gaussian with spectrum ∝ k⁴ exp(−(k/peak)²), scaled
    to the given rms. Zero mean (the box has no net circulation)."""
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(resolution, d=1.0 / resolution)
    kk = np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    amp = kk**2 * np.exp(-0.5 * (kk / peak) ** 2)
    noise = np.fft.fft2(rng.normal(size=(resolution, resolution)))
    w = np.fft.ifft2(noise * amp).real
    w -= w.mean()
    return torch.as_tensor(w * rms / max(w.std(), 1e-300), dtype=dtype)


def taylor_green(
    resolution: int, k: int = 1, amplitude: float = 1.0, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """ω = 2k·A·cos(kx)·cos(ky): the Taylor–Green vortex; advection vanishes, so without forcing it
    decays exactly as exp(−(2νk² + α)t)."""
    g = torch.arange(resolution, dtype=dtype) * (2 * math.pi / resolution)
    return 2 * k * amplitude * torch.cos(k * g)[:, None] * torch.cos(k * g)[None, :]
