"""The vorticity solver's diagnostics and helpers (idf.engine.flows.navier_stokes) and the NVP forecaster's
pieces (idf.engine.forecast.nvp), each against an exact ground truth or the rule its docstring states.

- Diagnostics, from fields whose velocity is known in closed form (−∇²ψ = ω, u = ∂ψ/∂y,
  v = −∂ψ/∂x; axis 0 is y, axis 1 is x): ω = B cos(m y) has u = −(B/m) sin(m y), v = 0;
  ω = A cos(k x) has u = 0, v = (A/k) sin(k x). Hence the kinetic energy density pointwise, the
  domain means E = B²/(4m²) and Z = ⟨ω²⟩/2 = B²/4, the injection P = ⟨A_f sin(n y)·u⟩ = −A_f·B/2m
  when m = n (0 otherwise) and the dissipation 2νZ + 2αE. A batch of fields gives one value per
  field; a float32 field is computed in the solver's float64 (the same numbers as its float64
  copy); a field on another device is moved to the solver's (the "meta" device stands in for a GPU
  on the CPU suite: it checks where the arithmetic happens without computing).
- taylor_green: the docstring's ω = 2k·A·cos(kx)·cos(ky) pointwise, defaults k = 1, A = 1, and its
  velocity (ψ = ω/2k²) u = −A cos(kx) sin(ky), v = A sin(kx) cos(ky), E = A²/4.
- exact_interval_spec: the largest step no longer than the spec's default (the CFL-safe automatic
  step of dt = 0, whatever dt the spec carries) that divides the interval exactly, and the count.
- band_noise: every returned field has unit rms, zero mean, and its spectrum is the band
  0 < |k| < n/3 on both axes: every mode of the band present, nothing outside it; for sizes
  divisible by 3 or not, and any leading batch shape.
- nvp.estimate: work = steps × members × SIDE², state bytes growing by SIDE²·BYTES_PER_MEMBER_SITE
  a member and by four float32 frames a step, never raising (members at least 1, steps at least 0).
- save/load: scale, noise, metadata merged with `extra`, the extra tensors and the weights round
  trip; `load(path, device)` puts the model on `device`.
- NvpForecaster: noise 0 unless given (an ensemble without spread); `to` converts the network
  (positional and keyword arguments) and moves the coarse solver's operators with it, which
  stays float32 (the precision of the cost model's measurement, nvp.BYTES_PER_MEMBER_SITE).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from idf.engine.errors import Cancelled, ParameterError
from idf.engine.flows.navier_stokes import (
    FlowSpec,
    Solver,
    check,
    exact_interval_spec,
    random_vorticity,
    taylor_green,
)
from idf.engine.forecast import nvp
from idf.engine.unet import UNet

META = torch.device("meta")


def _grid(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)


def _shear_mode(n: int, amplitude: float) -> torch.Tensor:
    """ω = B cos(y) on n²: u = −B sin(y), v = 0, so max|u| = B, and no advection (u·∇ω = 0)."""
    return (amplitude * torch.cos(_grid(n)))[:, None].expand(n, n)


def _solver(n: int = 32, **kwargs) -> Solver:
    spec = FlowSpec(
        resolution=n, reynolds=50.0, drag=0.1, forcing_wavenumber=4, forcing_amplitude=1.5, **kwargs
    )
    return Solver(spec)


# ---------------------------------------------------------------------------------------------
# diagnostics


def test_diagnostics_of_a_shear_mode_equal_their_closed_forms():
    s = _solver()
    n, m, b, af = 32, 4, 1.7, 1.5  # m = the forcing wavenumber: the mode is fed by the force
    y = _grid(n)[:, None].expand(n, n)
    w = b * torch.cos(m * y)
    u = -(b / m) * torch.sin(m * y)
    # exact to rounding: the spectral velocity of a single resolved mode is exact; 1e-12 leaves
    # room for the FFTs' rounding (~1e-15 relative) and is far below any change of a factor
    assert torch.allclose(s.kinetic_energy_density(w), 0.5 * u * u, rtol=0, atol=1e-12)
    assert float(s.energy(w)) == pytest.approx(b * b / (4 * m * m), rel=1e-12)
    assert float(s.enstrophy(w)) == pytest.approx(b * b / 4, rel=1e-12)
    assert float(s.injection(w)) == pytest.approx(-af * b / (2 * m), rel=1e-12)
    nu, alpha = s.spec.viscosity, s.spec.drag
    assert float(s.dissipation(w)) == pytest.approx(
        2 * nu * b * b / 4 + 2 * alpha * b * b / (4 * m * m), rel=1e-12
    )


def test_diagnostics_of_a_cross_stream_mode_equal_their_closed_forms():
    s = _solver()
    n, k, a = 32, 3, 0.6
    x = _grid(n)[None, :].expand(n, n)
    w = a * torch.cos(k * x)
    v = (a / k) * torch.sin(k * x)  # u = 0: no work done by the x-directed force
    assert torch.allclose(
        s.kinetic_energy_density(w), 0.5 * v * v, rtol=0, atol=1e-12
    )  # rounding only
    assert float(s.energy(w)) == pytest.approx(a * a / (4 * k * k), rel=1e-12)
    assert float(s.enstrophy(w)) == pytest.approx(a * a / 4, rel=1e-12)
    assert abs(float(s.injection(w))) < 1e-14  # exactly 0 up to rounding of O(a) values


def test_diagnostics_of_a_batch_give_one_value_per_field():
    s = _solver()
    n = 32
    y = _grid(n)[:, None].expand(n, n)
    amps = (1.0, -2.0, 0.5)
    w = torch.stack([a * torch.cos(4 * y) for a in amps])
    for got, want in (
        (s.energy(w), [a * a / 64 for a in amps]),
        (s.enstrophy(w), [a * a / 4 for a in amps]),
        (s.injection(w), [-1.5 * a / 8 for a in amps]),
    ):
        assert got.shape == (3,)
        assert torch.allclose(
            got, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=0
        )  # rounding only


def test_a_float32_field_is_measured_in_the_solvers_float64():
    s = _solver()
    w32 = random_vorticity(32, 5, rms=3.0).float()
    w64 = w32.double()  # the same numbers, exactly
    for f in (s.kinetic_energy_density, s.energy, s.enstrophy, s.injection):
        got, want = f(w32), f(w64)
        assert got.dtype == torch.float64
        # the same float64 arithmetic on the same values: equal to rounding of float64 (1e-13);
        # a float32 computation would be off by ~1e-7 relative
        assert torch.allclose(got, want, rtol=1e-13, atol=1e-13 * float(want.abs().max()))


def test_a_field_on_another_device_is_moved_to_the_solvers():
    s = Solver(FlowSpec(resolution=16), device="meta")  # meta: device placement without arithmetic
    w = taylor_green(16)  # on the CPU
    assert s.kinetic_energy_density(w).device == META and s.kinetic_energy_density(w).shape == (
        16,
        16,
    )
    assert s.energy(w).device == META
    assert s.injection(w).device == META


# ---------------------------------------------------------------------------------------------
# taylor_green


def test_taylor_green_is_the_documented_vortex_with_its_exact_velocity():
    n, k, a = 32, 2, 1.5
    x, y = _grid(n)[None, :], _grid(n)[:, None]
    w = taylor_green(n, k, a)
    assert torch.allclose(
        w, 2 * k * a * torch.cos(k * x) * torch.cos(k * y), rtol=0, atol=1e-14
    )  # cos rounding
    u, v = Solver(FlowSpec(resolution=n)).velocity(torch.fft.rfft2(w))
    # the classical Taylor–Green velocity of amplitude A; 1e-12: FFT rounding of O(1) values
    assert torch.allclose(u, -a * torch.cos(k * x) * torch.sin(k * y), rtol=0, atol=1e-12)
    assert torch.allclose(v, a * torch.sin(k * x) * torch.cos(k * y), rtol=0, atol=1e-12)
    assert float(Solver(FlowSpec(resolution=n)).energy(w)) == pytest.approx(a * a / 4, rel=1e-12)


def test_taylor_green_defaults_are_k_1_and_amplitude_1():
    n = 16
    x, y = _grid(n)[None, :], _grid(n)[:, None]
    assert torch.allclose(
        taylor_green(n), 2 * torch.cos(x) * torch.cos(y), rtol=0, atol=1e-14
    )  # cos rounding
    assert taylor_green(n).dtype == torch.float64


# ---------------------------------------------------------------------------------------------
# exact_interval_spec


def test_an_interval_of_whole_default_steps_keeps_the_default_step():
    spec = FlowSpec(resolution=64, reynolds=75)
    default = spec.time_step()
    for m in (1, 5, 37):
        out, steps = exact_interval_spec(spec, m * default)
        assert steps == m  # not one more: the default step itself divides the interval
        assert out.dt == pytest.approx(default, rel=1e-12)  # m*d/m: rounding only


def test_the_step_is_the_largest_divisor_no_longer_than_the_default():
    spec = FlowSpec(resolution=48, reynolds=40)
    default = spec.time_step()
    for interval in (0.5, 1.0, 0.37, 5 * default * (1 + 1e-6), 5 * default * (1 - 1e-6)):
        out, steps = exact_interval_spec(spec, interval)
        assert steps * out.dt == pytest.approx(
            interval, rel=1e-12
        )  # divides exactly, up to rounding
        assert out.dt <= default * (1 + 1e-12)
        assert steps == 1 or interval / (steps - 1) > default  # one step fewer would be too long
        assert replace(out, dt=spec.dt) == spec  # nothing else changes


def test_the_default_is_the_automatic_step_whatever_dt_the_spec_carries():
    # "no longer than its default": the CFL-safe step of dt = 0, not a dt set on the spec
    spec = FlowSpec(resolution=32, reynolds=60)
    for dt in (1.0, 1e-4):
        assert exact_interval_spec(replace(spec, dt=dt), 0.5) == exact_interval_spec(spec, 0.5)


# ---------------------------------------------------------------------------------------------
# check: each refusal names its field and says the rule and the value, at the rule's exact edges

INF, NAN = float("inf"), float("nan")
TINY = 5e-324  # the smallest positive float


@pytest.mark.parametrize(
    "change, parameter, reason",
    [
        ({"resolution": 7}, "resolution", "must be even and >= 8, got 7"),
        ({"resolution": 6}, "resolution", "must be even and >= 8, got 6"),
        ({"resolution": 9}, "resolution", "must be even and >= 8, got 9"),
        ({"resolution": 33}, "resolution", "must be even and >= 8, got 33"),
        ({"reynolds": 0.0}, "reynolds", "must be finite and > 0, got 0.0"),
        ({"reynolds": -1.0}, "reynolds", "must be finite and > 0, got -1.0"),
        ({"reynolds": INF}, "reynolds", "must be finite and > 0, got inf"),
        ({"reynolds": NAN}, "reynolds", "must be finite and > 0, got nan"),
        ({"drag": -TINY}, "drag", "must be finite and >= 0, got -5e-324"),
        ({"drag": INF}, "drag", "must be finite and >= 0, got inf"),
        ({"drag": NAN}, "drag", "must be finite and >= 0, got nan"),
        ({"forcing_amplitude": -TINY}, "forcing_amplitude", "must be finite and >= 0, got -5e-324"),
        ({"forcing_amplitude": INF}, "forcing_amplitude", "must be finite and >= 0, got inf"),
        ({"forcing_amplitude": NAN}, "forcing_amplitude", "must be finite and >= 0, got nan"),
        ({"forcing_wavenumber": -1}, "forcing_wavenumber", "must be in [0, 10) at this resolution"),
        ({"forcing_wavenumber": 10}, "forcing_wavenumber", "must be in [0, 10) at this resolution"),
        (
            {"resolution": 12, "forcing_wavenumber": 4},
            "forcing_wavenumber",
            "must be in [0, 4) at this resolution",
        ),
        ({"dt": -TINY}, "dt", "must be finite and >= 0, got -5e-324"),
        ({"dt": INF}, "dt", "must be finite and >= 0, got inf"),
        ({"dt": NAN}, "dt", "must be finite and >= 0, got nan"),
    ],
)
def test_check_refuses_naming_the_field_the_rule_and_the_value(change, parameter, reason):
    spec = replace(FlowSpec(resolution=32), **change)
    for refuse in (check, Solver):  # the solver checks its spec before building anything
        with pytest.raises(ParameterError) as info:
            refuse(spec)
        assert (info.value.parameter, info.value.reason) == (parameter, reason)


@pytest.mark.parametrize(
    "change",
    [
        {
            "resolution": 8,
            "forcing_wavenumber": 1,
        },  # the smallest grid; its largest forcing (below 8 // 3 = 2)
        {"resolution": 10, "forcing_wavenumber": 0},  # even; no forcing at all
        {"reynolds": TINY},
        {"reynolds": 1e300},
        {"drag": 0.0},
        {"drag": 1e300},
        {"forcing_amplitude": 0.0},
        {"forcing_amplitude": 1e300},
        {"forcing_wavenumber": 9},  # resolution 32: the largest below 32 // 3 = 10
        {"dt": 0.0},
        {"dt": TINY},
    ],
)
def test_check_accepts_the_edges_of_each_rule(change):
    check(replace(FlowSpec(resolution=32), **change))


# ---------------------------------------------------------------------------------------------
# FlowSpec.time_step: dt = 0.25·dx / max(U, 1), U = A / (ν n² + α) the laminar Kolmogorov
# velocity (A when ν n² + α = 0: no forcing mode and no drag), unless the spec gives dt


@pytest.mark.parametrize(
    "change, velocity",
    [
        ({}, 2.0),  # A 1, n 4, Re 40: ν = 1/40, ν n² + α = 0.5
        ({"drag": 0.5}, 1 / 0.9),  # U between 1 and 2: max(U, 1) = U
        ({"drag": 1.9}, 1.0),  # U = 0.5 < 1: the unit velocity scale
        ({"forcing_wavenumber": 0}, 10.0),  # n = 0: U = A/α
        (
            {"forcing_wavenumber": 0, "drag": 0.0, "forcing_amplitude": 3.0},
            3.0,
        ),  # ν n² + α = 0: U = A
        ({"forcing_wavenumber": 0, "drag": 0.0, "forcing_amplitude": 0.5}, 1.0),
    ],
)
def test_the_automatic_step_follows_the_laminar_velocity(change, velocity):
    spec = replace(FlowSpec(resolution=64), **change)
    assert spec.time_step() == pytest.approx(0.25 * (2 * math.pi / 64) / velocity, rel=1e-15)
    assert replace(spec, dt=0.003).time_step() == 0.003


# ---------------------------------------------------------------------------------------------
# random_vorticity: Gaussian, power spectrum ∝ k⁴ exp(−(k/peak)²), zero mean, the rms asked for


@pytest.mark.parametrize("peak", [4.0, 2.5])
def test_random_vorticity_has_the_documented_spectrum(peak):
    # shell-averaged power over 64 seeds divided by the documented spectrum is flat in k: the slope
    # of its log against k² over the shells 1..10 measured |slope| <= 4e-4 (three seed sets, both
    # peaks), against the bound 0.1/peak² (6e-3 at peak 4); spectra that differ give 0.022 (peak 5
    # for 4) and 0.12 (exp(−3(k/peak)²)).
    n, seeds = 64, 64
    kwargs = {} if peak == 4.0 else {"peak": peak}  # 4 is the default
    fields = np.stack([random_vorticity(n, seed, **kwargs).numpy() for seed in range(seeds)])
    power = (np.abs(np.fft.fft2(fields)) ** 2).mean(0)
    k = np.fft.fftfreq(n, d=1.0 / n)
    shell = np.rint(np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)).astype(int)
    ks = np.arange(1, 11)
    p = np.array([power[shell == j].mean() for j in ks])
    # the shell mean of k⁴ exp(−(k/peak)²) over each shell's own |k| values, not at its integer radius
    kk = np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    model = np.array(
        [(kk[shell == j] ** 4 * np.exp(-((kk[shell == j] / peak) ** 2))).mean() for j in ks]
    )
    slope = np.polyfit(ks**2, np.log(p / model), 1)[0]
    assert abs(slope) < 0.1 / peak**2  # flat: the ratio to the documented spectrum is constant


def test_random_vorticity_is_zero_mean_with_the_rms_asked_for_in_the_dtype_asked_for():
    for peak, rms in ((4.0, 2.0), (0.3, 2.0), (8.0, 0.5)):  # peak 0.3: a field of raw rms << 1
        w = random_vorticity(32, 7, peak=peak, rms=rms)
        assert w.dtype == torch.float64
        assert float(w.std(unbiased=False)) == pytest.approx(rms, rel=1e-12)
        assert abs(float(w.mean())) < 1e-12 * rms
    w32 = random_vorticity(32, 7, dtype=torch.float32)
    assert w32.dtype == torch.float32
    assert torch.equal(w32, random_vorticity(32, 7).float())  # the same field, rounded
    assert torch.equal(random_vorticity(32, 7), random_vorticity(32, 7))  # the seed fixes it
    assert not torch.equal(random_vorticity(32, 7), random_vorticity(32, 8))


# ---------------------------------------------------------------------------------------------
# Solver operators


@pytest.mark.parametrize(
    "n", [24, 30, 32]
)  # 24, 30: n/3 is a wavenumber of the grid; 32: it is not
def test_the_tendency_is_dealiased_by_the_two_thirds_rule(n):
    # −u·∇ω keeps only |kx|, |ky| < n/3 (Orszag's rule): a field with every mode present gives a
    # nonlinear term with exact zeros at and beyond n/3 (the rfft2 of the product times the 0/1 mask)
    s = Solver(FlowSpec(resolution=n, forcing_wavenumber=2))
    w = torch.randn((n, n), generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    nonlinear = s.tendency(torch.fft.rfft2(w)) - s.forcing_hat
    ky = torch.fft.fftfreq(n, d=1.0 / n).abs()[:, None]
    kx = torch.fft.rfftfreq(n, d=1.0 / n)[None, :]
    kept = (ky < n / 3) & (kx < n / 3)
    assert bool((nonlinear[~kept.expand_as(nonlinear)] == 0).all())
    # the rest is there, but for the mean: u·∇ω = ∇·(uω) integrates to 0 on the periodic domain
    rest = kept & ~((ky == 0) & (kx == 0))
    assert float(nonlinear[rest.expand_as(nonlinear)].abs().min()) > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_uniform_vorticity_carries_no_velocity_however_large(dtype):
    # the k = 0 mode has no stream function (ψ̂ = ω̂/|k|² is set to 0 there, not divided by a
    # clamped |k|²); a uniform 1e6 on 32² sums to 1e9 in its k = 0 coefficient
    s = Solver(FlowSpec(resolution=32), dtype=dtype)
    u, v = s.velocity(torch.fft.rfft2(torch.full((32, 32), 1e6, dtype=dtype)))
    assert bool((u == 0).all()) and bool((v == 0).all())


def test_the_float64_solver_computes_its_operators_in_float64():
    s = Solver(FlowSpec(resolution=16))
    for op in (s.ky, s.kx, s.k2, s.inv_k2, s.linear):
        assert op.dtype == torch.float64
    # ν|k|² + α in float64: ν = 1/40 for A = 1, Re = 40 at |k|² = 2·7² = 98
    assert float(s.linear[7, 7]) == -(1.0 / 40.0) * 98 - 0.1


# ---------------------------------------------------------------------------------------------
# Solver.evolve: a shear mode in an unforced flow evolves exactly (no advection: u·∇ω = 0 for ω(y),
# v = 0), each Fourier mode multiplied per step by the Crank–Nicolson factor
# g = (1 + h)/(1 − h), h = dt·(−ν|k|² − α)/2 — an exact ground truth for whole steps.


def _shear(amplitude: float = 4.0, dt: float = 0.05) -> tuple[Solver, torch.Tensor, float]:
    spec = FlowSpec(
        resolution=32, reynolds=1.0, drag=0.1, forcing_wavenumber=0, forcing_amplitude=1.0, dt=dt
    )
    s = Solver(spec)
    h = 0.5 * dt * (-spec.viscosity * 1 - spec.drag)  # |k|² = 1 for cos(y)
    return s, _shear_mode(32, amplitude), (1 + h) / (1 - h)


def test_evolve_takes_whole_steps_rounded_down_and_at_least_one():
    s, w, g = _shear(amplitude=2.0)  # CFL 0.51: every state within the guard
    for duration, steps in [(0.4 * s.dt, 1), (1.5 * s.dt, 1), (2.5 * s.dt, 2), (10.5 * s.dt, 10)]:
        out = s.evolve(w, duration)
        torch.testing.assert_close(
            out, g**steps * w, rtol=1e-12, atol=1e-12
        )  # ~steps roundings of values <= 2


def test_advance_returns_every_step_by_default_or_every_frame_every_th():
    s, w, g = _shear(amplitude=2.0)
    out = s.advance(w, 4)
    assert out.shape == (4, 32, 32)
    for k in range(4):
        torch.testing.assert_close(out[k], g ** (k + 1) * w, rtol=1e-12, atol=1e-12)
    every_other = s.advance(w, 5, frame_every=2)  # after steps 2 and 4
    torch.testing.assert_close(
        every_other, torch.stack([g**2 * w, g**4 * w]), rtol=1e-12, atol=1e-12
    )


def test_advance_moves_the_field_to_the_solvers_device():
    # on "meta" (standing in for a GPU) the steps run without computing; no frame is taken, as a
    # frame's CFL check would read a number. A field left on the CPU would meet meta operators.
    s = Solver(FlowSpec(resolution=16), device=META)
    w = torch.randn((16, 16), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert s.advance(w, 2, frame_every=3).shape == (0, 16, 16)
    # and each field's Reynolds number with it
    batch = torch.stack([w, -w])
    assert s.advance(batch, 2, frame_every=3, reynolds=torch.tensor([40.0, 60.0])).shape == (
        0,
        2,
        16,
        16,
    )


def test_the_cfl_number_is_the_largest_velocity_component_times_dt_over_dx():
    # ω = B cos(y): u = −B sin(y), v = 0, so max|u| = B; ω = A cos(x): v = A sin(x), u = 0
    s, w, _ = _shear(amplitude=3.0)
    dx = 2 * math.pi / 32
    assert s.cfl(torch.fft.rfft2(w)) == pytest.approx(3.0 * s.dt / dx, rel=1e-12)
    both = w + 5.0 * torch.cos(_grid(32))[None, :]
    assert s.cfl(torch.fft.rfft2(both)) == pytest.approx(5.0 * s.dt / dx, rel=1e-12)


def test_advance_refuses_a_cfl_number_above_the_limit_naming_dt_the_time_and_the_step():
    s, w, _ = _shear()  # CFL 1.02 > 0.8 from the first step on
    with pytest.raises(ParameterError) as info:
        s.advance(w, 10)  # checked at every frame: the first, t = dt
    assert (info.value.parameter, info.value.reason) == (
        "dt",
        "CFL number above 0.8 at t = 0.05; use a smaller dt than 0.05",
    )
    with pytest.raises(ParameterError) as info:
        s.advance(w, 10, frame_every=3)  # the first frame is taken after 3 steps
    assert info.value.reason == "CFL number above 0.8 at t = 0.15; use a smaller dt than 0.05"


def test_a_cfl_number_of_exactly_the_limit_is_accepted():
    # no forcing, drag or viscosity (A = 0: ν = √A/Re = 0): the shear flow π cos(y) is steady and
    # its CFL number π·0.05/(2π/32) is 0.8 exactly, in floating point too (asserted)
    spec = FlowSpec(resolution=32, forcing_wavenumber=0, forcing_amplitude=0.0, drag=0.0, dt=0.05)
    s = Solver(spec)
    w = _shear_mode(32, math.pi)
    frames = s.advance(w, 3)
    assert [s.cfl(torch.fft.rfft2(f)) for f in frames] == [0.8] * 3
    torch.testing.assert_close(frames[-1], w, rtol=0, atol=1e-14)


def test_evolve_checks_the_cfl_number_of_the_state_it_returns_only():
    # max|u| = 4 (u = −4 sin y): CFL 4·0.05/(2π/32) = 1.02 at the start, over MAX_CFL = 0.8; ten
    # viscous steps (ν = 1, α = 0.1) bring it to 0.58. evolve returns the decayed state: the guard
    # looks at the frames returned (one here), as advance's docstring says, not at every step.
    s, w, g = _shear()
    assert s.cfl(torch.fft.rfft2(w)) > 0.8
    out = s.evolve(w, 10.5 * s.dt)
    assert s.cfl(torch.fft.rfft2(out)) < 0.8
    torch.testing.assert_close(out, g**10 * w, rtol=1e-12, atol=1e-12)
    with pytest.raises(
        ParameterError, match="CFL number above 0.8"
    ):  # every step a frame: refused at the first
        s.advance(w, 10)


def test_evolve_stops_when_asked_reporting_the_steps_done():
    s, w, _ = _shear()
    with pytest.raises(Cancelled) as info:
        s.evolve(w, 10.5 * s.dt, should_stop=lambda: True)
    assert info.value.site_updates == 0
    calls = iter(range(100))
    with pytest.raises(Cancelled) as info:
        s.evolve(
            w, 10.5 * s.dt, should_stop=lambda: next(calls) >= 3
        )  # stops before the fourth step
    assert info.value.site_updates == 3 * w.numel()


# ---------------------------------------------------------------------------------------------
# resample: exact for band-limited fields, at any sides, odd ones included


@pytest.mark.parametrize("n, side", [(16, 9), (9, 16), (15, 11), (10, 7)])
def test_resample_is_exact_for_band_limited_fields_at_odd_sides(n, side):
    def field(m: int) -> torch.Tensor:  # modes |k| <= 2 only: below both grids' Nyquist modes
        x, y = _grid(m)[None, :], _grid(m)[:, None]
        return 0.5 + torch.cos(2 * x + y) + torch.sin(x - 2 * y)

    out = nvp.resample(field(n), side)
    assert out.shape == (side, side)
    torch.testing.assert_close(out, field(side), rtol=0, atol=1e-13)  # float64 FFT rounding


def test_resample_takes_the_grid_from_the_last_axes_of_any_batch_shape():
    x, y = _grid(16)[None, :], _grid(16)[:, None]
    w = torch.cos(3 * x - y) + 0.5 * torch.sin(
        2 * y
    )  # modes |k| <= 3: kept exactly by 16 -> 24 -> 16
    batch = torch.stack([torch.stack([w, 2 * w, -w])] * 2)  # (2, 3, 16, 16)
    up = nvp.resample(batch, 24)
    assert up.shape == (2, 3, 24, 24)
    torch.testing.assert_close(nvp.resample(up, 16), batch, rtol=0, atol=1e-12)
    torch.testing.assert_close(up[1, 1], 2 * nvp.resample(w, 24), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# band_noise


@pytest.mark.parametrize(
    "shape", [(3, 12, 12), (2, 16, 16), (2, 3, 24, 24), (1, 30, 30), (20, 20), (2, 15, 15)]
)
def test_band_noise_is_unit_rms_and_fills_exactly_the_solvers_band(shape):
    n = shape[-1]
    x = nvp.band_noise(shape, torch.Generator().manual_seed(11))
    assert x.shape == shape
    x = x.double()
    rms = x.pow(2).mean((-2, -1)).sqrt()
    assert torch.allclose(
        rms, torch.ones_like(rms), rtol=0, atol=1e-5
    )  # each field; float32 rounding
    # zero mean: the vorticity of a periodic flow has none (no net circulation)
    assert float(x.mean((-2, -1)).abs().max()) < 1e-6  # float32 rounding of unit values
    ky = torch.fft.fftfreq(n, d=1.0 / n).abs()[:, None]
    kx = torch.fft.rfftfreq(n, d=1.0 / n)[None, :]
    band = (ky < n / 3) & (kx < n / 3) & ~((ky == 0) & (kx == 0))
    power = torch.fft.rfft2(x).abs().pow(2)
    total = float(power.sum())
    # outside the band: only float32 rounding (amplitude ~1e-7 relative, power ~1e-14)
    assert float(power[..., ~band].sum()) < 1e-10 * total
    inside = power[..., band]
    # every mode of the band present: |F|² of a Gaussian mode is exponential, below 1e-8 of the
    # mean with probability 1e-8; and no mode cut out of it (a cut mode has float32-rounding power)
    assert float(inside.min()) > 1e-8 * float(inside.mean())


# ---------------------------------------------------------------------------------------------
# estimate


def test_estimate_costs_the_documented_work_and_bytes():
    side2 = nvp.SIDE * nvp.SIDE
    frames = (3, nvp.SIDE, nvp.SIDE)
    one = nvp.estimate(frames, 0, 1)
    assert one.site_updates == 0
    assert (
        one.state_bytes == side2 * nvp.BYTES_PER_MEMBER_SITE + nvp.FIXED_BYTES
    )  # one member, no frames
    for steps, members in ((1, 1), (7, 1), (5, 3), (20, 16), (2, 64)):
        c = nvp.estimate(frames, steps, members)
        assert c.site_updates == steps * members * side2  # what the forecast reports
        assert isinstance(c.state_bytes, int)
        more_members, more_steps = (
            nvp.estimate(frames, steps, members + 1),
            nvp.estimate(frames, steps + 1, members),
        )
        assert more_members.state_bytes - c.state_bytes == side2 * nvp.BYTES_PER_MEMBER_SITE
        assert (
            more_steps.state_bytes - c.state_bytes == side2 * 4 * 4
        )  # four float32 frame copies a step
    assert (
        nvp.estimate(frames, -3, 0) == one
    )  # never raises: at least one member, no negative steps


# ---------------------------------------------------------------------------------------------
# the forecaster: checkpoints, defaults, devices


def _net() -> UNet:
    torch.manual_seed(0)
    return UNet(in_channels=3, out_channels=1, width=8, multipliers=(1, 2))


def test_save_and_load_round_trip_metadata_extra_and_tensors(tmp_path: Path):
    model = nvp.NvpForecaster(_net(), 2.5, 0.03, {"trained": "here", "steps": 4})
    with torch.no_grad():
        model.net.head[-1].weight.normal_()  # not the zero initialisation: the weights must travel
    path = tmp_path / "m.safetensors"
    extra_tensors = {"train.step": torch.tensor([7]), "raw.w": torch.arange(6.0).reshape(2, 3)}
    nvp.save(model, path, extra={"calibration": [1, 2]}, tensors=extra_tensors)
    back, tensors = nvp.load(path)
    assert back.scale == 2.5 and back.noise == 0.03
    assert back.metadata == {
        "trained": "here",
        "steps": 4,
        "calibration": [1, 2],
    }  # the model's and the extra
    assert set(tensors) == set(extra_tensors)
    assert all(torch.equal(tensors[k], extra_tensors[k]) for k in extra_tensors)
    a, b = model.state_dict(), back.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    nvp.save(model, path)  # no extra: the model's own metadata
    assert nvp.load(path)[0].metadata == {"trained": "here", "steps": 4}


def test_load_puts_the_model_on_the_device_asked_for(tmp_path: Path):
    path = tmp_path / "m.safetensors"
    nvp.save(nvp.NvpForecaster(_net(), 1.0), path)
    model, _ = nvp.load(path, device="meta")  # meta: a device other than the CPU, without a GPU
    assert all(p.device == META for p in model.parameters())
    assert model.coarse.device == META and model.coarse.k2.device == META


def test_a_forecaster_without_a_noise_runs_an_ensemble_without_spread():
    model = nvp.NvpForecaster(_net(), 2.0)
    assert model.noise == 0.0
    history = np.stack([random_vorticity(nvp.SIDE, s, rms=1.0).numpy() for s in (1, 2)])
    out = nvp.forecast(model, history, 1, 60.0, members=3, seed=4)
    assert float(np.abs(out.stddev).max()) < 1e-6  # identical members: zero up to float32 rounding
    noisy = nvp.forecast(model, history, 1, 60.0, members=3, seed=4, noise=0.05)
    assert (
        float(noisy.stddev.mean()) > 1e-3
    )  # the noise the default leaves out does spread the members


def test_to_converts_the_network_with_positional_and_keyword_arguments():
    for args, kwargs in (
        ((torch.float64,), {}),
        ((), {"dtype": torch.float64}),
        (("cpu", torch.float64), {}),
    ):
        model = nvp.NvpForecaster(_net(), 1.0)
        assert model.to(*args, **kwargs) is model
        assert all(p.dtype == torch.float64 for p in model.parameters())
        assert model.coarse.dtype == torch.float32 and model.coarse.device == torch.device("cpu")


def test_to_moves_the_coarse_solver_which_stays_float32():
    model = nvp.NvpForecaster(_net(), 1.0)
    spec = model.coarse.spec
    # the coarse solver computes in float32 whatever it is fed
    w = random_vorticity(nvp.SIDE // 2, 3, rms=1.0)  # float64
    assert model.coarse.advance(w, 2).dtype == torch.float32
    assert model.coarse.dtype == torch.float32
    model.to("meta")
    assert all(p.device == META for p in model.parameters())
    c = model.coarse
    # its working precision, to which it converts what it is fed (as above; meta cannot run a step)
    assert c.device == META and c.dtype == torch.float32 and c.spec == spec
    for op in (c.k2, c.inv_k2, c.dealias, c.linear, c.forcing_hat, c.body_force_x):
        assert op.device == META
    assert c.k2.dtype == torch.float32


# --- nvp.check_request: the model's own refusals, at their edges ---------------------------------------


def _history(frames: int | None = None, side: int | None = None, dtype=np.float32):
    return np.zeros((frames or nvp.HISTORY, side or nvp.SIDE, side or nvp.SIDE), dtype=dtype)


def _refused(history, reynolds):
    with pytest.raises(ParameterError) as e:
        nvp.check_request(history, reynolds)
    return e.value


def test_nvp_refuses_short_or_misshapen_histories_saying_what_it_got():
    re = 0.5 * (nvp.RE_RANGE[0] + nvp.RE_RANGE[1])
    nvp.check_request(_history(), re)  # exactly HISTORY frames of SIDE² is accepted
    e = _refused(_history(frames=nvp.HISTORY - 1), re)
    assert e.parameter == "history"
    assert (
        e.reason
        == f"needs at least {nvp.HISTORY} frames {nvp.INTERVAL} time units apart, got {nvp.HISTORY - 1}"
    )
    e = _refused(np.zeros((nvp.HISTORY, nvp.SIDE * nvp.SIDE), np.float32), re)
    assert e.parameter == "history" and e.reason.endswith("got an array of 2 axes")
    e = _refused(_history(side=nvp.SIDE // 2), re)
    assert e.parameter == "shape"
    assert (
        e.reason
        == f"the forecaster takes {nvp.SIDE}x{nvp.SIDE} vorticity frames, got {[nvp.SIDE // 2] * 2}"
    )


def test_nvp_accepts_the_trained_reynolds_range_inclusive_and_refuses_beyond():
    lo, hi = nvp.RE_RANGE
    for re in (lo, hi):
        nvp.check_request(_history(), re)
    for re in (float(np.nextafter(lo, -np.inf)), float(np.nextafter(hi, np.inf)), float("nan")):
        e = _refused(_history(), re)
        assert e.parameter == "reynolds"
        assert e.reason == f"must be in [{lo:g}, {hi:g}] (the trained range), got {re}"


def test_nvp_refuses_non_finite_or_non_real_last_frames_only():
    re = nvp.RE_RANGE[0]
    h = _history(frames=nvp.HISTORY + 1)
    h[0] = np.nan  # older than the frames the model reads: accepted
    nvp.check_request(h, re)
    for frame in range(1, nvp.HISTORY + 1):  # each of the last HISTORY frames is read
        bad = h.copy()
        bad[-frame, 3, 3] = np.inf
        e = _refused(bad, re)
        assert (e.parameter, e.reason) == ("history", "the last frames must be real and finite")
    e = _refused(_history().astype(np.complex64), re)
    assert (e.parameter, e.reason) == ("history", "the last frames must be real and finite")


# ---------------------------------------------------------------------------------------------
# NvpForecaster.forward: next = guess + scale · net(frames / scale, ln(Re/60)), the guess being the
# coarse solver's step resampled to SIDE. A stand-in network that answers its conditioning input
# shows what the network is given and how its output is combined, in one call or in chunks.


class _ConditionProbe(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))  # the forecaster reads its device from it

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return condition[:, None, None, None].expand(x.shape[0], 1, *x.shape[-2:])


def _coarse_guess(
    model: nvp.NvpForecaster, present: torch.Tensor, reynolds: torch.Tensor
) -> torch.Tensor:
    coarse = model.coarse.advance(
        nvp.resample(present, nvp.SIDE // 2),
        nvp.COARSE_STEPS,
        frame_every=nvp.COARSE_STEPS,
        reynolds=reynolds,
    )[-1]
    return nvp.resample(coarse, nvp.SIDE)


@pytest.mark.parametrize("batch", [3, nvp.NET_CHUNK + 1])  # one network call, and chunks
def test_forward_adds_scale_times_the_network_conditioned_on_log_re_over_60(batch):
    model = nvp.NvpForecaster(_ConditionProbe(), 2.0)
    frames = torch.stack([random_vorticity(nvp.SIDE, s, rms=1.0).float() for s in range(batch + 1)])
    previous, present = frames[:-1], frames[1:]
    reynolds = torch.linspace(nvp.RE_RANGE[0], nvp.RE_RANGE[1], batch)
    with torch.no_grad():
        out = model(previous, present, reynolds)
        expected = (
            _coarse_guess(model, present, reynolds)
            + 2.0 * torch.log(reynolds / 60.0)[:, None, None]
        )
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)  # float32 rounding of values ~ 1


def test_forward_honours_a_stop_between_network_chunks_only_when_there_are_several():
    model = nvp.NvpForecaster(_ConditionProbe(), 1.0)
    for batch, stops in ((nvp.NET_CHUNK, False), (nvp.NET_CHUNK + 1, True)):
        frames = torch.stack([random_vorticity(nvp.SIDE, 1, rms=1.0).float()] * batch)
        calls = iter(range(1000))
        # asked to stop once the coarse solver's COARSE_STEPS checks have passed: only a check
        # between chunks (before the first) can see it
        stop = lambda: next(calls) >= nvp.COARSE_STEPS  # noqa: E731, B023 - read within this iteration
        reynolds = torch.full((batch,), 60.0)
        with torch.no_grad():
            if stops:
                with pytest.raises(Cancelled):
                    model(frames, frames, reynolds, should_stop=stop)
            else:
                assert model(frames, frames, reynolds, should_stop=stop).shape == (
                    batch,
                    nvp.SIDE,
                    nvp.SIDE,
                )


def test_forward_checks_the_cfl_number_of_the_coarse_state_it_uses_only():
    # a shear flow 13 cos(y): no advection, so it only decays (ν = 1/35, α = 0.1) while the forcing
    # adds little; its coarse CFL number starts at 0.83, over MAX_CFL = 0.8, and is 0.78 after the
    # COARSE_STEPS steps. The guard looks at the state the guess is made from, as Solver.advance's
    # frames (a guard at every step would refuse it at the first).
    model = nvp.NvpForecaster(_ConditionProbe(), 1.0)
    w = _shear_mode(nvp.SIDE, 13.0)[None].float()
    reynolds = torch.tensor([35.0])
    coarse = nvp.resample(w, nvp.SIDE // 2)
    assert model.coarse.cfl(torch.fft.rfft2(coarse)) > 0.8
    with torch.no_grad():
        out = model(w, w, reynolds)
    torch.testing.assert_close(
        out, _coarse_guess(model, w, reynolds) + math.log(35 / 60), rtol=0, atol=1e-5
    )
    assert (
        model.coarse.cfl(torch.fft.rfft2(nvp.resample(out - math.log(35 / 60), nvp.SIDE // 2)))
        < 0.8
    )
    with pytest.raises(ParameterError, match="CFL number above 0.8"):
        model.coarse.advance(coarse, nvp.COARSE_STEPS, reynolds=reynolds)
