"""The physics forecaster against exact results: conservation, analytic decay, exact shifts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from idf.engine.errors import Cancelled, ParameterError
from idf.engine.forecast import TransportSpec, physics_forecast
from idf.kernels.transport import cfl_number, stable_dt, transport_step

EPS32 = 2.0**-24  # unit roundoff of float32


def _field(shape, dtype, seed=0):
    return (1.0 + np.random.default_rng(seed).random(shape)).astype(dtype)


@pytest.mark.parametrize("boundary", ["periodic", "zero-flux"])
def test_total_is_conserved_float64(boundary):
    u = _field((64, 64), np.float64)
    spec = TransportSpec(diffusivity=0.3, velocity=(0.4, -0.7), boundary=boundary)
    result = physics_forecast([u], 1000, spec)
    start = np.sum(u, dtype=np.float64)
    assert np.max(np.abs(result.totals - start)) / start <= 1e-10


@pytest.mark.parametrize("boundary", ["periodic", "zero-flux"])
def test_total_is_conserved_float32(boundary):
    # Bound: each step rounds every cell update once (relative error <= 2^-24 of the cell's
    # value), so for a positive field the total drifts by at most steps * 2^-24 relative even if
    # every rounding had the same sign. Measured: ~2e-8 periodic, ~2e-6 zero-flux (advection
    # piles values up at the downstream wall, where rounding is larger).
    steps = 1000
    u = _field((64, 64), np.float32)
    spec = TransportSpec(diffusivity=0.3, velocity=(0.4, -0.7), boundary=boundary)
    result = physics_forecast([u], steps, spec)
    start = np.sum(u, dtype=np.float64)
    assert np.max(np.abs(result.totals - start)) / start <= steps * EPS32


def test_sine_mode_decays_as_the_heat_equation_says():
    n, kappa = 64, 0.5
    k = 2 * math.pi / n
    x = np.arange(n)
    u0 = np.tile(np.sin(k * x), (8, 1))  # a sine along axis 1, constant along axis 0
    spec = TransportSpec(diffusivity=kappa)
    steps = 445
    result = physics_forecast([u0], steps, spec)
    t = steps * result.dt
    amplitude = 2 / n * np.sum(result.frames[-1][0] * np.sin(k * x))
    # 1) the implementation is exactly the scheme: per step the mode is multiplied by
    #    1 - dt * (4 kappa / h^2) sin^2(k h / 2)
    discrete = (1 - result.dt * 4 * kappa * math.sin(k / 2) ** 2) ** steps
    assert amplitude == pytest.approx(discrete, rel=1e-12)
    # 2) the scheme follows the PDE: exp(-kappa k^2 t), up to its truncation errors,
    #    spatial ~ kappa k^2 t (k h)^2 / 12 and temporal ~ t (kappa k^2)^2 dt / 2 in the exponent
    analytic = math.exp(-kappa * k**2 * t)
    lam = kappa * k**2
    bound = lam * t * k**2 / 12 + t * lam**2 * result.dt / 2  # = 1.86e-3 here
    assert abs(amplitude / analytic - 1) <= bound
    # and to leading order the signed error is exactly those two terms (they partly cancel:
    # the discrete Laplacian decays slower, forward Euler faster): -2.71e-4 here
    predicted = lam * t * k**2 / 12 - t * lam**2 * result.dt / 2
    assert amplitude / analytic - 1 == pytest.approx(predicted, rel=0.05)


@pytest.mark.parametrize("v", [1.0, -1.0])
def test_upwind_advection_at_cfl_one_is_an_exact_shift(v):
    u = torch.tensor(_field((6, 9), np.float64))
    out = transport_step(u, dt=1.0, spacing=(1.0, 1.0), diffusivity=0.0, velocity=(0.0, v))
    torch.testing.assert_close(out, torch.roll(u, int(v), 1), rtol=0, atol=1e-15)


@pytest.mark.parametrize("shape", [(50,), (12, 10), (6, 5, 7)])
@pytest.mark.parametrize("boundary", ["periodic", "zero-flux"])
def test_conservation_in_1d_2d_3d(shape, boundary):
    u = _field(shape, np.float64, seed=3)
    velocity = tuple(0.2 * (i + 1) * (-1) ** i for i in range(len(shape)))
    result = physics_forecast([u], 200, TransportSpec(diffusivity=0.1, velocity=velocity, boundary=boundary))
    assert result.totals == pytest.approx(np.sum(u), rel=1e-12)


@pytest.mark.parametrize("boundary", ["periodic", "zero-flux"])
def test_diffusion_obeys_the_maximum_principle(boundary):
    u = _field((32, 32), np.float64, seed=5)
    result = physics_forecast([u], 300, TransportSpec(diffusivity=0.25, boundary=boundary))
    assert result.frames.max() <= u.max() and result.frames.min() >= u.min()


def test_fixed_value_keeps_a_field_at_the_boundary_value_and_pulls_towards_it():
    g = 2.5
    flat = np.full((16, 16), g)
    spec = TransportSpec(diffusivity=0.2, velocity=(0.3, -0.1), boundary="fixed-value", boundary_value=g)
    np.testing.assert_allclose(physics_forecast([flat], 50, spec).frames[-1], g, rtol=1e-14)
    cold = np.zeros((16, 16))
    frames = physics_forecast([cold], 4000, TransportSpec(diffusivity=0.2, boundary="fixed-value", boundary_value=g)).frames
    assert np.abs(frames[-1] - g).max() < np.abs(frames[100] - g).max() < g  # relaxes to g
    assert frames[-1].max() <= g + 1e-12


def test_source_adds_exactly_its_integral():
    u = _field((16, 16), np.float64)
    s = np.full((16, 16), 0.01)
    result = physics_forecast([u], 10, TransportSpec(diffusivity=0.1, dt=0.5), source=s)
    expected = np.sum(u) + np.arange(1, 11) * 0.5 * np.sum(s)
    np.testing.assert_allclose(result.totals, expected, rtol=1e-13)


def test_cfl_limit():
    assert cfl_number(1.0, (1.0, 2.0), 0.5, (1.0, 0.0)) == pytest.approx(1.0 + 0.25 + 1.0)
    dt = stable_dt((1.0, 1.0), 0.25, (0.0, 0.0), cfl=1.0)
    assert dt == pytest.approx(1.0)
    with pytest.raises(ParameterError, match="unstable") as info:
        physics_forecast([np.ones((4, 4))], 1, TransportSpec(diffusivity=0.25, dt=1.01))
    assert info.value.parameter == "dt"


@pytest.mark.parametrize(
    "spec, parameter",
    [
        (TransportSpec(diffusivity=-1), "diffusivity"),
        (TransportSpec(diffusivity=math.nan), "diffusivity"),
        (TransportSpec(velocity=(1.0,)), "velocity"),
        (TransportSpec(dt=-1), "dt"),
        (TransportSpec(substeps=0), "substeps"),
        (TransportSpec(spacing=(1.0, 0.0)), "spacing"),
        (TransportSpec(boundary="open"), "boundary"),
    ],
)
def test_bad_parameters_are_named(spec, parameter):
    with pytest.raises(ParameterError) as info:
        physics_forecast([np.ones((4, 4))], 1, spec)
    assert info.value.parameter == parameter


def test_stops_when_asked():
    calls = iter(range(1000))
    with pytest.raises(Cancelled):
        physics_forecast([np.ones((8, 8))], 100, TransportSpec(diffusivity=0.1), should_stop=lambda: next(calls) >= 5)
