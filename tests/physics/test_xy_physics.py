"""The XY model (idf.engine.sampling.models.xy), the energy model added through the registry, against
ground truth computed here without the engine:

- its energy and gradient: a numpy sum over explicit neighbour indices, and torch autograd of it;
- its curvature bound: the Hessian's spectrum (autograd) at the aligned minimum and at random states;
- single sites, where exp(−E/T) is the von Mises law of concentration h/T: <cos θ> = I1(h/T)/I0(h/T)
  and the whole law (Kolmogorov–Smirnov against its CDF);
- a periodic 1-D ring at h = 0, by its transfer operator: Z = (2π)^N Σ_m I_m(J/T)^N, so
  <E> = −N J Σ_m I_m^(N−1) I_m′ / Σ_m I_m^N with I_m′ = (I_(m−1) + I_(m+1))/2;
- a 2×2 periodic lattice with a field, by quadrature over the four angles (the trapezoid rule is
  spectrally accurate for smooth periodic integrands: 24 points an angle give 1e-12 here);
- served end to end: listed by ListEnergyModels and sampled by Sample over a real server.

The chains start from θ = 0 and run 400 to 1500 steps: with the step sizes below a chain forgets
its start within a few dozen steps (mixing time ~ (2π)²/(2ηT) steps for a free angle), so the
samples are the final states of thousands of independent chains. Tolerances: 5 standard errors
of a mean over independent chains (the spread / √chains); the chance that one of the ~10 z-scores
here passes 5 by chance is ~1e-5. Each law is checked at T ≠ 1 too, where a sampler that drops
the temperature from its noise or its acceptance samples a different law.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

from idf.client import Client, InvalidArgumentError
from idf.engine.sampling import boltzmann as sampling
from idf.engine.sampling import energy_models
from idf.engine.sampling.models.xy import XYEnergy
from idf.v1 import diffusion_pb2 as d

Z_MAX = 5.0


def numpy_energy(theta: np.ndarray, J: float, h) -> float:
    """−J Σ_i Σ_a cos(θ[i+e_a] − θ_i) − Σ_i h_i cos θ_i, neighbours by explicit index arithmetic."""
    total = 0.0
    for index in np.ndindex(theta.shape):
        for axis in range(theta.ndim):
            nb = list(index)
            nb[axis] = (nb[axis] + 1) % theta.shape[axis]
            total -= J * math.cos(theta[tuple(nb)] - theta[index])
    return total - float(np.sum(np.broadcast_to(h, theta.shape) * np.cos(theta)))


def torch_energy(theta: torch.Tensor, J: float, h: float) -> torch.Tensor:
    """The same energy in torch for autograd, again by index arithmetic (no roll)."""
    e = -h * torch.cos(theta).sum()
    for axis in range(theta.ndim):
        n = theta.shape[axis]
        nb = theta.index_select(axis, torch.tensor([(i + 1) % n for i in range(n)]))
        e = e - J * torch.cos(nb - theta).sum()
    return e


RNG = np.random.default_rng(11)


@pytest.mark.parametrize("shape", [(7,), (4, 6), (3, 4, 5)], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("field_map", [False, True], ids=["uniform-h", "field-map"])
def test_energy_and_gradient_are_the_documented_ones(shape, field_map):
    theta = RNG.uniform(-4, 4, size=(2, *shape))  # beyond [−π, π): the energy is periodic anyway
    hmap = RNG.normal(size=shape) if field_map else None
    model = energy_models.info("xy")
    params = energy_models.resolve_parameters(model, {"J": 0.8, "h": -0.3})
    energy = energy_models.build(model, params, hmap, torch.float64, torch.device("cpu"))
    e, g = energy.evaluate(torch.as_tensor(theta), len(shape))
    h = -0.3 + (hmap if hmap is not None else 0.0)
    for c in range(2):
        assert float(e[c]) == pytest.approx(numpy_energy(theta[c], 0.8, h), rel=1e-12, abs=1e-12)
        t = torch.as_tensor(theta[c]).requires_grad_()
        ref = (
            torch_energy(t, 0.8, 0.0)
            - (torch.as_tensor(h, dtype=torch.float64) * torch.cos(t)).sum()
        )
        ref.backward()
        assert torch.allclose(g[c], t.grad, rtol=1e-12, atol=1e-12)


def test_curvature_bounds_the_hessian_and_is_reached_at_the_aligned_minimum():
    """At θ = 0 with J > 0 the Hessian is J·(lattice Laplacian) + h·I, whose top eigenvalue on an
    even periodic 4×4 lattice is 4·ndim·J + h: the registered curvature, exactly. At random states
    every eigenvalue lies within ± that bound (hessian_bounds)."""
    J, h = 1.3, 0.4
    model = energy_models.info("xy")
    params = energy_models.resolve_parameters(model, {"J": J, "h": h})
    bound = model.curvature(params, 2)
    hess = torch.autograd.functional.hessian(
        lambda t: torch_energy(t, J, h), torch.zeros(4, 4, dtype=torch.float64)
    )
    eig = torch.linalg.eigvalsh(hess.reshape(16, 16))
    assert float(eig.max()) == pytest.approx(bound, rel=1e-12) and bound == pytest.approx(
        4 * 2 * J + h
    )
    lo, hi = XYEnergy(J=J, h=h).hessian_bounds(math.pi, 2)
    for _ in range(5):
        t = torch.as_tensor(RNG.uniform(-math.pi, math.pi, size=(4, 4)))
        eig = torch.linalg.eigvalsh(
            torch.autograd.functional.hessian(lambda t: torch_energy(t, J, h), t).reshape(16, 16)
        )
        assert lo <= float(eig.min()) and float(eig.max()) <= hi


def run(shape, J, h, temperature, sampler="mala", count=4000, steps=400, **kw):
    spec = sampling.SampleSpec(
        "xy",
        {"J": J, "h": h},
        shape,
        sampler,
        temperature=temperature,
        steps=steps,
        count=count,
        seed=5,
        dtype="float64",
        **kw,
    )
    return sampling.sample(spec)


def z(values: np.ndarray, exact: float) -> float:
    return (float(values.mean()) - exact) / (float(values.std()) / math.sqrt(len(values)))


@pytest.mark.parametrize("temperature", [1.0, 0.4])
@pytest.mark.parametrize("sampler", ["mala", "replica-exchange"])
def test_single_sites_follow_the_von_mises_law(sampler, temperature):
    """One site (shape (1,): its own periodic neighbour, a constant bond): p(θ) ∝ exp(h cos θ / T)."""
    h = 1.0
    kw = (
        {"step_size": 0.3}
        if sampler == "mala"
        else {"step_size": 0.3, "temperatures": (temperature, 2 * temperature, 4 * temperature)}
    )
    out = run((1,), 1.0, h, temperature, sampler, **kw)
    theta = out.samples[:, 0]
    assert np.all((-math.pi <= theta) & (theta < math.pi))  # wrapped (docstring of the model)
    k = h / temperature
    assert abs(z(np.cos(theta), scipy.special.iv(1, k) / scipy.special.iv(0, k))) < Z_MAX
    assert abs(z(np.sin(theta), 0.0)) < Z_MAX
    assert scipy.stats.kstest(theta, scipy.stats.vonmises(kappa=k).cdf).pvalue > 1e-6
    # the reported energy is the documented one of each returned state: −J − h cos θ
    assert out.energy == pytest.approx(-1.0 - h * np.cos(theta), rel=1e-12, abs=1e-12)


def ring_energy(n: int, J: float, temperature: float, modes: int = 60) -> float:
    """<E> of the periodic ring of n rotors at h = 0 from its transfer operator."""
    k = J / temperature
    m = np.arange(-modes, modes + 1)
    i_m = scipy.special.iv(m, k)
    di = (scipy.special.iv(m - 1, k) + scipy.special.iv(m + 1, k)) / 2
    return float(-n * J * np.sum(i_m ** (n - 1) * di) / np.sum(i_m**n))


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_a_ring_has_the_transfer_operator_energy(temperature):
    out = run((6,), 1.0, 0.0, temperature, "mala", steps=800, step_size=0.2)
    assert abs(z(out.energy, ring_energy(6, 1.0, temperature))) < Z_MAX


def quadrature_2x2(J: float, h: float, temperature: float, points: int = 24) -> tuple[float, float]:
    """(<E>, <cos θ_00>) of the periodic 2×2 lattice by the trapezoid rule over the four angles."""
    t = np.arange(points) * 2 * np.pi / points
    a, b, c, e = np.meshgrid(
        t, t, t, t, indexing="ij", sparse=True
    )  # sites (0,0), (0,1), (1,0), (1,1)
    # each pair of neighbours is bonded twice on a periodic 2×2 lattice (i+e and i−e coincide)
    bonds = 2 * (np.cos(b - a) + np.cos(c - a) + np.cos(e - b) + np.cos(e - c))
    energy = -J * bonds - h * (np.cos(a) + np.cos(b) + np.cos(c) + np.cos(e))
    w = np.exp(-(energy - energy.min()) / temperature)
    return float(np.sum(w * energy) / np.sum(w)), float(np.sum(w * np.cos(a)) / np.sum(w))


def test_quadrature_reference_matches_the_engines_energy():
    """The quadrature's energy function is the documented energy (numpy_energy) on a sample state."""
    theta = RNG.uniform(-math.pi, math.pi, size=(2, 2))
    a, b, c, e = theta[0, 0], theta[0, 1], theta[1, 0], theta[1, 1]
    bonds = 2 * (math.cos(b - a) + math.cos(c - a) + math.cos(e - b) + math.cos(e - c))
    assert -0.7 * bonds - 0.3 * (
        math.cos(a) + math.cos(b) + math.cos(c) + math.cos(e)
    ) == pytest.approx(numpy_energy(theta, 0.7, 0.3), rel=1e-12)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_a_2x2_lattice_in_a_field_has_the_quadrature_law(temperature):
    J, h = 0.5, 0.5
    energy, cos00 = quadrature_2x2(J, h, temperature)
    assert quadrature_2x2(J, h, temperature, points=32) == pytest.approx(
        (energy, cos00), rel=1e-10
    )  # converged
    out = run((2, 2), J, h, temperature, "mala", steps=600, step_size=0.15)
    assert abs(z(out.energy, energy)) < Z_MAX
    assert abs(z(np.cos(out.samples[:, 0, 0]), cos00)) < Z_MAX


