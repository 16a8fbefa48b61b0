"""The CFD generator against exact results: Taylor–Green decay and the energy budget."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from idf.engine.errors import ParameterError
from idf.engine.navier_stokes import FlowSpec, Solver, random_vorticity, taylor_green


@pytest.mark.parametrize("k", [1, 3])
def test_taylor_green_decays_exactly(k):
    spec = FlowSpec(resolution=32, reynolds=50, forcing_amplitude=0.0, drag=0.1, dt=0.01)
    solver = Solver(spec)
    w0 = taylor_green(32, k=k)
    frames = solver.advance(w0, 200, frame_every=100)
    for i, t in enumerate((1.0, 2.0)):
        exact = w0 * math.exp(-(2 * spec.viscosity * k * k + spec.drag) * t)
        error = float((frames[i] - exact).abs().max() / w0.abs().max())
        print(f"Taylor-Green k={k} t={t}: max error {error:.1e}")
        # Crank–Nicolson's decay factor differs from exp by O((λ dt)^3) per step: observed ~1e-8
        assert error < 1e-6


def test_energy_budget_closes_and_balances_in_a_steady_state():
    spec = FlowSpec(resolution=32, reynolds=40)
    solver = Solver(spec)
    w = solver.evolve(random_vorticity(32, 3), 150)
    frames = solver.advance(w, int(150 / solver.dt), frame_every=1)
    e = solver.energy(frames).numpy()
    p = solver.injection(frames).numpy()
    d = solver.dissipation(frames).numpy()
    span = len(frames) * solver.dt
    # dE/dt = P - D: the energy change equals the integrated imbalance (trapezoid, O(dt^2))
    budget = np.trapezoid(p - d, dx=solver.dt)
    assert abs((e[-1] - e[0]) - budget) < 1e-3 * p.mean() * span
    imbalance = abs(p.mean() - d.mean()) / p.mean()
    print(f"time-averaged injection {p.mean():.5f}, dissipation {d.mean():.5f}, imbalance {imbalance:.2%}")
    # statistically steady: injection and dissipation agree on average (observed 0.05%)
    assert imbalance < 0.02


def test_laminar_state_is_the_exact_kolmogorov_solution():
    spec = FlowSpec(resolution=32, reynolds=5)
    solver = Solver(spec)
    w = solver.evolve(random_vorticity(32, 0), 100)
    n, nu = spec.forcing_wavenumber, spec.viscosity
    exact = -spec.forcing_amplitude * n * torch.cos(n * solver.y) / (nu * n * n + spec.drag)
    assert float((w - exact).abs().max() / exact.abs().max()) < 1e-6


def test_bad_parameters_are_refused():
    with pytest.raises(ParameterError, match="resolution"):
        Solver(FlowSpec(resolution=7))
    with pytest.raises(ParameterError, match="reynolds"):
        Solver(FlowSpec(reynolds=-1))
    with pytest.raises(ParameterError, match="dt"):
        Solver(FlowSpec(resolution=32, reynolds=200, dt=1.0)).advance(random_vorticity(32, 0), 50, frame_every=10)
