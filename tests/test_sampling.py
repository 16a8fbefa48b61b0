"""Boltzmann sampling: the Sample stream over a real server, bad input, constraints, and two
different samplers agreeing on the phi^4 energy distribution."""

from __future__ import annotations

import numpy as np
import pytest

from idf.client import (
    Client,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    from_field,
    results,
)
from idf.engine.sampling.boltzmann import SampleSpec, sample
from idf.v1 import diffusion_pb2 as d


def _request(
    model="phi4", kind=d.SAMPLER_KIND_MALA, steps=100, shape=(12, 12), count=2, seed=1, **sampler
):
    return d.SampleRequest(
        energy_model=d.EnergyModelSpec(name=model),
        shape=list(shape),
        sample_count=count,
        seed=seed,
        sampler=d.SamplerSpec(kind=kind, steps=steps, **sampler),
    )


def _result(client: Client, request: d.SampleRequest) -> results.SampleResult:
    result = list(client.sample(request))[-1]
    assert isinstance(result, results.SampleResult)
    return result


def test_stream_progress_then_result(client: Client):
    events = list(client.sample(_request(steps=200)))
    progress = events[:-1]
    assert all(isinstance(p, results.SampleProgress) for p in progress)
    assert [p.step for p in progress] == sorted(p.step for p in progress)
    assert progress[-1].step == progress[-1].total_steps == 200
    assert all(0 <= p.acceptance_rate <= 1 for p in progress)
    result = events[-1]
    assert isinstance(result, results.SampleResult)
    assert result.samples.shape == (2, 12, 12) and result.effective_sample_size > 0
    field = result.samples[0]
    # the decoded arrays are the message's: fields and diagnostics row by row
    assert np.array_equal(field, from_field(result.raw.samples[0].field))
    assert result.total[0] == result.raw.samples[0].diagnostics.total
    assert result.total[0] == pytest.approx(float(field.sum(dtype=np.float64)), rel=1e-5)
    assert result.energy_per_site[0] == pytest.approx(result.energy[0] / 144)
    assert result.energy.shape == result.acceptance_rate.shape == (2,)
    assert result.usage.site_updates == 144 * 2 * 200


def test_same_seed_same_samples(client: Client):
    a, b, c = (_result(client, _request(seed=s)) for s in (7, 7, 8))
    assert np.array_equal(a.samples, b.samples) and not np.array_equal(a.samples, c.samples)


def test_every_sampler_and_model_runs(client: Client):
    for model, kind, extra in [
        ("gaussian-free-field", d.SAMPLER_KIND_LANGEVIN, {}),
        ("phi4", d.SAMPLER_KIND_ANNEALED_LANGEVIN, {"max_temperature": 4.0}),
        ("phi4", d.SAMPLER_KIND_REPLICA_EXCHANGE, {"temperatures": [1.0, 1.5, 2.2]}),
        ("ising", d.SAMPLER_KIND_GIBBS, {}),
    ]:
        result = _result(client, _request(model, kind, steps=50, **extra))
        assert len(result.samples) == 2
    spins = result.samples[0]
    assert spins.dtype == np.int8 and set(np.unique(spins)) <= {-1, 1}


def test_energy_models_are_listed(client: Client):
    listed = {
        m.name: m
        for m in client.call(
            client.diffusion_stub.ListEnergyModels, d.ListEnergyModelsRequest()
        ).energy_models
    }
    assert set(listed) == {"gaussian-free-field", "phi4", "ising", "xy"}
    assert [p.name for p in listed["phi4"].parameters] == ["kappa", "a", "b", "h"]
    assert d.SAMPLER_KIND_GIBBS in listed["ising"].samplers


@pytest.mark.parametrize(
    "request_, field",
    [
        (_request(model="nope"), "energy_model.name"),
        (_request(temperature=-1.0), "sampler.temperature"),
        (_request(steps=10**9), "sampler.steps"),
        (_request(model="ising", kind=d.SAMPLER_KIND_GIBBS, shape=(5, 6)), "shape"),
        (_request(model="ising", kind=d.SAMPLER_KIND_MALA), "sampler.kind"),
        (_request(shape=(0, 4)), "shape"),
        (_request(count=10**6), "sample_count"),
        (
            d.SampleRequest(
                energy_model=d.EnergyModelSpec(name="phi4", parameters={"zeta": 1.0}), shape=[4, 4]
            ),
            "energy_model.parameters[zeta]",
        ),
        (
            d.SampleRequest(
                energy_model=d.EnergyModelSpec(name="phi4", parameters={"b": -1.0}), shape=[4, 4]
            ),
            "energy_model.parameters[b]",
        ),
        (
            d.SampleRequest(
                energy_model=d.EnergyModelSpec(
                    name="phi4", constraints=[d.Constraint(name="total", target=1.0)]
                ),
                shape=[4, 4],
                sampler=d.SamplerSpec(kind=d.SAMPLER_KIND_MALA),
            ),
            "energy_model.constraints[0]",
        ),
        (_request(kind=d.SAMPLER_KIND_ANNEALED_LANGEVIN), "sampler.max_temperature"),
    ],
)
def test_bad_input(client: Client, request_, field):
    with pytest.raises(InvalidArgumentError) as info:
        list(client.sample(request_))
    assert info.value.violations[0].field == field, info.value
    assert client.health() == "SERVING"


