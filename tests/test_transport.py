"""The physics forecaster against exact results: conservation, analytic decay, exact shifts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from idf.engine.errors import Cancelled, ParameterError
from idf.engine.forecast.physics import TransportSpec, physics_forecast
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
    result = physics_forecast(
        [u], 200, TransportSpec(diffusivity=0.1, velocity=velocity, boundary=boundary)
    )
    assert result.totals == pytest.approx(np.sum(u), rel=1e-12)


@pytest.mark.parametrize("boundary", ["periodic", "zero-flux"])
def test_diffusion_obeys_the_maximum_principle(boundary):
    u = _field((32, 32), np.float64, seed=5)
    result = physics_forecast([u], 300, TransportSpec(diffusivity=0.25, boundary=boundary))
    assert result.frames.max() <= u.max() and result.frames.min() >= u.min()


def test_fixed_value_keeps_a_field_at_the_boundary_value_and_pulls_towards_it():
    g = 2.5
    flat = np.full((16, 16), g)
    spec = TransportSpec(
        diffusivity=0.2, velocity=(0.3, -0.1), boundary="fixed-value", boundary_value=g
    )
    np.testing.assert_allclose(physics_forecast([flat], 50, spec).frames[-1], g, rtol=1e-14)
    cold = np.zeros((16, 16))
    frames = physics_forecast(
        [cold], 4000, TransportSpec(diffusivity=0.2, boundary="fixed-value", boundary_value=g)
    ).frames
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
        physics_forecast(
            [np.ones((8, 8))],
            100,
            TransportSpec(diffusivity=0.1),
            should_stop=lambda: next(calls) >= 5,
        )


# --- advection: the exact solution of the upwind scheme, and of the PDE in the limit ---------------
#
# With kappa = 0 on a periodic grid one upwind step along an axis is the linear map
#     u[i] <- u[i] - C (u[i] - u[i-1])         (v > 0, C = v dt / h)
#     u[i] <- u[i] - |C| (u[i] - u[i+1])       (v < 0)
# so every Fourier mode e^{i theta i} is multiplied by g = 1 - |C| (1 - e^{-i sign(v) theta}) per
# step (several axes: the axes' terms add). After n steps it is the binomial law: the mass of a
# cell lands sign(v) j cells downstream with probability binom(n, j) |C|^j (1 - |C|)^(n-j), so
# the centroid moves exactly v t and the variance grows by exactly n |C| (1 - |C|) h^2.
# A downwind scheme (the upwind side flipped) or a flipped velocity misses all of these by O(1).


def _upwind_multiplier(shape, courants):
    """Per-step Fourier multiplier of the periodic upwind step; courants[a] = v_a dt / h_a (signed)."""
    g = np.ones(shape, dtype=complex)
    for axis, c in enumerate(courants):
        theta = 2 * np.pi * np.fft.fftfreq(shape[axis])
        theta = theta.reshape([-1 if a == axis else 1 for a in range(len(shape))])
        g = g - abs(c) * (1 - np.exp(-1j * np.sign(c) * theta))
    return g


def _exact_upwind(u0, courants, steps):
    return np.fft.ifftn(np.fft.fftn(u0) * _upwind_multiplier(u0.shape, courants) ** steps).real


@pytest.mark.parametrize("courant", [0.25, 0.5, 0.9, -0.25, -0.5, -0.9])
@pytest.mark.parametrize("axis", [0, 1])
def test_upwind_advection_is_its_exact_fourier_multiplier(courant, axis):
    shape, spacing, dt, steps = (12, 16), (0.5, 2.0), 0.1, 7
    courants = [0.0, 0.0]
    courants[axis] = courant
    velocity = tuple(c * h / dt for c, h in zip(courants, spacing))
    u0 = _field(shape, np.float64, seed=7)
    result = physics_forecast([u0], steps, TransportSpec(velocity=velocity, dt=dt, spacing=spacing))
    assert result.cfl == pytest.approx(abs(courant))
    # float64 rounding over 7 steps of O(1) values: observed <= 2e-15
    np.testing.assert_allclose(
        result.frames[-1], _exact_upwind(u0, courants, steps), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("courants", [(0.3, -0.45), (-0.6, 0.35), (0.2, 0.3, -0.4)])
def test_upwind_advection_along_several_axes_is_the_summed_multiplier(courants):
    shape = (10, 12, 6)[: len(courants)]
    spacing = (1.0, 0.25, 2.0)[: len(courants)]
    dt, steps = 0.05, 9
    velocity = tuple(c * h / dt for c, h in zip(courants, spacing))
    u0 = _field(shape, np.float64, seed=8)
    result = physics_forecast([u0], steps, TransportSpec(velocity=velocity, dt=dt, spacing=spacing))
    np.testing.assert_allclose(
        result.frames[-1], _exact_upwind(u0, courants, steps), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("courant", [0.25, 0.5, 0.9, -0.25, -0.5, -0.9])
def test_upwind_moves_a_bump_at_exactly_v_and_spreads_it_as_the_binomial_law(courant):
    n, h, dt, steps = 400, 0.5, 0.2, 100
    v = courant * h / dt
    x = np.arange(n) * h
    u0 = np.exp(-0.5 * ((x - x[n // 2]) / (3 * h)) ** 2)  # a bump 3 cells wide mid-grid
    u = physics_forecast([u0], steps, TransportSpec(velocity=(v,), dt=dt, spacing=(h,))).frames[-1]
    # it travels at most 90 cells and widens to ~6: it never reaches the wrap (its tail there is
    # below 1e-300), so plain moments on the grid are the binomial law's moments
    mass0, mass = u0.sum(), u.sum()
    mean0, mean = (x * u0).sum() / mass0, (x * u).sum() / mass
    var0, var = ((x - mean0) ** 2 * u0).sum() / mass0, ((x - mean) ** 2 * u).sum() / mass
    t = steps * dt
    assert mass == pytest.approx(mass0, rel=1e-13)
    assert mean - mean0 == pytest.approx(v * t, rel=1e-10)  # 50 cells for |C| = 0.5
    assert var - var0 == pytest.approx(steps * abs(courant) * (1 - abs(courant)) * h * h, rel=1e-9)
    # and the shape is the binomial stencil applied to u0
    s = int(np.sign(courant))
    stencil = np.zeros(n)
    for j in range(steps + 1):
        weight = math.comb(steps, j) * abs(courant) ** j * (1 - abs(courant)) ** (steps - j)
        stencil += weight * np.roll(u0, s * j)
    np.testing.assert_allclose(u, stencil, rtol=0, atol=1e-13)


@pytest.mark.parametrize("courant", [0.25, 0.5, 0.9])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_upwind_advection_converges_to_exact_translation_at_first_order(courant, sign):
    # sin(2 pi x) on [0, 1) carried at v = ±1 to t ~ 0.25. The scheme's leading error is its
    # numerical diffusion kappa_num = |v| h (1 - C) / 2 (modified equation), so the amplitude
    # falls short by 1 - exp(-kappa_num k^2 t); its dispersion is O(h^2) and vanishes at C = 1/2.
    errors = []
    for n in (100, 200):
        h = 1.0 / n
        dt = courant * h
        steps = round(0.25 / dt)
        t = steps * dt
        x = np.arange(n) * h
        u = physics_forecast(
            [np.sin(2 * np.pi * x)], steps, TransportSpec(velocity=(sign,), dt=dt, spacing=(h,))
        ).frames[-1]
        error = np.abs(u - np.sin(2 * np.pi * (x - sign * t))).max()
        predicted = 1 - math.exp(-h * (1 - courant) / 2 * (2 * np.pi) ** 2 * t)
        # observed error/predicted - 1 <= 1.6e-4 (the O(h^2) dispersion and O(kappa_num^2) terms)
        assert error == pytest.approx(predicted, rel=0.01)
        errors.append(error)
    assert errors[0] / errors[1] == pytest.approx(2.0, rel=0.02)  # first order: observed 1.98-1.99