def test_a_wrong_temperature_is_detected():
    """Negative control: samples drawn at T = 1 fail the T = 0.4 von Mises law by far."""
    theta = run((1,), 1.0, 1.0, 1.0, "mala", step_size=0.3).samples[:, 0]
    k = 1.0 / 0.4
    assert (
        abs(z(np.cos(theta), scipy.special.iv(1, k) / scipy.special.iv(0, k))) > 4 * Z_MAX
    )  # measured 35


def test_estimate_is_what_a_run_reports():
    spec = sampling.SampleSpec(
        "xy", {}, (6, 8), "replica-exchange", steps=30, count=3, temperatures=(1.0, 2.0)
    )
    assert (
        sampling.estimate(spec).site_updates
        == sampling.sample(spec).site_updates
        == 48 * 3 * 30 * 2
    )


# --- served end to end ----------------------------------------------------------------------------


def test_xy_is_listed_and_sampled_over_the_wire(client: Client):
    listed = {
        m.name: m
        for m in client.call(
            client.diffusion_stub.ListEnergyModels, d.ListEnergyModelsRequest()
        ).energy_models
    }
    xy = listed["xy"]
    assert [p.name for p in xy.parameters] == ["J", "h"] and list(xy.constraints) == []
    assert (
        d.SAMPLER_KIND_MALA in xy.samplers and d.SAMPLER_KIND_REVERSE_DIFFUSION not in xy.samplers
    )
    request = d.SampleRequest(
        energy_model=d.EnergyModelSpec(name="xy", parameters={"J": 1.0, "h": 0.2}),
        shape=[8, 8],
        sample_count=2,
        seed=3,
        sampler=d.SamplerSpec(kind=d.SAMPLER_KIND_MALA, steps=60, temperature=0.8),
    )
    result = list(client.sample(request))[-1]
    assert result.usage.site_updates == 64 * 2 * 60
    for theta, energy, acceptance in zip(result.samples, result.energy, result.acceptance_rate):
        assert theta.dtype == np.float32 and np.all((-math.pi <= theta) & (theta < math.pi))
        assert energy == pytest.approx(numpy_energy(theta.astype(np.float64), 1.0, 0.2), rel=1e-5)
        assert 0 < acceptance <= 1
    for kind in (d.SAMPLER_KIND_GIBBS, d.SAMPLER_KIND_REVERSE_DIFFUSION):
        request.sampler.kind = kind
        with pytest.raises(InvalidArgumentError):
            list(client.sample(request))


