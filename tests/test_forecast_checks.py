"""The physics forecaster (`idf.engine.forecast.physics`) as a caller sees it, beyond tests/test_transport.py.

Checked, each against a rule stated in the module, `predict.proto` or the transport docstring:
- every refusal names its field (`ParameterError.parameter`, what the servicer maps onto the request
  path) and says what was wrong, with the limit and the value given;
- the documented limits at their exact edges: 1 to 3 axes, CFL number exactly 1 accepted and one
  float above refused (the message giving the largest stable dt), substeps 1, dt 0 meaning the step
  at CFL number 0.9 (and, when nothing moves, the unit step: any step is then exact);
- the results against exact ground truth: frame_interval = dt x substeps (a constant source raises
  the total by s x volume x frame_interval per frame), site_updates = sites x steps x substeps,
  float32 in gives float32 frames computed in float32 (the explicit Euler recurrence in numpy
  float32), the fixed-value wall's flux 2 kappa (g - u) / h, the input never modified,
  compute_seconds inside the call's own wall interval;
- cancellation and divergence report the work done until they happened (`Cancelled.site_updates`,
  `Diverged.step` and `.site_updates`): a float32 field driven past the float32 maximum by a source
  is caught at the first finiteness check at or after the overflowing step (every
  FINITE_CHECK_EVERY solver steps and at every frame's end), found by the numpy float32 recurrence;
- the cost estimate: float32 half the bytes of float64, an unknown dtype costed as float64 (never
  raising), substeps 1 counted once, walls costed more than periodic boundaries.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from idf.engine.errors import Cancelled, Diverged, ParameterError
from idf.engine.forecast import physics as forecast
from idf.engine.forecast.physics import TransportSpec, physics_forecast
from idf.kernels.transport import cfl_number


def _refusal(history, steps=1, spec=TransportSpec(), **kwargs):
    with pytest.raises(ParameterError) as info:
        physics_forecast(history, steps, spec, device="cpu", **kwargs)
    return info.value


# refusals: the field named, the reason with the limit and the value -------------------------------
@pytest.mark.parametrize("shape, ndim", [((2, 2, 2, 2), 4), ((), 0)])
def test_a_grid_of_other_than_1_to_3_axes_is_refused_as_shape(shape, ndim):
    e = _refusal([np.ones(shape)])
    assert e.parameter == "shape"
    assert e.reason == f"the physics forecaster takes 1 to 3 axes, got {ndim}"


@pytest.mark.parametrize(
    "spec, parameter, reason",
    [
        (TransportSpec(spacing=(1.0, 0.0)), "spacing", "needs 2 finite values > 0, got [1.0, 0.0]"),
        (TransportSpec(diffusivity=-0.5), "diffusivity", "must be finite and >= 0, got -0.5"),
        (TransportSpec(velocity=(1.0,)), "velocity", "needs one component per axis (2), got 1"),
        (TransportSpec(velocity=(0.1, math.inf)), "velocity", "components must be finite"),
        (TransportSpec(velocity=(math.nan, 0.1)), "velocity", "components must be finite"),
        (TransportSpec(boundary_value=math.nan), "boundary_value", "must be finite"),
        (
            TransportSpec(boundary="fixed-value", boundary_value=-math.inf),
            "boundary_value",
            "must be finite",
        ),
        (TransportSpec(substeps=0), "substeps", "must be >= 1, got 0"),
        (TransportSpec(dt=-0.5), "dt", "must be finite and >= 0, got -0.5"),
    ],
)
def test_bad_transport_parameters_are_named_with_the_value(spec, parameter, reason):
    e = _refusal([np.ones((4, 4))], spec=spec)
    assert (e.parameter, e.reason) == (parameter, reason)


def test_an_unknown_boundary_is_refused_listing_the_known_ones():
    e = _refusal([np.ones((4, 4))], spec=TransportSpec(boundary="open"))
    assert e.parameter == "boundary"
    assert e.reason.startswith("must be one of")
    for name in ("periodic", "zero-flux", "fixed-value"):
        assert name in e.reason


def test_bad_history_steps_and_source_are_named():
    e = _refusal([])
    assert (e.parameter, e.reason) == ("history", "needs at least one frame")
    e = _refusal([np.ones((4, 4), dtype=np.int64)])
    assert (e.parameter, e.reason) == (
        "dtype",
        "the physics forecaster takes float32 or float64, got int64",
    )
    e = _refusal([np.ones((4, 4), dtype=np.float16)])
    assert (e.parameter, e.reason) == (
        "dtype",
        "the physics forecaster takes float32 or float64, got float16",
    )
    bad = np.ones((4, 4))
    bad[1, 2] = np.nan
    e = _refusal([bad])
    assert (e.parameter, e.reason) == ("history", "contains NaN or Inf")
    e = _refusal([np.ones((4, 4))], steps=0)
    assert (e.parameter, e.reason) == ("steps", "must be >= 1, got 0")
    e = _refusal([np.ones((4, 4))], source=np.ones((3, 4)))
    assert (e.parameter, e.reason) == ("source", "shape (3, 4) != field shape (4, 4)")
    source = np.zeros((4, 4))
    source[0, 0] = -np.inf
    e = _refusal([np.ones((4, 4))], source=source)
    assert (e.parameter, e.reason) == ("source", "contains NaN or Inf")


# the documented limits at their edges --------------------------------------------------------------
def test_cfl_number_exactly_one_is_accepted_and_one_float_above_is_refused():
    # Pure advection at C = v dt / h = 1 exactly (all values powers of two: the CFL number is
    # exactly 1.0): the upwind step is then the exact shift by one cell per step.
    u = np.random.default_rng(1).random((5, 8))
    result = physics_forecast([u], 3, TransportSpec(velocity=(0.0, 2.0), dt=0.5), device="cpu")
    assert result.cfl == 1.0
    for k in range(3):
        np.testing.assert_array_equal(result.frames[k], np.roll(u, k + 1, axis=1))
    # one float above: refused, naming dt, with the CFL number and the largest stable dt (0.5)
    e = _refusal([u], spec=TransportSpec(velocity=(0.0, 2.0), dt=math.nextafter(0.5, 1.0)))
    assert e.parameter == "dt"
    assert e.reason == "unstable: CFL number 1 > 1; the largest stable dt is 0.5"


def test_an_unstable_step_is_refused_with_the_largest_stable_dt():
    # 2-D diffusion, kappa = 0.2, h = 1: C = dt * 2 * (2 * 0.2) = 0.8 dt, so dt = 1.3 gives 1.04 and
    # the largest stable dt (C = 1) is 1 / 0.8 = 1.25
    e = _refusal([np.ones((4, 4))], spec=TransportSpec(diffusivity=0.2, dt=1.3))
    assert e.parameter == "dt"
    assert e.reason == "unstable: CFL number 1.04 > 1; the largest stable dt is 1.25"


def test_dt_zero_selects_the_step_at_cfl_number_0_9():
    # docs: C = dt * sum_a (2 kappa / h_a^2 + |v_a| / h_a); dt 0 selects the step with C = 0.9
    spacing, kappa, velocity = (0.5, 2.0), 0.1, (0.3, -0.7)
    rate = sum(2 * kappa / h**2 + abs(v) / h for h, v in zip(spacing, velocity))
    result = physics_forecast(
        [np.ones((4, 4))], 1, TransportSpec(kappa, velocity, spacing=spacing), device="cpu"
    )
    assert result.dt == pytest.approx(0.9 / rate, rel=1e-15)  # one division and a sum of 4 terms
    assert result.cfl == pytest.approx(0.9, rel=1e-15)
    assert cfl_number(result.dt, spacing, kappa, velocity) == result.cfl


def test_when_nothing_moves_dt_zero_is_the_unit_step_and_the_field_stays_put():
    # No diffusion, no velocity: every step is stable (C = 0) and exact, so "the largest stable
    # step" is unbounded; the forecaster then takes dt = 1 (its stated convention) and reports it.
    u = np.random.default_rng(2).random((3, 5))
    result = physics_forecast([u], 4, TransportSpec(substeps=3), device="cpu")
    assert (result.dt, result.frame_interval, result.cfl) == (1.0, 3.0, 0.0)
    for frame in result.frames:
        np.testing.assert_array_equal(frame, u)
    # with a source s the field grows by exactly s per unit time: 3 per frame here
    s = np.full((3, 5), 0.25)
    grown = physics_forecast([u], 2, TransportSpec(substeps=3), source=s, device="cpu")
    np.testing.assert_allclose(
        grown.frames[1], u + 2 * 3 * 0.25, rtol=0, atol=4e-16
    )  # 6 roundings of values <= 2.5


# results against exact ground truth -----------------------------------------------------------------
def test_frame_interval_is_dt_times_substeps_and_the_source_adds_its_integral_per_frame():
    # periodic diffusion conserves the total; a constant source s adds s * (area) * dt per solver
    # step, so s * area * frame_interval per frame
    spacing = (0.5, 2.0)
    u = np.random.default_rng(3).random((6, 4))
    u_before = u.copy()
    s = np.full(u.shape, 0.5)
    spec = TransportSpec(diffusivity=0.1, dt=0.25, substeps=4, spacing=spacing)
    result = physics_forecast([u], 5, spec, source=s, device="cpu")
    np.testing.assert_array_equal(u, u_before)  # the input is never modified
    assert result.dt == 0.25 and result.frame_interval == 1.0
    area = u.size * 0.5 * 2.0
    expected = np.sum(u) * 1.0 + np.arange(1, 6) * 0.5 * area * result.frame_interval
    # float64 rounding: 20 steps of 24 cell updates each rounding at ~3 ulp of values <= 11
    np.testing.assert_allclose(result.totals, expected, rtol=1e-13)
    assert result.site_updates == u.size * 5 * 4
    assert result.frames.shape == (5, 6, 4) and result.totals.dtype == np.float64


def test_totals_are_float64_sums_times_the_cell_volume_also_of_float32_frames():
    # 2^24 + 1 is 2^24 in float32: a float32 accumulation would drop the seven ones (2^24 + 6 or
    # less); the total is exact in float64, times the cell volume 0.5 x 4 = 2 (not 1, so a division
    # by the volume shows)
    u = np.ones((2, 4), np.float32)
    u[0, 0] = 2.0**24
    result = physics_forecast([u], 2, TransportSpec(spacing=(0.5, 4.0)), device="cpu")
    for frame in result.frames:  # nothing moves: the field stays put
        np.testing.assert_array_equal(frame, u)
    assert result.totals.tolist() == [(2**24 + 7) * 2.0] * 2


def test_a_float32_forecast_computes_in_float32_whatever_the_source_dtype():
    # Nothing moves (dt = 1): each step is u <- u + dt * s, the explicit Euler step, rounded to the
    # field's dtype. s = 1e-8 is below half an ulp of 1.0 in float32 (2^-24 = 6e-8), so the float32
    # field stays exactly 1 however many steps; a float64 computation would reach 1 + 2e-6.
    u = np.ones((4, 4), dtype=np.float32)
    s = np.full((4, 4), 1e-8)  # float64, as a caller may send it
    result = physics_forecast([u], 2, TransportSpec(substeps=100), source=s, device="cpu")
    assert result.frames.dtype == np.float32
    expected = u.copy()
    s32 = s.astype(np.float32)
    for _ in range(200):
        expected = expected + np.float32(1.0) * s32
    assert expected.dtype == np.float32 and np.all(expected == 1.0)
    np.testing.assert_array_equal(result.frames[1], expected)


def test_the_fixed_value_wall_feeds_its_value_in_at_the_boundary():
    # transport docstring: the value g sits on the boundary face, h/2 from the first cell, diffusive
    # flux -kappa (u[0] - g) / (h / 2). From u = 0, one step raises the end cells by
    # dt * 2 kappa g / h^2 and leaves the interior at 0.
    g, kappa, dt = 2.0, 0.25, 1.0
    result = physics_forecast(
        [np.zeros(6)],
        1,
        TransportSpec(kappa, dt=dt, boundary="fixed-value", boundary_value=g),
        device="cpu",
    )
    np.testing.assert_array_equal(result.frames[0], [1.0, 0, 0, 0, 0, 1.0])  # 2 * 0.25 * 2 = 1.0


def test_compute_seconds_lies_within_the_call():
    # not a speed bound: the time the forecast reports is part of the interval around the call
    t0 = time.perf_counter()
    result = physics_forecast([np.ones((8, 8))], 3, TransportSpec(diffusivity=0.1), device="cpu")
    t1 = time.perf_counter()
    assert isinstance(result.compute_seconds, float)
    assert 0.0 <= result.compute_seconds <= t1 - t0


# cancellation and divergence report the work done ------------------------------------------------
def test_cancelled_mid_frame_reports_the_solver_steps_done():
    # should_stop is asked before every solver step: turning true at its 6th call (index 5) stops
    # after 5 steps: frame 1's third substep (substeps 3) is the one not taken.
    u = np.ones((3, 4))
    calls = iter(range(1000))
    with pytest.raises(Cancelled) as info:
        physics_forecast(
            [u],
            4,
            TransportSpec(diffusivity=0.1, substeps=3),
            should_stop=lambda: next(calls) >= 5,
            device="cpu",
        )
    assert info.value.site_updates == 5 * u.size
    assert isinstance(info.value.site_updates, int)


def _overflow_step(u0, s, dt):
    """The solver step (1-based) at which the float32 recurrence u <- u + dt s first leaves the
    float32 range (nothing moving: the transport step reduces to this)."""
    u = u0.astype(np.float32)
    with np.errstate(over="ignore"):
        for n in range(1, 1000):
            u = u + np.float32(dt) * s.astype(np.float32)
            if not np.all(np.isfinite(u)):
                return n
    raise AssertionError("no overflow")


@pytest.mark.parametrize("s, substeps", [(1.5e37, 20), (3e37, 5), (1e37, 16), (2e37, 7)])
def test_an_overflow_is_caught_at_the_next_check_with_the_work_done(s, substeps):
    # Checks come every FINITE_CHECK_EVERY solver steps and at the end of every frame; the error
    # names the history (the values are too large), the frame at which it was detected and the
    # work done until then.
    u = np.zeros((3, 4), dtype=np.float32)
    source = np.full(u.shape, s)
    n = _overflow_step(u, source, 1.0)
    every = forecast.FINITE_CHECK_EVERY
    next_check = -(-n // every) * every
    frame_end = -(-n // substeps) * substeps
    detected = min(next_check, frame_end)
    assert detected <= 3 * substeps  # the cases overflow within the 3 frames asked for
    with pytest.raises(Diverged) as info:
        physics_forecast(
            [u], 3, TransportSpec(dt=1.0, substeps=substeps), source=source, device="cpu"
        )
    e = info.value
    frame = (detected - 1) // substeps
    assert (e.parameter, e.step, e.site_updates) == ("history", frame, detected * u.size)
    assert e.reason == (
        f"the forecast left the dtype's range at frame {frame}: the field's values (or the "
        f"source's) are too large; rescale them"
    )


def test_a_history_near_the_float32_maximum_diverges_in_its_first_step():
    # +-3e38 side by side: the diffusive flux kappa (u[i+1] - u[i]) / h needs 6e38, past float32's
    # 3.4e38, at the first step; it is caught at the end of frame 0 (one solver step).
    u = np.array([3e38, -3e38] * 4, dtype=np.float32)
    with pytest.raises(Diverged) as info:
        physics_forecast([u], 2, TransportSpec(diffusivity=0.25), device="cpu")
    assert (info.value.parameter, info.value.step, info.value.site_updates) == (
        "history",
        0,
        u.size,
    )
    assert isinstance(info.value, ParameterError)  # answered INVALID_ARGUMENT on `history`


# the cost estimate ---------------------------------------------------------------------------------
def test_estimate_counts_the_dtype_s_bytes_and_substeps_one_once():
    spec = TransportSpec(diffusivity=0.1, substeps=1)
    c32 = forecast.estimate((6, 8), np.float32, 5, spec)
    c64 = forecast.estimate((6, 8), "float64", 5, spec)
    assert 2 * c32.state_bytes == c64.state_bytes  # every buffer is one itemsize per site
    result = physics_forecast([np.ones((6, 8), dtype=np.float32)], 5, spec, device="cpu")
    assert c32.site_updates == result.site_updates == 6 * 8 * 5
    assert c32.state_bytes >= result.frames.nbytes


def test_estimate_costs_an_unknown_dtype_as_float64_without_raising():
    # "pure arithmetic that never raises": a dtype numpy does not know is costed at 8 bytes per
    # value, the widest the forecaster takes (the call itself then refuses the dtype)
    spec = TransportSpec(substeps=2)
    assert forecast.estimate((5, 5), "no-such-dtype", 3, spec) == forecast.estimate(
        (5, 5), "float64", 3, spec
    )


def test_estimate_charges_walls_more_working_buffers_than_periodic():
    # walls build ghost faces (torch.cat) on top of the periodic step's buffers: measured 7 buffers
    # periodic, 16.3 with walls (the estimate's comment, `python -m idf.engine.cost`)
    costs = {
        b: forecast.estimate((16, 16), "float64", 2, TransportSpec(boundary=b)).state_bytes
        for b in ("periodic", "zero-flux", "fixed-value")
    }
    frames = 2 * 16 * 16 * 8
    assert (
        frames + 7 * 16 * 16 * 8 <= costs["periodic"] < costs["zero-flux"] == costs["fixed-value"]
    )
    assert costs["zero-flux"] >= frames + 16.3 * 16 * 16 * 8


# where it runs --------------------------------------------------------------------------------------
def test_the_steps_run_on_the_device_asked_for_defaulting_to_cuda_when_available(monkeypatch):
    # docstring: `device` defaults to CUDA when available (the Triton kernel), else CPU; the state and
    # the source are both on it. On a CPU-only machine this checks the CPU default; on a GPU the
    # CUDA one (and an explicit "cuda").
    from idf.kernels import transport

    seen = []
    step = transport.transport_step

    def recording_step(u, **kwargs):
        seen.append(
            (u.device.type, kwargs["source"].device.type, kwargs["source"].dtype == u.dtype)
        )
        return step(u, **kwargs)

    monkeypatch.setattr(transport, "transport_step", recording_step)
    u, s = np.ones((4, 4), dtype=np.float32), np.zeros((4, 4))
    default = "cuda" if torch.cuda.is_available() else "cpu"
    physics_forecast([u], 1, TransportSpec(diffusivity=0.1), source=s)
    assert seen == [(default, default, True)]
    seen.clear()
    physics_forecast([u], 1, TransportSpec(diffusivity=0.1), source=s, device=default)
    assert seen == [(default, default, True)]
