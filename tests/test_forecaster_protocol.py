"""The forecasters behind the `Forecaster` protocol, called directly (the server's own checks run
first and hide these paths from the service tests): the registry's refusals, the learned
forecaster's rules at their edges, and that `estimate` and `run` pass every request field through
to the engine functions they wrap (compared with calling those functions directly)."""

from __future__ import annotations

import numpy as np
import pytest

from idf.engine import models
from idf.engine.cost import LEARNED_WORK_WEIGHT, Cost
from idf.engine.errors import Cancelled, ParameterError
from idf.engine.forecast import nvp, physics, registry
from idf.engine.forecast.base import ForecastRequest

LEARNED = next(n for n in registry.names() if models.find(n).learned)


def _history(frames: int = 2, side: int = nvp.SIDE) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((side, side)).astype(np.float32) for _ in range(frames)]


def test_the_registry_refuses_what_is_not_a_forecaster_by_name():
    for name in ("no-such-model", models.denoisers()[0]):  # unknown, and a model of another task
        with pytest.raises(ParameterError) as e:
            registry.get(name)
        assert e.value.parameter == "model"
        assert str(e.value) == f"model: unknown forecaster {name!r}; available: {registry.names()}"
    assert isinstance(registry.get(physics.PHYSICS_MODEL), physics.Physics)
    assert isinstance(registry.get(LEARNED), nvp.Learned)


def _learned_refusal(**fields) -> ParameterError:
    request = ForecastRequest(**{"history": _history(), "steps": 1, "reynolds": 60.0, **fields})
    with pytest.raises(ParameterError) as e:
        registry.get(LEARNED).check(request)
    return e.value


def test_the_learned_forecasters_rules_at_their_edges():
    learned = registry.get(LEARNED)
    for members in (0, 1, nvp.MAX_MEMBERS):
        learned.check(ForecastRequest(_history(), 1, reynolds=60.0, members=members))
    e = _learned_refusal(members=nvp.MAX_MEMBERS + 1)
    assert e.parameter == "ensemble_members" and f"0..{nvp.MAX_MEMBERS}" in str(e)
    e = _learned_refusal(reynolds=None)
    assert e.parameter == "reynolds" and f"({nvp.RE_RANGE[0]:g} to {nvp.RE_RANGE[1]:g})" in str(e)
    mixed = [
        np.zeros((nvp.SIDE, nvp.SIDE), np.float32),
        np.zeros((nvp.SIDE, 2 * nvp.SIDE), np.float32),
    ]
    e = _learned_refusal(history=mixed)
    assert (e.parameter, e.reason) == ("history", "every frame must have the same shape")
    three = [np.zeros((nvp.SIDE, nvp.SIDE), np.float32)] * 2 + [np.zeros((8, 8), np.float32)]
    assert _learned_refusal(history=three).parameter == "history"  # three shapes, not only two
    e = _learned_refusal(steps=0)
    assert (e.parameter, e.reason) == ("steps", "must be >= 1, got 0")
    e = _learned_refusal(history=[])  # no frames: check_request's rule, counting zero of them
    assert e.parameter == "history" and str(e).endswith("got 0")
    assert _learned_refusal(boundary="zero-flux").parameter == "boundary"


def test_the_learned_estimate_and_run_pass_every_field_through():
    learned = registry.get(LEARNED)
    request = ForecastRequest(_history(), 2, reynolds=60.0, members=3, seed=7)
    expected = nvp.estimate((2, nvp.SIDE, nvp.SIDE), 2, 3)
    assert learned.estimate(request) == expected
    assert expected == Cost(expected.site_updates, expected.state_bytes, LEARNED_WORK_WEIGHT)
    model = models.load_forecaster(LEARNED, "cpu")
    direct = nvp.forecast(model, np.stack(request.history), 2, 60.0, members=3, seed=7)
    got = learned.run(request)
    np.testing.assert_array_equal(got.frames, direct.frames)  # members and seed reached it
    np.testing.assert_array_equal(got.stddev, direct.stddev)
    loads = []
    recording = nvp.Learned(LEARNED, lambda name, device: loads.append((name, device)) or model)
    recording.run(ForecastRequest(_history(), 1, reynolds=60.0, members=1))
    assert loads == [(LEARNED, "cpu")]  # no device asked: the CPU
    with pytest.raises(Cancelled):
        learned.run(request, should_stop=lambda: True)


def test_the_physics_forecaster_passes_every_field_through():
    p = registry.get(physics.PHYSICS_MODEL)
    u = np.random.default_rng(1).random((16, 16)).astype(np.float32)
    source = np.full((16, 16), 0.5, np.float32)
    fields = dict(diffusivity=0.1, velocity=(0.2, 0.0), dt=0.5, substeps=2, spacing=(1.0, 2.0),
                  boundary="fixed-value", boundary_value=0.25)  # fmt: skip
    request = ForecastRequest([u], 3, source=source, **fields)
    spec = physics.TransportSpec(**fields)  # written out: not through the code under test
    assert physics.Physics.spec(request) == spec
    assert p.estimate(request) == physics.estimate(u.shape, u.dtype, 3, spec)
    assert p.estimate(request) != physics.estimate(u.shape, np.dtype(np.float64), 3, spec)
    empty = ForecastRequest([], 3, diffusivity=0.1)
    assert p.estimate(empty) == physics.estimate(
        (0,), np.dtype(np.float64), 3, physics.TransportSpec(0.1)
    )
    direct = physics.physics_forecast([u], 3, spec, source=source)
    got = p.run(request)
    np.testing.assert_array_equal(
        got.frames, direct.frames
    )  # the source and every field reached it
    assert got.frame_interval == 1.0  # dt x substeps
    with pytest.raises(Cancelled):
        p.run(request, should_stop=lambda: True)
    with pytest.raises(ParameterError) as e:  # the source is checked with the rest
        p.check(ForecastRequest([u], 3, diffusivity=0.1, source=np.zeros((4, 4), np.float32)))
    assert e.value.parameter == "source"
