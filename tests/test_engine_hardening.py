"""Engine hardening (issue 12): cost estimates agree with what the engine reports, bad
parameters are ParameterErrors (never another exception, never NaN answers), and every long loop
stops after bounded work when asked (counted in checks and work units, never timed)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from idf.engine import models
from idf.engine.cost import Cost
from idf.engine.forecast import nvp
from idf.engine.forecast import physics as forecast
from idf.engine.proofs import metrics
from idf.engine.reconstruction import posterior as reconstruction
from idf.engine.sampling import boltzmann as sampling

SMALL = dict(shape=(6, 8), steps=5, count=3, seed=2)
SAMPLE_SPECS = {
    "langevin": sampling.SampleSpec("phi4", {}, sampler="langevin", **SMALL),
    "langevin-total": sampling.SampleSpec(
        "gaussian-free-field",
        {},
        sampler="langevin",
        constraints=(sampling.Constraint("total", 2.0, 0.0, 0.0),),
        **SMALL,
    ),
    "mala": sampling.SampleSpec("phi4", {}, sampler="mala", dtype="float64", **SMALL),
    "annealed-langevin": sampling.SampleSpec(
        "phi4", {}, sampler="annealed-langevin", max_temperature=3.0, **SMALL
    ),
    "replica-exchange-ladder": sampling.SampleSpec(
        "phi4", {}, sampler="replica-exchange", temperatures=(1.0, 1.5, 2.0), **SMALL
    ),
    "replica-exchange-geometric": sampling.SampleSpec(
        "phi4", {}, sampler="replica-exchange", max_temperature=4.0, **SMALL
    ),
    "gibbs": sampling.SampleSpec("ising", {}, sampler="gibbs", burn_in=2, **SMALL),
    "mala-3d": sampling.SampleSpec("phi4", {}, shape=(4, 4, 4), sampler="mala", steps=3, count=2),
    "reverse-diffusion": sampling.SampleSpec(
        "phi4", {}, shape=(32, 32), sampler="reverse-diffusion", steps=3, count=2
    ),
}


# cost estimates -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SAMPLE_SPECS))
def test_sample_estimate_is_the_work_reported(name):
    spec = SAMPLE_SPECS[name]
    cost = sampling.estimate(spec)
    out = sampling.sample(spec)
    assert isinstance(cost, Cost) and cost.site_updates == out.site_updates
    assert cost.state_bytes >= out.samples.nbytes


@pytest.mark.parametrize("boundary", ["periodic", "zero-flux"])
@pytest.mark.parametrize("shape", [(16,), (6, 8), (3, 4, 5)])
def test_forecast_estimate_is_the_work_reported(shape, boundary):
    u = np.random.default_rng(0).random(shape)
    spec = forecast.TransportSpec(
        diffusivity=0.1, velocity=(0.2,) * len(shape), substeps=3, boundary=boundary
    )
    cost = forecast.estimate(u.shape, u.dtype, 4, spec)
    result = forecast.physics_forecast([u], 4, spec, device="cpu")
    assert cost.site_updates == result.site_updates
    assert cost.state_bytes >= result.frames.nbytes


def test_nvp_estimate_is_the_work_reported():
    model = models.load_forecaster(models.NVP_FORECASTER)
    history = np.random.default_rng(0).normal(size=(2, nvp.SIDE, nvp.SIDE)).astype(np.float32)
    cost = nvp.estimate(history.shape, 2, 3)
    result = nvp.forecast(model, history, 2, 60.0, members=3)
    assert cost.site_updates == result.site_updates


def test_reconstruction_estimate_is_the_work_reported():
    model = models.load_denoiser(models.DEFAULT_DENOISER)
    mask = np.zeros((model.side, model.side), dtype=bool)
    mask[3, 4] = True
    values = np.where(mask, 1.0, 0.0)
    cost = reconstruction.estimate(mask.shape, 2, 3)
    out = reconstruction.reconstruct(model, values, mask, count=2, steps=3)
    assert cost.site_updates == out.evaluations * mask.size


def test_metric_estimates_are_pure_and_positive():
    assert metrics.estimate_compare((8, 8)) == Cost(64, 64 * metrics.COMPARE_BYTES_PER_SITE)
    assert metrics.estimate_sequence(3, (8, 8)).site_updates == 3 * 64


def test_estimates_never_raise_for_degenerate_counts():
    spec = forecast.TransportSpec(substeps=0)
    assert forecast.estimate((4, 4), "float32", -1, spec).site_updates == 0
    assert nvp.estimate((2, 64, 64), 0, 0).site_updates == 0
    assert reconstruction.estimate((32, 32), 0, 0).site_updates == 32 * 32


def test_estimate_refuses_what_sample_refuses():
    bad = dataclasses.replace(SAMPLE_SPECS["mala"], steps=0)
    with pytest.raises(sampling.ParameterError) as e:
        sampling.estimate(bad)
    assert e.value.parameter == "sampler.steps"
    with pytest.raises(sampling.ParameterError) as e:
        sampling.estimate(dataclasses.replace(SAMPLE_SPECS["reverse-diffusion"], count=0))
    assert e.value.parameter == "sample_count"


def test_huge_requests_are_estimated_without_allocating():
    spec = sampling.SampleSpec(
        "phi4",
        {},
        (4096, 4096),
        "replica-exchange",
        steps=10**6,
        count=1024,
        temperatures=tuple(1.0 + i for i in range(64)),
    )
    cost = sampling.estimate(spec)
    assert cost.site_updates == 4096 * 4096 * 1024 * 10**6 * 64
    assert cost.state_bytes > 1024 * 4096 * 4096 * 4 * 64


# bad numbers: a ParameterError naming the parameter, never another exception or NaN -----------
from idf.engine.errors import Diverged, ParameterError  # noqa: E402

BASE = dict(shape=(8, 8), steps=10, count=2)


@pytest.mark.parametrize(
    "spec, parameter",
    [
        # seen on main: ValueError inside the MALA kernel (INTERNAL)
        (
            sampling.SampleSpec(
                "phi4", {}, sampler="replica-exchange", temperatures=(1.0, float("nan")), **BASE
            ),
            "sampler.temperatures[1]",
        ),
        (
            sampling.SampleSpec(
                "phi4", {}, sampler="replica-exchange", max_temperature=1e308, **BASE
            ),
            "sampler.max_temperature",
        ),
        # seen on main: RuntimeError (overflow converting to float) inside the Langevin step
        (
            sampling.SampleSpec("phi4", {}, sampler="langevin", step_size=1e300, **BASE),
            "sampler.step_size",
        ),
        (
            sampling.SampleSpec("phi4", {}, sampler="mala", step_size=1e300, **BASE),
            "sampler.step_size",
        ),
        (
            sampling.SampleSpec("phi4", {}, sampler="langevin", temperature=float("inf"), **BASE),
            "sampler.temperature",
        ),
        (
            sampling.SampleSpec("phi4", {"kappa": float("nan")}, sampler="langevin", **BASE),
            "energy_model.parameters[kappa]",
        ),
        (
            sampling.SampleSpec("phi4", {"b": 1e300}, sampler="langevin", **BASE),
            "energy_model.parameters[b]",
        ),
        (
            sampling.SampleSpec(
                "phi4",
                {},
                sampler="langevin",
                **BASE,
                constraints=(sampling.Constraint("total", 1.0, float("inf"), 0.0),),
            ),
            "energy_model.constraints[0].tolerance",
        ),
        (
            sampling.SampleSpec(
                "phi4", {}, sampler="langevin", initial=np.full((8, 8), 1e300), **BASE
            ),
            "initial",
        ),
        (
            sampling.SampleSpec(
                "ising", {}, sampler="gibbs", external_field=np.full((8, 8), np.nan), **BASE
            ),
            "energy_model.external_field",
        ),
    ],
)
def test_absurd_numbers_are_parameter_errors(spec, parameter):
    for call in (sampling.estimate, sampling.sample):
        with pytest.raises(ParameterError) as e:
            call(spec)
        assert e.value.parameter == parameter


def test_nan_total_constraint_is_refused():
    """main: all-NaN samples with status OK (issue 12, item 9)."""
    spec = sampling.SampleSpec(
        "phi4",
        {},
        sampler="langevin",
        constraints=(sampling.Constraint("total", float("nan"), 0.0, 0.0),),
        **BASE,
    )
    with pytest.raises(ParameterError) as e:
        sampling.sample(spec)
    assert e.value.parameter == "energy_model.constraints[0].target"


def test_a_diverging_chain_stops_early_with_advice():
    """A hot unadjusted Langevin chain of phi^4 at a legal step size blows up: the engine stops
    within FINITE_CHECK_EVERY steps of it and says which step size to try."""
    spec = sampling.SampleSpec(
        "phi4", {}, (8, 8), "langevin", temperature=1e6, step_size=0.15, steps=100_000
    )
    with pytest.raises(Diverged) as e:
        sampling.sample(spec)
    assert e.value.parameter == "sampler.step_size" and "try step_size <=" in e.value.reason
    assert e.value.step < 100 and e.value.site_updates <= 64 * 100


def test_valid_runs_are_unchanged_by_the_checks():
    """The defaults stay inside the stability limit, so default runs keep their step size."""
    info = sampling.energy_models.info("phi4")
    params = sampling.energy_models.resolve_parameters(info, {})
    for ndim in (1, 2, 3):
        assert (
            sampling._default_step("langevin", info, params, ndim)
            == sampling.DEFAULT_STEP["langevin"]
        )
        assert sampling._default_step("mala", info, params, ndim) == sampling.DEFAULT_STEP["mala"]


@pytest.mark.parametrize("value", [1e308, -1e308, 3e38])
def test_metrics_of_huge_fields_never_overflow(value):
    """main: a conservation-strict proof of fields full of 1e308 was INTERNAL (overflow)."""
    from idf.engine.proofs import policies

    f = np.full((4, 4), value)
    steady = metrics.sequence_metrics([f, f, f])
    assert steady["total_drift"] == 0
    if value > 0:  # the entropy check applies to non-negative fields only
        assert policies.evaluate(policies.get("conservation-strict"), steady)[1]
    drift = metrics.sequence_metrics([f, 0.5 * f])
    assert drift["total_drift"] == pytest.approx(0.5)
    out = metrics.compare(f, -f)
    assert out["nrmse"] == pytest.approx(2.0) and out["energy_fidelity"] == pytest.approx(-1.0)
    assert all(
        v > 0
        for k, v in out.items()
        if k in metrics.LINEAR_METRICS and k != "fourier_rmse_mid" and k != "fourier_rmse_high"
    )
    assert not policies.evaluate(policies.get("reconstruction-default"), out)[
        1
    ]  # inf or huge: FAIL, never an error


def test_scaling_is_only_used_past_the_safe_magnitude():
    r = np.random.default_rng(0).random((8, 8)) + 0.5
    small, big = metrics.compare(r * 1.1, r), metrics.compare(r * 1.1e300, r * 1e300)
    assert small["nrmse"] == pytest.approx(big["nrmse"], rel=1e-12)
    assert big["rmse"] == pytest.approx(small["rmse"] * 1e300, rel=1e-12)


@pytest.mark.parametrize(
    "p, r, name",
    [
        (np.zeros((0, 4)), np.zeros((0, 4)), "prediction"),
        (np.array([1 + 1j, 2]), np.array([1 + 1j, 2]), "prediction"),
        (np.array(["a", "b"]), np.array(["a", "b"]), "prediction"),
        (np.ones(3), np.array([1.0, np.nan, 1.0]), "reference"),
        (np.ones(3), np.ones(4), "reference"),
        (np.ones((2, 2, 2, 2)), np.ones((2, 2, 2, 2)), "prediction"),
    ],
)
def test_compare_bad_inputs_are_parameter_errors(p, r, name):
    with pytest.raises(ParameterError) as e:
        metrics.compare(p, r)
    assert e.value.parameter == name


@pytest.mark.parametrize(
    "frames, name",
    [
        ([np.zeros(0), np.zeros(0)], "sequence[0]"),
        ([np.ones(2), np.array([1j, 1])], "sequence[1]"),
        ([np.ones(2), np.array([np.inf, 1])], "sequence[1]"),
        ([np.ones(2)], "sequence"),
    ],
)
def test_sequence_bad_inputs_are_parameter_errors(frames, name):
    with pytest.raises(ParameterError) as e:
        metrics.sequence_metrics(frames)
    assert e.value.parameter == name


# cancellation reaches inside every long loop ----------------------------------------------------
import threading  # noqa: E402

import torch  # noqa: E402

from idf.engine.errors import Cancelled  # noqa: E402
from idf.engine.flows import navier_stokes  # noqa: E402
from idf.engine.regimes import features as regimes  # noqa: E402
from idf.engine.sampling import reverse  # noqa: E402

# How these tests prove "stops after bounded work" without a clock: `should_stop` answers False
# to its first n-1 calls and True from the n-th on, n chosen to land inside the long loop (past
# the set-up, mid-step where a step is long). Then
#   - the n-th check raises Cancelled and no further check is reached (calls == n): the engine
#     does no more work once it has seen the flag;
#   - the work done before the n-th check, as the engine reports it, is n-1 units of the loop's
#     documented granularity (one step of all chains, one rung of a ladder, one denoiser chunk,
#     one solver substep): an engine that checks only between longer units (a whole ladder, a
#     whole U-Net batch, a whole run) reports more, or never reaches n checks and finishes (no
#     Cancelled: a failure);
#   - where a network runs, a forward hook counts the fields it evaluated between consecutive
#     checks, measured rather than reported: never more than one chunk.
# Work after the flag is therefore at most one unit whenever the flag is raised. The run is in a
# thread only so that an engine that ignores the flag fails after HANG_S instead of hanging.
HANG_S = 120.0


class _Stop:
    """should_stop(): False for calls 1..n-1, True from call n on. With `net` (a torch module),
    `between[i]` is the number of fields (batch rows) the net evaluated between check i and
    check i+1, and `after` what it evaluated after the last check."""

    def __init__(self, n: int, net: torch.nn.Module | None = None) -> None:
        self.n, self.calls, self.fields, self.between = n, 0, 0, []
        self._mark = 0
        self._hook = net.register_forward_pre_hook(self._count) if net is not None else None

    def _count(self, module, inputs) -> None:
        self.fields += int(inputs[0].shape[0])

    def __call__(self) -> bool:
        self.calls += 1
        if self.calls > 1:
            self.between.append(self.fields - self._mark)
        self._mark = self.fields
        return self.calls >= self.n

    @property
    def after(self) -> int:
        return self.fields - self._mark

    def close(self) -> None:
        if self._hook is not None:
            self._hook.remove()


def _stop_at(name: str, run, n: int, net: torch.nn.Module | None = None) -> tuple[Cancelled, _Stop]:
    """Run `run(should_stop)` with a _Stop(n); returns the Cancelled it raised and the _Stop."""
    stop = _Stop(n, net)
    result: dict = {}

    def target() -> None:
        try:
            run(stop)
            result["finished"] = True
        except Cancelled as e:
            result["cancelled"] = e
        except BaseException as e:  # noqa: BLE001 - reported below
            result["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    try:
        thread.start()
        thread.join(HANG_S)
        assert not thread.is_alive(), (
            f"{name} did not stop within {HANG_S:.0f} s ({stop.calls} checks so far)"
        )
    finally:
        stop.close()
    assert "cancelled" in result, (result, f"{stop.calls} checks")
    # the n-th check raised: no check (and no work) after the flag was seen
    assert stop.calls == n and stop.after == 0, (stop.calls, stop.after)
    print(
        f"\n{name}: Cancelled at check {n}, site_updates={result['cancelled'].site_updates}"
        + (f", net fields between checks <= {max(stop.between)}" if net is not None else "")
    )
    return result["cancelled"], stop


LONG = 10**6
SAMPLERS = {
    "langevin": sampling.SampleSpec("phi4", {}, (128, 128), "langevin", steps=LONG, count=8),
    "mala": sampling.SampleSpec("phi4", {}, (128, 128), "mala", steps=LONG, count=8),
    "annealed-langevin": sampling.SampleSpec(
        "phi4", {}, (128, 128), "annealed-langevin", max_temperature=3.0, steps=LONG, count=8
    ),
    "gibbs": sampling.SampleSpec("ising", {}, (128, 128), "gibbs", steps=LONG, count=8),
    # main: a step of a ladder ran to its end (11 s seen with thousands of rungs) and reported one
    # rung's work as the step's. 50 rungs: a step is 50 units, and the stop below lands inside the
    # second step.
    "replica-exchange": sampling.SampleSpec(
        "phi4",
        {},
        (64, 64),
        "replica-exchange",
        steps=LONG,
        count=4,
        temperatures=tuple(1.0 + 1e-3 * i for i in range(50)),
    ),
    "reverse-diffusion": sampling.SampleSpec(
        "phi4", {}, (32, 32), "reverse-diffusion", steps=10_000, count=64
    ),
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampling_stops_after_bounded_work(name):
    spec = SAMPLERS[name]
    sites = spec.count * 64 * 64 if name == "replica-exchange" else spec.count * 128 * 128
    if name == "replica-exchange":
        # checks: one before each step, one before each rung but the first. Check 53 is the one
        # before rung 2 of step 1: 50 + 2 rungs done, one rung (of all chains) per check
        n, unit, net = len(spec.temperatures) + 3, sites, None
    elif name == "reverse-diffusion":
        # one check before each denoiser evaluation of all 64 fields (64 <= reverse.CHUNK)
        denoiser = models.load_denoiser(
            models.DEFAULT_DENOISER, "cpu"
        )  # the instance generate() loads (cached)
        n, unit, net = 6, spec.count * denoiser.side * denoiser.side, denoiser.net
    else:
        n, unit, net = 8, sites, None  # one check before each step of all chains
    e, stop = _stop_at(
        name, lambda should_stop: sampling.sample(spec, should_stop=should_stop), n, net
    )
    assert e.site_updates == (n - 1) * unit < sampling.estimate(spec).site_updates
    if (
        name == "replica-exchange"
    ):  # stopped between rungs, inside a step (main: only between steps)
        assert e.site_updates % (sites * len(spec.temperatures)) != 0
    if net is not None:  # measured: one evaluation of the 64 fields between checks, never more
        assert max(stop.between) == spec.count and stop.fields == (n - 1) * spec.count


def _reconstruction_inputs():
    model = models.load_denoiser(models.DEFAULT_DENOISER)
    mask = np.zeros((model.side, model.side), dtype=bool)
    mask[::5, ::5] = True
    return model, np.where(mask, 1.0, 0.0), mask


def test_reconstruction_stops_after_bounded_work():
    model, values, mask = _reconstruction_inputs()
    n = 6  # one check before each denoiser evaluation of the 64 fields (64 <= reverse.CHUNK)
    e, stop = _stop_at(
        "reconstruction",
        lambda should_stop: reconstruction.reconstruct(
            model, values, mask, count=64, steps=10_000, should_stop=should_stop
        ),
        n,
        model.net,
    )
    assert (
        e.site_updates == (n - 1) * 64 * model.side * model.side
    )  # whole evaluations of every field
    assert max(stop.between) == 64 and stop.fields == (n - 1) * 64


def test_large_reconstruction_batches_stop_between_chunks():
    """count = 512 fields: one U-Net pass over all of them would be seconds no stop can interrupt;
    the denoiser runs in chunks of reverse.CHUNK and the stop lands between chunks (the work done
    is not a whole number of evaluations of every field)."""
    model, values, mask = _reconstruction_inputs()
    chunks = 512 // reverse.CHUNK
    n = chunks + 3  # one check before each chunk: check 11 is before chunk 2 of the 2nd evaluation
    e, stop = _stop_at(
        "reconstruction x512",
        lambda should_stop: reconstruction.reconstruct(
            model, values, mask, count=512, steps=10_000, should_stop=should_stop
        ),
        n,
        model.net,
    )
    per_field = model.side * model.side
    assert e.site_updates == (n - 1) * reverse.CHUNK * per_field
    assert e.site_updates % (per_field * 512) != 0
    # measured: the net never evaluated more than one chunk between two checks
    assert max(stop.between) == reverse.CHUNK and stop.fields == (n - 1) * reverse.CHUNK


def _nvp_inputs():
    model = models.load_forecaster(models.NVP_FORECASTER)
    history = navier_stokes.random_vorticity(nvp.SIDE, 3).float().numpy()[None].repeat(2, 0)
    return model, history


def test_nvp_forecast_stops_after_bounded_work():
    model, history = _nvp_inputs()
    # the unit that cannot be interrupted is one U-Net evaluation of the whole ensemble (splitting
    # the batch changes its floats at rounding level): 16 members is one NET_CHUNK. A step checks
    # once, then once per coarse solver step; check n is the 2nd coarse check of step 1.
    per_step_checks = 1 + nvp.COARSE_STEPS
    n = per_step_checks + 3
    e, stop = _stop_at(
        "nvp",
        lambda should_stop: nvp.forecast(
            model, history, 10_000, 60.0, members=16, should_stop=should_stop
        ),
        n,
        model.net,
    )
    assert (
        e.site_updates == 16 * nvp.SIDE * nvp.SIDE
    )  # step 0 done; the step in progress is not counted
    assert max(stop.between) == 16 and stop.fields == 16  # measured: one pass of the 16 members


def test_large_nvp_ensembles_stop_between_chunks():
    """64 members: the U-Net runs in chunks of nvp.NET_CHUNK members with a stop check between
    them, so the stop does not wait for a whole-ensemble pass."""
    model, history = _nvp_inputs()
    chunks = 64 // nvp.NET_CHUNK
    per_step_checks = 1 + nvp.COARSE_STEPS + chunks  # the step, its coarse steps, its chunks
    n = per_step_checks + 1 + nvp.COARSE_STEPS + 3  # before chunk 2 of step 1
    e, stop = _stop_at(
        "nvp x64",
        lambda should_stop: nvp.forecast(
            model, history, 10_000, 60.0, members=64, should_stop=should_stop
        ),
        n,
        model.net,
    )
    assert (
        e.site_updates == 64 * nvp.SIDE * nvp.SIDE
    )  # step 0 done; the step in progress is not counted
    # measured: never more than one chunk between two checks; step 0's 64 members and 2 chunks of step 1
    assert max(stop.between) == nvp.NET_CHUNK and stop.fields == 64 + 2 * nvp.NET_CHUNK


def test_physics_forecast_stops_after_bounded_work():
    u = np.random.default_rng(0).random((256, 256))
    # 100 frames of 100 substeps: checked only per frame, check 20 would come 19 frames (1900
    # substeps) in; not at all, the run ends without Cancelled
    spec = forecast.TransportSpec(diffusivity=0.1, velocity=(0.3, 0.1), substeps=100)
    n = 20  # one check before each solver substep
    e, _ = _stop_at(
        "physics-forecast",
        lambda should_stop: forecast.physics_forecast(
            [u], 100, spec, should_stop=should_stop, device="cpu"
        ),
        n,
    )
    assert e.site_updates == (n - 1) * u.size


def test_navier_stokes_stops_after_bounded_work():
    solver = navier_stokes.Solver(navier_stokes.FlowSpec(resolution=128, reynolds=40.0))
    w = navier_stokes.random_vorticity(128, 1)
    n = 20  # one check before each solver step
    e, _ = _stop_at(
        "navier-stokes",
        lambda should_stop: solver.advance(w, LONG, frame_every=LONG, should_stop=should_stop),
        n,
    )
    assert e.site_updates == (n - 1) * 128 * 128


def test_regime_features_stop_between_lags():
    """The recurrence search is O(T²): it checks once per lag (each lag one pass over half the
    window), after one check past the spectra. Check n lands on the 100th of 1500 lags; a search
    without per-lag checks reaches only 2 checks and runs to its end (no Cancelled: a failure)."""
    frames = (
        np.random.default_rng(0)
        .normal(size=(4000, regimes.FEATURE_SIDE, regimes.FEATURE_SIDE))
        .astype(np.float32)
    )
    n = 1 + 100
    e, _ = _stop_at(
        "regime-features",
        lambda should_stop: regimes.window_features(frames, 0.5, should_stop=should_stop),
        n,
    )
    assert (
        e.site_updates == len(frames) * regimes.FEATURE_SIDE**2
    )  # the window was read, as documented


def test_effective_sample_size_stops_between_chains():
    """One check per chain: check 1000 of 2000 chains raises. A loop checking every k > 2 chains
    reaches fewer than 1000 checks and runs to its end (no Cancelled: a failure)."""
    trace = np.random.default_rng(0).normal(size=(256, 2000))
    e, _ = _stop_at(
        "ess",
        lambda should_stop: sampling.effective_sample_size(trace, should_stop, site_updates=7),
        1000,
    )
    assert e.site_updates == 7  # the sampling work passed in, as documented


def test_every_cost_measurement_case_names_live_engine_functions():
    """`python -m idf.engine.cost` measures each path from code in strings; a module moved or a
    function renamed would leave them dead without any test failing. Each case's imports run and
    every `m.<name>` it uses exists (the measurement itself is minutes of RSS work, not a test)."""
    import ast

    from idf.engine import cost

    for name, code in cost._CASES.items():
        tree = ast.parse(code)
        ns: dict = {}
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                exec(compile(ast.Module([node], []), name, "exec"), ns)  # noqa: S102 - the module's own code
        used = {
            n.attr
            for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "m"
        }
        assert used and all(hasattr(ns["m"], a) for a in used), (
            name,
            sorted(a for a in used if not hasattr(ns["m"], a)),
        )


def test_cancelled_carries_a_work_count_and_an_optional_message():
    """Cancelled(site_updates) is what metering charges: a string there (training used to pass its
    message positionally) would reach the ledger; it is refused, and messages go by keyword."""
    from idf.engine.errors import Cancelled

    assert (
        Cancelled(np.int64(12)).site_updates == 12
        and str(Cancelled(12)) == "stopped after 12 site updates"
    )
    stopped = Cancelled(message="training stopped at step 3; resume with the same command")
    assert stopped.site_updates == 0 and "resume" in str(stopped)
    for bad in ("training stopped", -1, 1.5):
        with pytest.raises(TypeError):
            Cancelled(bad)
