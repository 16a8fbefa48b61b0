"""Reconstruct and reverse-diffusion Sample over a real server with the shipped checkpoint:
answers that honour the observations and constraints, reproducibility, and bad input."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from idf.client import Client, InvalidArgumentError, from_field
from idf.engine.flows import fieldsets
from idf.v1 import diffusion_pb2 as d


@pytest.fixture(scope="module")
def held_out():
    rng = np.random.default_rng(99)
    truth = fieldsets.generate("plume", rng.integers(*fieldsets.HELD_OUT_SEEDS, size=1))[0]
    return truth, fieldsets.random_mask(rng, 32, 0.1)


def test_reconstruct_honours_observations_and_is_reproducible(client: Client, held_out):
    truth, mask = held_out
    out = client.reconstruct(truth, mask, sample_count=4, seed=3, return_samples=True)
    mean, std = out.mean, out.stddev
    assert mean.shape == std.shape == (32, 32) and len(out.samples) == 4
    # exact observations pin every sample at the observed sites (float32 rounding)
    np.testing.assert_allclose(mean[mask], truth[mask], atol=1e-4)
    assert std[mask].max() < 1e-4 and std[~mask].mean() > std[mask].mean()
    assert np.linalg.norm(mean - truth) < np.linalg.norm(truth)  # better than guessing zero
    again = client.reconstruct(truth, mask, sample_count=4, seed=3)
    assert (
        np.array_equal(again.mean, out.mean) and again.raw.mean.data == out.raw.mean.data
    )  # bit for bit
    assert out.usage.site_updates == 4 * (2 * 32 - 1) * 32 * 32


def test_reconstruct_from_observation_list_equals_mask_form(client: Client, held_out):
    truth, mask = held_out
    obs = [
        d.Observation(index=[int(i), int(j)], value=float(truth[i, j]))
        for i, j in np.argwhere(mask)
    ]
    listed = client.call(
        client.diffusion_stub.Reconstruct,
        d.ReconstructRequest(shape=[32, 32], observations=obs, sample_count=2, seed=1),
    )
    masked = client.reconstruct(truth, mask, sample_count=2, seed=1)
    np.testing.assert_allclose(from_field(listed.mean), masked.mean, atol=1e-6)


@pytest.mark.parametrize(
    "request_, field",
    [
        (
            d.ReconstructRequest(
                shape=[32, 32], observations=[d.Observation(index=[32, 0], value=1.0)]
            ),
            "observations[0].index",
        ),
        (
            d.ReconstructRequest(
                shape=[32, 32], observations=[d.Observation(index=[1], value=1.0)]
            ),
            "observations[0].index",
        ),
        (
            d.ReconstructRequest(
                shape=[32, 32], observations=[d.Observation(index=[1, 1], value=float("nan"))]
            ),
            "observations[0].value",
        ),
        (
            d.ReconstructRequest(
                shape=[32, 32],
                observations=[
                    d.Observation(index=[1, 1], value=1.0),
                    d.Observation(index=[1, 1], value=2.0),
                ],
            ),
            "observations[1].index",
        ),
        (d.ReconstructRequest(shape=[32, 32]), "observations"),
        (
            d.ReconstructRequest(
                shape=[16, 16], observations=[d.Observation(index=[1, 1], value=1.0)]
            ),
            "shape",
        ),
        (
            d.ReconstructRequest(
                shape=[32, 32], observations=[d.Observation(index=[1, 1], value=1.0)], model="nope"
            ),
            "model",
        ),
        (
            d.ReconstructRequest(
                shape=[32, 32], observations=[d.Observation(index=[1, 1], value=1.0)], noise_std=-1
            ),
            "noise_std",
        ),
        (
            d.ReconstructRequest(
                shape=[32, 32],
                observations=[d.Observation(index=[1, 1], value=1.0)],
                sample_count=-2,
            ),
            "sample_count",
        ),
    ],
    ids=[
        "outside",
        "wrong-rank",
        "nan",
        "conflict",
        "none",
        "resolution",
        "unknown-model",
        "negative-noise",
        "count",
    ],
)
def test_bad_reconstruct_requests_name_the_field(client: Client, request_, field):
    with pytest.raises(InvalidArgumentError) as info:
        client.call(client.diffusion_stub.Reconstruct, request_)
    assert info.value.violations[0].field == field


def _reverse(count=2, steps=8, **extra) -> d.SampleRequest:
    constraints = extra.pop("constraints", [])
    return d.SampleRequest(
        energy_model=d.EnergyModelSpec(name="gaussian-free-field", constraints=constraints),
        shape=[32, 32],
        sample_count=count,
        seed=4,
        sampler=d.SamplerSpec(kind=d.SAMPLER_KIND_REVERSE_DIFFUSION, steps=steps, **extra),
    )


def test_reverse_diffusion_sample_streams_and_measures(client: Client):
    events = list(client.sample(_reverse(guidance_scale=0.5)))
    assert [e.step for e in events[:-1]] == list(range(1, 9))
    result = events[-1]
    x = result.samples[0]
    assert x.shape == (32, 32) and np.isfinite(x).all()
    assert result.total[0] == pytest.approx(float(x.sum(dtype=np.float64)), rel=1e-5)
    assert result.usage.site_updates == 2 * (2 * 8 - 1) * 1024


def test_reverse_diffusion_enforces_an_exact_total(client: Client):
    total = d.Constraint(name="total", target=150.0, tolerance=1e-2)
    result = list(client.sample(_reverse(constraints=[total])))[-1]
    for x, residual in zip(result.samples, result.constraint_residual):
        assert abs(float(x.sum(dtype=np.float64)) - 150.0) < 1e-2
        assert residual < 1e-2


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"model": "nope"}, "sampler.model"),
        ({"guidance_scale": -1.0}, "sampler.guidance_scale"),
    ],
)
def test_bad_reverse_diffusion_requests(client: Client, extra, field):
    with pytest.raises(InvalidArgumentError) as info:
        list(client.sample(_reverse(**extra)))
    assert info.value.violations[0].field == field


def test_ising_has_no_reverse_diffusion(client: Client):
    request = d.SampleRequest(
        energy_model=d.EnergyModelSpec(name="ising"),
        shape=[32, 32],
        sampler=d.SamplerSpec(kind=d.SAMPLER_KIND_REVERSE_DIFFUSION),
    )
    with pytest.raises(InvalidArgumentError) as info:
        list(client.sample(request))
    assert info.value.violations[0].field == "sampler.kind"
    assert isinstance(info.value.code, grpc.StatusCode)