def test_constraints_are_enforced_or_fail_loudly(client: Client):
    spec = d.EnergyModelSpec(
        name="gaussian-free-field",
        constraints=[d.Constraint(name="total", target=12.5, tolerance=1e-3)],
    )
    request = d.SampleRequest(
        energy_model=spec,
        shape=[16, 16],
        sample_count=3,
        sampler=d.SamplerSpec(kind=d.SAMPLER_KIND_LANGEVIN, steps=100),
    )
    result = _result(client, request)
    assert np.all(np.abs(result.total - 12.5) <= 1e-3) and np.all(
        result.constraint_residual <= 1e-3
    )
    request.energy_model.constraints[0].target = 0.1
    request.energy_model.constraints[
        0
    ].tolerance = 1e-12  # float32 sites cannot sum to 0.1 that exactly
    with pytest.raises(FailedPreconditionError) as info:
        list(client.sample(request))
    assert info.value.reason == "CONSTRAINT_VIOLATED"


def test_deadline_stops_sampling(client: Client):
    with pytest.raises(DeadlineExceededError):
        list(
            client.sample(_request(shape=(256, 256), steps=10**4, count=8), timeout=0.5)
        )  # 5e9 site updates: within the per-call ceiling
    assert client.health() == "SERVING"


@pytest.mark.slow
def test_two_samplers_agree_on_the_phi4_energy_distribution():
    """2-Wasserstein distance between the final-energy distributions of 512 MALA chains and 512
    replica-exchange chains. Bound: the same distance between two independent MALA runs (seeds
    differ) measures pure sampling noise; an agreeing sampler must stay within 3x of it, and a
    sampler at a 20% higher temperature (negative control) must not."""

    def energies(kind: str, seed: int, temperature: float = 1.0) -> np.ndarray:
        spec = SampleSpec(
            "phi4",
            {"kappa": 0.5, "a": -0.5, "b": 0.5},
            (8, 8),
            sampler=kind,
            temperature=temperature,
            steps=1500,
            burn_in=500,
            count=512,
            seed=seed,
            step_size=0.05,
            temperatures=(temperature, temperature * 1.6, temperature * 2.5)
            if kind == "replica-exchange"
            else (),
        )
        return np.sort(sample(spec).energy)

    def w2(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.sqrt(np.mean((a - b) ** 2)))  # 1-D W2 of equal-size samples: sorted pairing

    mala_a, mala_b = energies("mala", 1), energies("mala", 2)
    tempering = energies("replica-exchange", 3)
    noise, agreement, hot = (
        w2(mala_a, mala_b),
        w2(mala_a, tempering),
        w2(mala_a, energies("mala", 4, temperature=1.2)),
    )
    print(
        f"W2: MALA vs MALA {noise:.3f}, MALA vs replica exchange {agreement:.3f}, vs 20% hotter {hot:.3f}"
    )
    assert agreement <= 3 * noise
    assert hot > 3 * noise


def test_cli_sample(server, tmp_path):
    import json

    from typer.testing import CliRunner

    from idf.cli.main import app

    out = tmp_path / "s.npy"
    r = CliRunner().invoke(
        app,
        [
            "sample",
            "--model",
            "ising",
            "--shape",
            "16,16",
            "--steps",
            "50",
            "--count",
            "3",
            "--temperature",
            "2.0",
            "--out",
            str(out),
            "--server",
            server.target,
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert np.load(out).shape == (3, 16, 16) and json.loads(r.output)["samples"] == 3
    r = CliRunner().invoke(
        app,
        [
            "sample",
            "--model",
            "phi4",
            "--param",
            "zeta=1",
            "--out",
            str(out),
            "--server",
            server.target,
        ],
    )
    assert r.exit_code == 4 and "zeta" in r.output