def test_hessian_bounds_with_a_field_map_use_its_largest_value():
    """With a map h_i the diagonal term h_i cos θ_i reaches ±max|h_i| (+ the uniform h): the
    bounds are ±(4·ndim·|J| + max|h|), and the spectrum of random states stays inside them."""
    hmap = RNG.normal(size=(4, 4)) * 2
    model = energy_models.info("xy")
    params = energy_models.resolve_parameters(model, {"J": -0.7, "h": 0.5})
    energy = energy_models.build(model, params, hmap, torch.float64, torch.device("cpu"))
    lo, hi = energy.hessian_bounds(math.pi, 2)
    assert hi == pytest.approx(8 * 0.7 + float(np.max(np.abs(hmap + 0.5))), rel=1e-12) and lo == -hi
    h = torch.as_tensor(hmap + 0.5)

    def total(t: torch.Tensor) -> torch.Tensor:
        return torch_energy(t, -0.7, 0.0) - (h * torch.cos(t)).sum()

    for _ in range(3):
        t = torch.as_tensor(RNG.uniform(-math.pi, math.pi, size=(4, 4)))
        eig = torch.linalg.eigvalsh(torch.autograd.functional.hessian(total, t).reshape(16, 16))
        assert lo <= float(eig.min()) and float(eig.max()) <= hi


def test_float32_states_get_float64_energies_and_float32_gradients():
    """Energies come back in float64 and gradients in the state's dtype; values agree with the
    float64 evaluation of the same (float32-rounded) angles to float32's per-term accuracy
    (each cos of a float32 difference is good to ~3e-7; 3 terms a site)."""
    theta = np.random.default_rng(5).uniform(-math.pi, math.pi, size=(2, 64, 64))
    energy = XYEnergy(J=1.0, h=0.3)
    e32, g32 = energy.evaluate(torch.as_tensor(theta, dtype=torch.float32), 2)
    e64, g64 = energy.evaluate(torch.as_tensor(theta.astype(np.float32).astype(np.float64)), 2)
    assert e32.dtype == torch.float64 and g32.dtype == torch.float32
    assert torch.allclose(e32, e64, rtol=0, atol=3 * 64 * 64 * 3e-7)
    assert torch.allclose(g32.double(), g64, rtol=0, atol=5 * 3e-7 * 2)
