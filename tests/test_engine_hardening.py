"""Engine hardening (issue 12): cost estimates agree with what the engine reports, bad
parameters are ParameterErrors (never another exception, never NaN answers), and every long loop
stops promptly when asked."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from idf.engine import forecast, metrics, models, nvp, reconstruction, sampling
from idf.engine.cost import Cost

SMALL = dict(shape=(6, 8), steps=5, count=3, seed=2)
SAMPLE_SPECS = {
    "langevin": sampling.SampleSpec("phi4", {}, sampler="langevin", **SMALL),
    "langevin-total": sampling.SampleSpec("gaussian-free-field", {}, sampler="langevin",
                                          constraints=(sampling.Constraint("total", 2.0, 0.0, 0.0),), **SMALL),
    "mala": sampling.SampleSpec("phi4", {}, sampler="mala", dtype="float64", **SMALL),
    "annealed-langevin": sampling.SampleSpec("phi4", {}, sampler="annealed-langevin", max_temperature=3.0, **SMALL),
    "replica-exchange-ladder": sampling.SampleSpec("phi4", {}, sampler="replica-exchange", temperatures=(1.0, 1.5, 2.0), **SMALL),
    "replica-exchange-geometric": sampling.SampleSpec("phi4", {}, sampler="replica-exchange", max_temperature=4.0, **SMALL),
    "gibbs": sampling.SampleSpec("ising", {}, sampler="gibbs", burn_in=2, **SMALL),
    "mala-3d": sampling.SampleSpec("phi4", {}, shape=(4, 4, 4), sampler="mala", steps=3, count=2),
    "reverse-diffusion": sampling.SampleSpec("phi4", {}, shape=(32, 32), sampler="reverse-diffusion", steps=3, count=2),
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
    spec = forecast.TransportSpec(diffusivity=0.1, velocity=(0.2,) * len(shape), substeps=3, boundary=boundary)
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
    spec = sampling.SampleSpec("phi4", {}, (4096, 4096), "replica-exchange", steps=10**6, count=1024,
                               temperatures=tuple(1.0 + i for i in range(64)))
    cost = sampling.estimate(spec)
    assert cost.site_updates == 4096 * 4096 * 1024 * 10**6 * 64
    assert cost.state_bytes > 1024 * 4096 * 4096 * 4 * 64
