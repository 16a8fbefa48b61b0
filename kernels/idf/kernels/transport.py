"""Conservative finite-volume step of the advection-diffusion equation

    du/dt + div(v u) = div(kappa grad u) + s

on a regular grid of 1 to 3 axes, explicit Euler in time, first-order upwind advection and
central diffusion, written in flux form: every face flux leaves one cell and enters its
neighbour, so with periodic or zero-flux boundaries the spatial total changes only by the source
(to rounding).

Face fluxes along axis a with spacing h (F > 0 flows towards +a):

    F[i+1/2] = v * (u[i] if v >= 0 else u[i+1])  -  kappa * (u[i+1] - u[i]) / h

Boundaries:
    periodic     faces wrap around;
    zero-flux    boundary-face flux is 0 (nothing advects or diffuses through walls);
    fixed-value  a Dirichlet value g sits on the boundary face, h/2 from the first cell centre:
                 diffusive flux -kappa (u[0] - g) / (h/2); upwind advection brings g in on
                 inflow and takes u out on outflow.

Stability (positivity of the explicit update) needs the CFL number
    C = dt * sum_a (2 kappa / h_a^2 + |v_a| / h_a)  <=  1.

Today this op has the torch implementation only; the Triton kernel arrives with the kernels work
and this module's `transport_step` will dispatch CUDA tensors to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

BOUNDARIES = ("periodic", "zero-flux", "fixed-value")


def cfl_number(
    dt: float, spacing: Sequence[float], diffusivity: float, velocity: Sequence[float]
) -> float:
    """C = dt * sum_a (2 kappa / h_a^2 + |v_a| / h_a); the step is stable for C <= 1."""
    rate = sum(2.0 * diffusivity / h**2 + abs(v) / h for h, v in zip(spacing, velocity))
    return dt * rate


def stable_dt(
    spacing: Sequence[float],
    diffusivity: float,
    velocity: Sequence[float],
    cfl: float = 0.9,
) -> float:
    """The time step whose CFL number is `cfl`; infinite when nothing moves."""
    rate = cfl_number(1.0, spacing, diffusivity, velocity)
    return cfl / rate if rate > 0 else float("inf")


def _face_fluxes(
    u: torch.Tensor,
    axis: int,
    h: float,
    kappa: float,
    v: float,
    boundary: str,
    g: float,
) -> torch.Tensor:
    """Fluxes through the n+1 faces of `axis` (n faces when periodic: face i is i+1/2)."""
    if boundary == "periodic":
        right = torch.roll(u, -1, axis)
        upwind = u if v >= 0 else right
        return v * upwind - kappa * (right - u) / h
    n = u.shape[axis]
    left_cells = u.narrow(axis, 0, n - 1)
    right_cells = u.narrow(axis, 1, n - 1)
    upwind = left_cells if v >= 0 else right_cells
    interior = v * upwind - kappa * (right_cells - left_cells) / h
    first = u.narrow(axis, 0, 1)
    last = u.narrow(axis, n - 1, 1)
    if boundary == "zero-flux":
        zero = torch.zeros_like(first)
        return torch.cat([zero, interior, zero], dim=axis)
    # fixed-value: the boundary value g sits on the boundary faces
    inflow_left = v * (g if v >= 0 else first) - kappa * (first - g) / (h / 2)
    outflow_right = v * (last if v >= 0 else g) - kappa * (g - last) / (h / 2)
    return torch.cat([inflow_left, interior, outflow_right], dim=axis)


def transport_step_reference(
    u: torch.Tensor,
    *,
    dt: float,
    spacing: Sequence[float],
    diffusivity: float,
    velocity: Sequence[float],
    boundary: str = "periodic",
    boundary_value: float = 0.0,
    source: torch.Tensor | None = None,
) -> torch.Tensor:
    """One explicit step, torch ops only (the reference every other implementation matches)."""
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    divergence = torch.zeros_like(u)
    for axis, (h, v) in enumerate(zip(spacing, velocity)):
        if diffusivity == 0.0 and v == 0.0:
            continue
        flux = _face_fluxes(u, axis, h, diffusivity, v, boundary, boundary_value)
        if boundary == "periodic":
            divergence += (flux - torch.roll(flux, 1, axis)) / h
        else:
            n = u.shape[axis]
            divergence += (flux.narrow(axis, 1, n) - flux.narrow(axis, 0, n)) / h
    out = u - dt * divergence
    if source is not None:
        out = out + dt * source
    return out


def transport_step(u: torch.Tensor, **kwargs: object) -> torch.Tensor:
    """One conservative transport step (see the module docstring for the scheme and arguments).

    Dispatch: every device runs the torch implementation for now.
    """
    return transport_step_reference(u, **kwargs)  # type: ignore[arg-type]
