"""Contracts of the public sampler ops (langevin_step, mala_step, ising_sweep, phi4, phi4_gradient)
and of their seeded randomness, as a user meets them on a CPU:

- each public op on a CPU tensor is its update rule, written out here in numpy from the module
  docstrings, driven by the documented random stream (`cpu_generator(seed, step)`, the noise in
  phi's dtype, MALA's uniforms in float64 after the noise, Ising's float32 uniforms);
- the stream is reproducible for one (seed, step) and another for another seed or step, and does
  not depend on torch's default dtype;
- `ndim` is passed through (1-D and 3-D grids), the documented defaults hold (2 grid axes, the
  heat-bath rule, the Gaussian free field's kappa = mass2 = 1 and h = 0);
- totals are accumulated in float64: on fields whose every per-site value is exact in float32
  (small dyadic rationals) the totals are exact, which a float32 accumulation of 2^16 sites is not;
- arguments are validated at their boundaries, with the messages users see.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from kernel_checks import DEVICE, assert_matches

from idf.kernels.ising import (
    Ising,
    colour_mask,
    ising_sweep,
    philox_uniforms,
    sweep_reference,
    sweep_triton,
)
from idf.kernels.langevin import (
    langevin_step,
    langevin_step_cpu,
    langevin_step_reference,
    langevin_step_triton,
)
from idf.kernels.mala import mala_step, mala_step_reference, mala_step_triton
from idf.kernels.phi4 import (
    MODE_EVALUATE,
    MODE_PROPOSE,
    Phi4,
    launch_phi4,
    phi4,
    phi4_gradient,
    phi4_gradient_reference,
    phi4_reference,
    phi4_site_energy_reference,
    phi4_triton,
)
from idf.kernels.random import cpu_generator, philox_normal, philox_uniform, splitmix64, step_seed


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one torch thread (an OpenMP fan-out costs more than the work on a loaded
    machine); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# The definitions, in numpy float64
# ---------------------------------------------------------------------------------------------


def np_phi4(phi: np.ndarray, kappa, a, b, h, ndim):
    """(per-site energy, E per chain, dE/dphi) of
    E = sum_i kappa/2 sum_a (phi[i+e_a] - phi_i)^2 + a/2 phi_i^2 + b/4 phi_i^4 - h_i phi_i, periodic."""
    axes = tuple(range(phi.ndim - ndim, phi.ndim))
    site = a / 2 * phi**2 + b / 4 * phi**4 - h * phi
    grad = a * phi + b * phi**3 - h
    for axis in axes:
        site = site + kappa / 2 * (np.roll(phi, -1, axis) - phi) ** 2
        grad = grad + kappa * (2 * phi - np.roll(phi, -1, axis) - np.roll(phi, 1, axis))
    return site, site.sum(axes), grad


def np_mala(x: np.ndarray, xi: np.ndarray, u: np.ndarray, kappa, a, b, h, eta, temperature, ndim):
    """One MALA step from the mala module docstring: (new state, its energy, accepted, log alpha, margin)
    with margin = |log u - log alpha| (how far each decision is from its threshold)."""
    axes = tuple(range(x.ndim - ndim, x.ndim))
    _, e_x, g_x = np_phi4(x, kappa, a, b, h, ndim)
    y = x - eta * g_x + math.sqrt(2 * eta * temperature) * xi
    _, e_y, g_y = np_phi4(y, kappa, a, b, h, ndim)
    log_q_back = -((x - y + eta * g_y) ** 2).sum(axes) / (4 * eta * temperature)
    log_alpha = -(e_y - e_x) / temperature + log_q_back + (xi**2).sum(axes) / 2
    accepted = np.log(u) < log_alpha
    select = accepted.reshape(accepted.shape + (1,) * ndim)
    return (
        np.where(select, y, x),
        np.where(accepted, e_y, e_x),
        accepted,
        log_alpha,
        np.abs(np.log(u) - log_alpha),
    )


def _field(shape, dtype, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# (shape, ndim): the default 2-D grid (ndim not passed), a 1-D chain, a 3-D grid
GRIDS = [((2, 6, 5), 2), ((3, 16), 1), ((2, 4, 3, 5), 3)]
MODEL = dict(kappa=0.7, a=-0.6, b=0.8, h=0.3)


def _ndim_kw(ndim):
    return {} if ndim == 2 else {"ndim": ndim}


# ---------------------------------------------------------------------------------------------
# Langevin
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape, ndim", GRIDS)
def test_langevin_step_on_cpu_is_the_update_with_its_documented_noise(shape, ndim, dtype):
    """phi - eta grad E(phi) + sqrt(2 eta T) xi with xi = torch.randn(phi.shape, cpu_generator(seed, step),
    phi's dtype), and E(phi) per chain. float64: to 1e-12 (rounding of terms of size |b phi^3| < 60).
    float32: each site rounds a few float32 operations on terms < 60, so 1e-4 absolute; the energy
    sums per-site float32 values exactly in float64, so 1e-5 relative. A noise from another stream
    is off by ~sigma = 0.24 at most sites, a grid of another dimension by O(1)."""
    phi = _field(shape, dtype, seed=1)
    eta, temperature = 0.05, 0.6
    new, energy = langevin_step(
        phi,
        Phi4(**MODEL),
        step_size=eta,
        temperature=temperature,
        seed=17,
        step=4,
        **_ndim_kw(ndim),
    )
    noise = torch.randn(shape, generator=cpu_generator(17, 4), dtype=dtype).double().numpy()
    x = phi.double().numpy()
    _, e, g = np_phi4(x, **MODEL, ndim=ndim)
    expected = x - eta * g + math.sqrt(2 * eta * temperature) * noise
    assert new.dtype == dtype and new.shape == shape and energy.dtype == torch.float64
    atol, rtol = (1e-12, 1e-12) if dtype == torch.float64 else (1e-4, 1e-5)
    np.testing.assert_allclose(new.double().numpy(), expected, rtol=0, atol=atol)
    np.testing.assert_allclose(energy.numpy(), e, rtol=rtol)


def test_langevin_step_is_reproducible_and_keyed_by_seed_and_step():
    phi, model = _field((2, 8, 8), torch.float32, seed=2), Phi4(**MODEL)
    kw = dict(step_size=0.05, temperature=1.0)
    first, _ = langevin_step(phi, model, **kw, seed=5, step=3)
    assert torch.equal(first, langevin_step(phi, model, **kw, seed=5, step=3)[0])
    for other in (dict(seed=6, step=3), dict(seed=5, step=4)):
        # another stream: the new fields differ by ~sigma = 0.3 at almost every site
        assert (langevin_step(phi, model, **kw, **other)[0] - first).abs().gt(
            1e-3
        ).float().mean() > 0.9


def test_langevin_step_paths_default_to_two_grid_axes():
    """`langevin_step_reference` and `langevin_step_cpu` without ndim: a (B, ny, nx) field is B chains
    of 2-D grids."""
    phi = _field((2, 5, 6), torch.float64, seed=3)
    noise = _field((2, 5, 6), torch.float64, seed=4)
    x = phi.numpy()
    _, e, g = np_phi4(x, **MODEL, ndim=2)
    expected = x - 0.1 * g + math.sqrt(2 * 0.1 * 0.5) * noise.numpy()
    for step in (langevin_step_reference, langevin_step_cpu):
        new, energy = step(phi, Phi4(**MODEL), step_size=0.1, temperature=0.5, noise=noise)
        np.testing.assert_allclose(new.numpy(), expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(energy.numpy(), e, rtol=1e-12)


@pytest.mark.parametrize(
    "step_size, temperature", [(0.0, 1.0), (-0.1, 1.0), (0.1, -0.5), (-0.1, -0.5)]
)
def test_langevin_rejects_a_non_positive_step_or_a_negative_temperature(step_size, temperature):
    with pytest.raises(ValueError, match=r"^need step_size > 0 and temperature >= 0, got "):
        langevin_step(
            torch.zeros(1, 4, 4),
            Phi4(),
            step_size=step_size,
            temperature=temperature,
            seed=0,
            step=0,
        )


def test_langevin_at_zero_temperature_is_gradient_descent():
    """T = 0 is allowed: the step is phi - eta grad E(phi) exactly, whatever the noise."""
    phi = _field((2, 5, 6), torch.float64, seed=5)
    new, _ = langevin_step(phi, Phi4(**MODEL), step_size=0.1, temperature=0.0, seed=1, step=1)
    _, _, g = np_phi4(phi.numpy(), **MODEL, ndim=2)
    np.testing.assert_allclose(new.numpy(), phi.numpy() - 0.1 * g, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Totals in float64, exactly: dyadic fields
# ---------------------------------------------------------------------------------------------


def _dyadic(shape, low, high, denominator, seed):
    """Integers in [low, high] over `denominator` (a power of 2), as float32: every product the
    energy needs is exact in float32 when |k|^4 < 2^24."""
    k = np.random.default_rng(seed).integers(low, high + 1, shape)
    return torch.from_numpy((k / denominator).astype(np.float32))


def test_langevin_energy_is_summed_exactly_in_float64():
    """E(phi) of a float32 field whose per-site terms are exact in float32 (phi = k/16, k in
    [-20, 63], h = j/16, j in [1, 63]): the four sums over 2^18 sites need 28 to 39 bits, which
    float64 holds exactly and float32 (24) does not (for this field each of the four float32 sums
    is off), so the total must equal the numpy float64 sum exactly."""
    phi = _dyadic((1, 512, 512), -20, 63, 16, seed=8)
    h = _dyadic((512, 512), 1, 63, 16, seed=108)
    model = Phi4(kappa=1.0, a=-1.0, b=1.0, h=h)
    _, expected, _ = np_phi4(phi.double().numpy(), 1.0, -1.0, 1.0, h.double().numpy(), 2)
    _, energy = langevin_step(phi, model, step_size=0.01, temperature=0.0, seed=0, step=0)
    assert energy.dtype == torch.float64 and energy.tolist() == expected.tolist()


def test_phi4_energy_is_summed_exactly_in_float64():
    """The same for `phi4` (per-site energies exact in float32 for k in [-20, 40]: < 2^23 units of
    2^-18)."""
    phi = _dyadic((1, 256, 256), -20, 40, 16, seed=8)
    h = _dyadic((256, 256), 1, 63, 16, seed=9)
    _, expected, _ = np_phi4(phi.double().numpy(), 1.0, -1.0, 1.0, h.double().numpy(), 2)
    for evaluate in (phi4, phi4_reference):
        got = evaluate(phi, Phi4(kappa=1.0, a=-1.0, b=1.0, h=h))
        assert got.energy.dtype == torch.float64 and got.energy.tolist() == expected.tolist()


def _coarse_dyadic(shape, seed):
    """phi = +-k/4, k in [10, 15]: per-site energies (kappa = b = 1, a = -1, h = 0.5) are < 2^7 in
    units of 2^-10, so a sum of 64 of them (< 2^13) is exact in float32 while a sum of 1024
    (~ 4.6e4 ~ 2^15.5) needs more than 24 bits (for the field below it is not exact)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(10, 16, shape) * rng.choice([-1, 1], shape)
    return torch.from_numpy((k / 4).astype(np.float32))


@pytest.mark.parametrize("op", ["phi4", "langevin"])
def test_triton_energy_partials_follow_the_block_size(op):
    """The fused kernels leave per-block partial sums (in the field's dtype) that are added in float64.
    With block = 64 on a field whose 64-site sums are exact in float32, the energy is exact; with the
    default 1024-site blocks it would not be (the field is chosen so). 1024 sites: 16 programs."""
    phi = _coarse_dyadic((1, 32, 32), seed=12)
    model = Phi4(kappa=1.0, a=-1.0, b=1.0, h=0.5)
    _, expected, _ = np_phi4(phi.double().numpy(), 1.0, -1.0, 1.0, 0.5, 2)
    if op == "phi4":
        energy = phi4_triton(phi.to(DEVICE), model, block=64).energy
    else:
        energy = langevin_step_triton(
            phi.to(DEVICE), model, step_size=0.01, temperature=1.0, key=1, block=64
        )[1]
    assert energy.cpu().tolist() == expected.tolist()


def test_mala_log_alpha_is_summed_exactly_in_float64():
    """MALA's |xi|^2 and reverse residual sums, on a Gaussian free field (kappa = mass2 = 1) with
    eta = 1/4, T = 2 (so sigma = sqrt(2 eta T) = 1), phi = k/16 (|k| <= 15) and noise = j/64 (|j| <= 63):
    every per-site value of x, y, |xi|^2, the residual and its square is exact in float32 and their
    sums over 2^16 sites exact in float64, so log alpha = -(E(y) - E(x)) / T - r2 / (2 sigma^2) + xi2 / 2
    is exact: it must equal numpy's float64 value exactly."""
    x = _dyadic((1, 256, 256), -15, 15, 16, seed=11)
    xi = _dyadic((1, 256, 256), -63, 63, 64, seed=12)
    uniform = torch.tensor([0.5], dtype=torch.float64)
    got = mala_step_reference(
        x, Phi4.gaussian_free_field(), step_size=0.25, temperature=2.0, noise=xi, uniform=uniform
    )
    _, energy, accepted, log_alpha, _ = np_mala(
        x.double().numpy(), xi.double().numpy(), uniform.numpy(), 1.0, 1.0, 0.0, 0.0, 0.25, 2.0, 2
    )
    assert got.log_alpha.dtype == torch.float64 and got.log_alpha.tolist() == log_alpha.tolist()
    assert got.accepted.tolist() == accepted.tolist() and got.energy.tolist() == energy.tolist()


# ---------------------------------------------------------------------------------------------
# MALA
# ---------------------------------------------------------------------------------------------

MALA_CASES = [
    ((16, 4, 5), 2, torch.float64),
    ((12, 9), 1, torch.float64),
    ((8, 3, 3, 4), 3, torch.float64),
    ((16, 4, 5), 2, torch.float32),
]


@pytest.mark.parametrize("shape, ndim, dtype", MALA_CASES)
def test_mala_step_on_cpu_follows_its_documented_streams(shape, ndim, dtype):
    """From gen = cpu_generator(seed, step): the noise torch.randn(phi.shape, gen, phi's dtype), then one
    float64 uniform per chain torch.rand(batch, gen). The step must be the MALA rule written out in
    np_mala. At T = 0.7 and eta = 0.2, states of size 0.5 have alpha spread over (0, 1] across the
    chains, so decisions go both ways. No decision is closer to its threshold than the rounding of log alpha
    could move it (asserted: |log u - log alpha| > 1e-6 in float64, > 1e-2 in float32, whose per-site
    rounding of ~100 terms of size < 10 moves log alpha by < 2e-3); log alpha to 1e-9 / 2e-3;
    states and energies to float64 rounding / float32 rounding."""
    eta, temperature = 0.2, 0.7
    x = 0.5 * _field(shape, dtype, seed=13)
    got = mala_step(
        x, Phi4(**MODEL), step_size=eta, temperature=temperature, seed=23, step=2, **_ndim_kw(ndim)
    )
    gen = cpu_generator(23, 2)
    xi = torch.randn(shape, generator=gen, dtype=dtype).double().numpy()
    u = torch.rand(shape[: len(shape) - ndim], generator=gen, dtype=torch.float64).numpy()
    new, energy, accepted, log_alpha, margin = np_mala(
        x.double().numpy(), xi, u, **MODEL, eta=eta, temperature=temperature, ndim=ndim
    )
    f64 = dtype == torch.float64
    assert accepted.any() and not accepted.all() and margin.min() > (1e-6 if f64 else 1e-2)
    assert got.accepted.dtype == torch.bool and got.accepted.tolist() == accepted.tolist()
    assert (
        got.phi.dtype == dtype
        and got.energy.dtype == torch.float64
        and got.log_alpha.dtype == torch.float64
    )
    np.testing.assert_allclose(got.log_alpha.numpy(), log_alpha, rtol=0, atol=1e-9 if f64 else 2e-3)
    np.testing.assert_allclose(got.phi.double().numpy(), new, rtol=0, atol=1e-12 if f64 else 1e-5)
    np.testing.assert_allclose(got.energy.numpy(), energy, rtol=1e-12 if f64 else 1e-5)


def test_mala_step_is_reproducible_and_keyed_by_seed_and_step():
    x, model = 0.5 * _field((4, 8, 8), torch.float64, seed=14), Phi4(**MODEL)
    kw = dict(step_size=0.05, temperature=0.7)
    first = mala_step(x, model, **kw, seed=5, step=3)
    again = mala_step(x, model, **kw, seed=5, step=3)
    assert torch.equal(first.phi, again.phi) and torch.equal(first.log_alpha, again.log_alpha)
    for other in (dict(seed=6, step=3), dict(seed=5, step=4)):
        # another noise: another proposal, so another log alpha (by O(1) per chain)
        assert (mala_step(x, model, **kw, **other).log_alpha - first.log_alpha).abs().min() > 1e-6


@pytest.mark.parametrize(
    "step_size, temperature", [(0.0, 1.0), (-0.1, 1.0), (0.1, 0.0), (0.1, -1.0)]
)
def test_mala_needs_a_positive_step_and_temperature(step_size, temperature):
    with pytest.raises(ValueError, match=r"^MALA needs step_size > 0 and temperature > 0, got "):
        mala_step(
            torch.zeros(1, 4, 4),
            Phi4(),
            step_size=step_size,
            temperature=temperature,
            seed=0,
            step=0,
        )


def test_mala_paths_default_to_two_grid_axes():
    """`mala_step_reference` and `mala_step_triton` without ndim: a (B, ny, nx) field is B chains of
    2-D grids (4 x 5 sites: one program per chain)."""
    shape = (3, 4, 5)
    x = 0.5 * _field(shape, torch.float64, seed=15)
    key = step_seed(3, 1)
    xi = philox_normal(key, shape, device=DEVICE).cpu().double()
    u = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    _, energy, accepted, log_alpha, _ = np_mala(
        x.numpy(), xi.numpy(), u.numpy(), **MODEL, eta=0.1, temperature=0.7, ndim=2
    )
    ref = mala_step_reference(x, Phi4(**MODEL), step_size=0.1, temperature=0.7, noise=xi, uniform=u)
    fused = mala_step_triton(
        x.to(DEVICE),
        Phi4(**MODEL),
        step_size=0.1,
        temperature=0.7,
        key=key,
        uniform=u.to(DEVICE),
        block=64,
    )
    for got in (ref, fused):
        np.testing.assert_allclose(got.log_alpha.cpu().numpy(), log_alpha, rtol=0, atol=1e-9)
        np.testing.assert_allclose(got.energy.cpu().numpy(), energy, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# phi^4 evaluation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", [False, True])
@pytest.mark.parametrize("shape, ndim", GRIDS)
def test_phi4_and_its_gradient_on_cpu_evaluate_the_definition(shape, ndim, field):
    phi = _field(shape, torch.float64, seed=16)
    h = _field(shape[len(shape) - ndim :], torch.float64, seed=17) if field else 0.3
    model = Phi4(kappa=0.7, a=-0.6, b=0.8, h=h)
    site, energy, grad = np_phi4(phi.numpy(), 0.7, -0.6, 0.8, h.numpy() if field else h, ndim)
    got = phi4(phi, model, **_ndim_kw(ndim))
    np.testing.assert_allclose(got.site_energy.numpy(), site, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.gradient.numpy(), grad, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.energy.numpy(), energy, rtol=1e-12)
    np.testing.assert_allclose(
        phi4_gradient(phi, model, **_ndim_kw(ndim)).numpy(), grad, rtol=0, atol=1e-12
    )


def test_phi4_paths_default_to_two_grid_axes():
    phi = _field((2, 5, 6), torch.float64, seed=18)
    site, energy, grad = np_phi4(phi.numpy(), **MODEL, ndim=2)
    got = phi4_triton(phi.to(DEVICE), Phi4(**MODEL), block=64)
    np.testing.assert_allclose(got.gradient.cpu().numpy(), grad, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.energy.cpu().numpy(), energy, rtol=1e-12)
    ref = phi4_reference(phi, Phi4(**MODEL))
    np.testing.assert_allclose(ref.site_energy.numpy(), site, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ref.energy.numpy(), energy, rtol=1e-12)
    np.testing.assert_allclose(
        phi4_site_energy_reference(phi, Phi4(**MODEL)).numpy(), site, rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        phi4_gradient_reference(phi, Phi4(**MODEL)).numpy(), grad, rtol=0, atol=1e-12
    )


def test_phi4_triton_on_a_batch_of_chains():
    """2 chains of 2 x 2 sites in programs of 2 sites: the launch grid is (blocks, chains) = (2, 2),
    each chain's energy the sum of its own two partials."""
    phi = _field((2, 2, 2), torch.float32, seed=24)
    ref = phi4_reference(phi, Phi4(**MODEL))
    got = phi4_triton(phi.to(DEVICE), Phi4(**MODEL), block=2)
    assert_matches(got.site_energy, ref.site_energy)
    assert_matches(got.gradient, ref.gradient)
    # float32 partials of 2 terms (< 60 each) added in float64: a few float32 eps of 60
    np.testing.assert_allclose(got.energy.cpu().numpy(), ref.energy.numpy(), rtol=0, atol=1e-4)


def test_phi4_triton_uses_an_external_field_in_the_fields_dtype():
    """A float64 external field on a float32 state is used as float32, like every other parameter:
    the same results, bit for bit in the interpreter, as with the field rounded to float32."""
    phi = _field((1, 6, 7), torch.float32, seed=25)
    h = _field((6, 7), torch.float64, seed=26)
    got = phi4_triton(phi.to(DEVICE), Phi4(**{**MODEL, "h": h.to(DEVICE)}), block=64)
    ref = phi4_reference(phi, Phi4(**{**MODEL, "h": h.float()}))
    assert_matches(got.site_energy, ref.site_energy)
    assert_matches(got.gradient, ref.gradient)


def test_phi4_launch_defaults_are_a_zero_step_and_philox_key_0():
    """`launch_phi4` in the proposal mode with eta and sigma left at 0: the proposal is the state
    itself, and the noise it sums (part[1], sum xi^2) is Philox key 0's."""
    phi = _field((2, 2, 2), torch.float32, seed=27).to(DEVICE)
    out = torch.empty_like(phi)
    part = launch_phi4(phi, Phi4(**MODEL), 2, MODE_PROPOSE, out=out, block=2)
    assert torch.equal(out, phi)
    xi = philox_normal(0, (2, 2, 2), device=DEVICE)
    assert part[1].sum().item() == pytest.approx((xi.double() ** 2).sum().item(), rel=1e-6)


@pytest.mark.parametrize(
    "ndim, shape, message",
    [
        (0, (2, 4), r"^grids have 1 to 3 axes, got 0$"),
        (4, (2, 2, 2, 2, 2), r"^grids have 1 to 3 axes, got 4$"),
        (3, (3, 4), r"^shape \(3, 4\) has fewer than 3 axes$"),
    ],
    ids=["no-axes", "four-axes", "fewer-axes-than-the-tensor"],
)
def test_kernels_take_one_to_three_grid_axes(ndim, shape, message):
    with pytest.raises(ValueError, match=message):
        phi4_triton(torch.zeros(shape, device=DEVICE), Phi4(), ndim)


def test_phi4_launch_limits():
    """At most 2^31 - 1 sites per launch (Philox counters are 32-bit): 2^31 sites (2 chains of 2^30,
    a stride-0 view: nothing is allocated) are refused before anything else is looked at. An external
    field must have one value per site."""
    with pytest.raises(
        ValueError, match=r"^at most 2\^31 sites per launch \(32-bit Philox counters\)$"
    ):
        launch_phi4(torch.zeros(1).expand(2, 2**30), Phi4(h=torch.zeros(3)), 1, MODE_EVALUATE)
    with pytest.raises(ValueError, match=r"^the external field has 3 values for 16 sites$"):
        launch_phi4(
            torch.zeros(2, 4, 4, device=DEVICE),
            Phi4(h=torch.zeros(3, device=DEVICE)),
            2,
            MODE_EVALUATE,
        )


def test_gaussian_free_field_defaults():
    """The Gaussian free field is phi^4 with b = 0, a = mass2, no external field; kappa = mass2 = 1
    unless given."""
    assert Phi4.gaussian_free_field() == Phi4(kappa=1.0, a=1.0, b=0.0, h=0.0)
    assert Phi4.gaussian_free_field(kappa=2.0, mass2=0.25) == Phi4(kappa=2.0, a=0.25, b=0.0, h=0.0)


# ---------------------------------------------------------------------------------------------
# Ising
# ---------------------------------------------------------------------------------------------


def np_checkerboard_sweep(s: np.ndarray, u: np.ndarray, coupling, field, beta, rule):
    """The ising module's sweep: colour 0 ((x + y) even) then colour 1, one uniform per site serving
    both passes; local field l = J sum_nn s + h; heat-bath: +1 iff u < 1 / (1 + e^{-2 beta l});
    Metropolis: flip iff u < e^{-2 beta s l}. Returns the new spins and each site's |u - p| at its
    update."""
    s = s.astype(np.float64).copy()
    margin = np.empty_like(s)
    ly, lx = s.shape[-2:]
    colour = (np.arange(ly)[:, None] + np.arange(lx)[None, :]) % 2
    for c in (0, 1):
        nn = np.roll(s, 1, -1) + np.roll(s, -1, -1) + np.roll(s, 1, -2) + np.roll(s, -1, -2)
        local = coupling * nn + field
        if rule == "heat-bath":
            p = 1 / (1 + np.exp(-2 * beta * local))
            new = np.where(u < p, 1.0, -1.0)
        else:
            p = np.minimum(1.0, np.exp(-2 * beta * s * local))
            new = np.where(u < p, -s, s)
        s = np.where(colour == c, new, s)
        margin = np.where(colour == c, np.abs(u - p), margin)
    return s, margin


def test_colour_masks_are_the_checkerboard():
    """Colour c is the sites with (x + y) mod 2 = c; on the CPU unless asked."""
    expected = (np.arange(4)[:, None] + np.arange(6)[None, :]) % 2
    for c in (0, 1):
        mask = colour_mask((4, 6), c)
        assert mask.device.type == "cpu" and np.array_equal(mask.numpy(), expected == c)


@pytest.mark.parametrize("rule", ["heat-bath", "metropolis"])
def test_sweep_reference_decides_with_each_colours_uniforms(rule):
    """The reference takes one uniform tensor per colour pass; its int8 result is the checkerboard
    sweep of np_checkerboard_sweep with those uniforms (the colour-c sites read tensor c)."""
    shape = (2, 8, 10)
    s = _spins(shape, seed=28)
    gen = torch.Generator().manual_seed(29)
    u0, u1 = torch.rand(shape, generator=gen), torch.rand(shape, generator=gen)
    got = sweep_reference(s, Ising(J=0.8, h=0.25), 0.6, rule, (u0, u1))
    ly, lx = shape[-2:]
    u = np.where(
        (np.arange(ly)[:, None] + np.arange(lx)[None, :]) % 2 == 1,
        u1.double().numpy(),
        u0.double().numpy(),
    )
    expected, margin = np_checkerboard_sweep(s.numpy(), u, 0.8, 0.25, 0.6, rule)
    assert margin.min() > 1e-6
    assert got.spins.dtype == torch.int8 and np.array_equal(got.spins.numpy(), expected)


def test_triton_sweep_of_a_batch_of_chains():
    """2 chains of 2 x 4 spins (4 sites of each colour, one program of 4 per chain and colour):
    each chain's spins are the reference's with the kernel's Philox uniforms, and its E and M (from
    its own partial sums) are exact for J = 1, h = 0.5."""
    shape = (2, 2, 4)
    s = _spins(shape, seed=30)
    keys = (step_seed(4, 2, 0), step_seed(4, 2, 1))
    got = sweep_triton(s.to(DEVICE), Ising(J=1.0, h=0.5), 0.7, "heat-bath", keys, block=4)
    ref = sweep_reference(
        s,
        Ising(J=1.0, h=0.5),
        0.7,
        "heat-bath",
        tuple(u.cpu() for u in philox_uniforms(s.to(DEVICE), keys)),
    )
    assert torch.equal(got.spins.cpu(), ref.spins)
    energy, magnetisation = np_ising_energy(ref.spins.double().numpy(), 1.0, 0.5)
    assert (
        got.energy.cpu().tolist() == energy.tolist()
        and got.magnetisation.cpu().tolist() == magnetisation.tolist()
    )


def np_ising_energy(s: np.ndarray, coupling, field):
    bonds = s * (np.roll(s, -1, -1) + np.roll(s, -1, -2))
    return -coupling * bonds.sum((-2, -1)) - (field * s).sum((-2, -1)), s.sum((-2, -1))


def _spins(shape, seed):
    return torch.where(
        torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < 0.6, 1, -1
    ).to(torch.int8)


@pytest.mark.parametrize("rule", [None, "heat-bath", "metropolis"])
@pytest.mark.parametrize("temperature", [0.5, 2.5])
def test_ising_sweep_on_cpu_decides_with_its_documented_uniforms(rule, temperature):
    """u = torch.rand(s.shape, cpu_generator(seed, step), float32); every site decides u < p with p
    its exact probability (rule None: the default, heat-bath). No site here has u within 1e-6 of p
    (float32 rounding of p), asserted; E and M of the result are exact (J = 1, h = 0.5)."""
    shape, seed, step = (2, 16, 16), 31, 7
    s = _spins(shape, seed=19)
    kw = {} if rule is None else {"rule": rule}
    got = ising_sweep(s, Ising(J=1.0, h=0.5), temperature=temperature, seed=seed, step=step, **kw)
    u = torch.rand(shape, generator=cpu_generator(seed, step), dtype=torch.float32).double().numpy()
    expected, margin = np_checkerboard_sweep(
        s.numpy(), u, 1.0, 0.5, 1 / temperature, rule or "heat-bath"
    )
    assert margin.min() > 1e-6
    assert got.spins.dtype == torch.int8 and np.array_equal(got.spins.numpy(), expected)
    energy, magnetisation = np_ising_energy(expected, 1.0, 0.5)
    assert (
        got.energy.tolist() == energy.tolist()
        and got.magnetisation.tolist() == magnetisation.tolist()
    )


def test_ising_sweep_is_reproducible_and_keyed_by_seed_and_step():
    s, model = _spins((2, 16, 16), seed=20), Ising(J=1.0, h=0.0)
    first = ising_sweep(s, model, temperature=2.27, seed=5, step=3).spins
    assert torch.equal(first, ising_sweep(s, model, temperature=2.27, seed=5, step=3).spins)
    for other in (dict(seed=6, step=3), dict(seed=5, step=4)):
        # near T_c about a third of the sites' outcomes are random: other uniforms change ~100 of 512
        assert (ising_sweep(s, model, temperature=2.27, **other).spins != first).sum() > 20


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_ising_sweep_needs_a_positive_temperature(temperature):
    with pytest.raises(ValueError, match=r"^temperature must be > 0, got "):
        ising_sweep(_spins((1, 4, 4), seed=0), Ising(), temperature=temperature, seed=0, step=0)


@pytest.mark.parametrize("shape", [(1, 4, 5), (1, 5, 4), (6,)])
def test_ising_needs_an_even_lattice(shape):
    with pytest.raises(
        ValueError, match=r"^checkerboard sweeps need an even periodic lattice, got shape "
    ):
        ising_sweep(torch.ones(shape, dtype=torch.int8), Ising(), temperature=1.0, seed=0, step=0)


def test_ising_needs_int8_spins_and_a_known_rule():
    with pytest.raises(TypeError, match=r"^spins are int8 \(\+1/-1\)$"):
        ising_sweep(torch.ones(1, 4, 4), Ising(), temperature=1.0, seed=0, step=0)
    with pytest.raises(
        ValueError, match=r"^rule must be one of \('heat-bath', 'metropolis'\), got 'glauber'$"
    ):
        ising_sweep(
            torch.ones(1, 4, 4, dtype=torch.int8),
            Ising(),
            temperature=1.0,
            rule="glauber",
            seed=0,
            step=0,
        )


@pytest.mark.parametrize(
    "shape",
    [(2, 2**15, 2**15), (2**21, 2**4, 2**6), (2**31 // 64 + 1, 8, 8)],
    ids=["square", "oblong", "just-over"],
)
def test_ising_triton_sweep_refuses_2_to_the_31_spins_before_allocating(shape):
    """At most 2^31 - 1 spins per launch (Philox counters are 32-bit): a stride-0 view of 2^31 spins
    (or one batch more) is refused before anything is copied or launched. (block=3 is no power of 2:
    a launch would fail at once with another error, not run 2^31 sites.)"""
    spins = torch.ones(1, dtype=torch.int8).expand(*shape)
    assert spins.numel() >= 2**31
    with pytest.raises(
        ValueError, match=r"^at most 2\^31 spins per launch \(32-bit Philox counters\)$"
    ):
        sweep_triton(spins, Ising(), 1.0, "heat-bath", (1, 2), block=3)


def test_ising_sweep_of_one_unbatched_lattice_is_a_batch_of_one():
    """An (L_y, L_x) lattice is one chain: the same sweep (the same 64 uniforms, in the same order)
    as the (1, L_y, L_x) batch holding it."""
    s = _spins((8, 8), seed=34)
    one = ising_sweep(s, Ising(J=1.0, h=0.1), temperature=2.0, seed=3, step=1)
    batch = ising_sweep(s[None], Ising(J=1.0, h=0.1), temperature=2.0, seed=3, step=1)
    assert torch.equal(one.spins, batch.spins[0]) and one.energy.item() == batch.energy.item()


@pytest.fixture
def float64_default():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _sampler_outputs(s, phi):
    fused = sweep_triton(s.to(DEVICE), Ising(J=1.0, h=0.3), 1 / 2.27, "metropolis", (5, 6))
    return (
        ising_sweep(s, Ising(J=1.0, h=0.2), temperature=2.27, seed=9, step=1).spins,
        langevin_step(phi, Phi4(**MODEL), step_size=0.05, temperature=0.7, seed=9, step=1)[0],
        mala_step(phi, Phi4(**MODEL), step_size=0.05, temperature=0.7, seed=9, step=1).phi,
        fused.spins.cpu(),
        fused.energy.cpu(),
        philox_normal(9, (100,), device=DEVICE).cpu(),
        philox_uniform(9, (100,), device=DEVICE).cpu(),
    )


def test_samplers_do_not_depend_on_the_default_dtype(request):
    """The streams are fixed by (seed, step) and the field's dtype alone, and the Ising kernel works
    in float32 whatever torch's default: a program that sets the default dtype to float64 gets the
    very same samples (Philox draws stay float32), and the same Triton energies bit for bit (h = 0.3 is not a float32 number, so
    float64 parameters would change the 1024-site partial sums)."""
    s, phi = _spins((2, 32, 64), seed=21), 0.5 * _field((8, 6, 6), torch.float32, seed=22)
    usual = _sampler_outputs(s, phi)
    request.getfixturevalue("float64_default")
    for a, b in zip(usual, _sampler_outputs(s, phi)):
        assert a.dtype == b.dtype and torch.equal(a, b)  # (torch.equal alone ignores the dtype)


def test_triton_sweep_uses_an_external_field_in_float32():
    """A float64 external field is used as float32, like the kernel's other parameters: the same
    spins and the same energies, bit for bit, as with the field rounded to float32 (1024-site
    partial sums: float64 per-site values would round differently)."""
    s = _spins((2, 32, 64), seed=32)
    h = 0.3 * _field((32, 64), torch.float64, seed=33)
    keys = (step_seed(8, 1, 0), step_seed(8, 1, 1))
    wide = sweep_triton(s.to(DEVICE), Ising(J=1.0, h=h.to(DEVICE)), 0.5, "heat-bath", keys)
    narrow = sweep_triton(
        s.to(DEVICE), Ising(J=1.0, h=h.float().to(DEVICE)), 0.5, "heat-bath", keys
    )
    assert torch.equal(wide.spins, narrow.spins) and torch.equal(wide.energy, narrow.energy)


# ---------------------------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------------------------


def test_splitmix64_is_the_published_generator():
    """SplitMix64 (Steele, Lea & Flood 2014): splitmix64(x) is the output for state x, so the
    generator's sequence from seed s is splitmix64(s + i * 0x9E3779B97F4A7C15). Reference outputs
    (Rosetta Code, "Pseudo-random numbers/Splitmix64", and Vigna's splitmix64.c from seed 0)."""
    golden, mask = 0x9E3779B97F4A7C15, (1 << 64) - 1
    assert [splitmix64((1234567 + i * golden) & mask) for i in range(5)] == [
        6457827717110365317,
        3203168211198807973,
        9817491932198370423,
        4593380528125082431,
        16408922859458223821,
    ]
    assert [splitmix64(0), splitmix64(golden)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]


def test_step_seeds_are_int64_keys_that_depend_on_everything():
    """Keys are below 2^63 (Triton takes them as int64), for any seed (negative, beyond 2^64) and
    counter (half of all 64-bit hashes have the top bit set, so 48 keys test the bound); they differ
    across seeds, steps and the order of counters."""
    seeds = [0, 1, 2, 7, -1, 2**63, 2**64 + 5, 123456789]
    keys = {
        (s, c): step_seed(s, *c)
        for s in seeds
        for c in [(), (0,), (1,), (0, 1), (1, 0), (2**64 - 1,)]
    }
    assert all(0 <= k < 2**63 for k in keys.values())
    assert len(set(keys.values())) == len(keys)


def test_step_seeds_use_all_63_bits():
    """Well-mixed 63-bit keys: each of the 63 bits is set in some of 64 keys and clear in others (a
    fixed bit among 64 independent uniform keys has probability 2^-63)."""
    keys = [step_seed(seed, step) for seed in range(8) for step in range(8)]
    for bit in range(63):
        assert 0 < sum(k >> bit & 1 for k in keys) < len(keys), bit


def test_philox_draws_at_most_2_to_the_31_numbers_per_step():
    """Philox offsets are 32-bit: 2^31 numbers are refused before the output is allocated or any
    kernel runs. (block=3 is no power of 2, so a launch would fail at once rather than draw 2^31
    numbers.)"""
    for draw in (philox_normal, philox_uniform):
        with pytest.raises(
            ValueError, match=r"^Philox offsets are 32-bit: at most 2\^31 numbers per step$"
        ):
            draw(0, (2, 2**30), device="cpu", block=3)


def test_cpu_generator_is_torch_seeded_with_the_step_key():
    """The CPU stream of (seed, counters) is torch's generator seeded with step_seed(seed, counters),
    the key the kernels give Philox: one key per step, on both paths."""
    for seed, counters in [(0, ()), (7, (3,)), (7, (3, 1))]:
        expected = torch.Generator().manual_seed(step_seed(seed, *counters))
        assert torch.equal(
            torch.rand(8, generator=cpu_generator(seed, *counters)),
            torch.rand(8, generator=expected),
        )
    assert not torch.equal(
        torch.rand(8, generator=cpu_generator(7, 3)), torch.rand(8, generator=cpu_generator(8, 3))
    )
