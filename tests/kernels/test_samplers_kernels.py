"""phi^4 evaluation, the fused Langevin pass, MALA, Ising sweeps, entropy: Triton against the
torch references fed the very random numbers the kernels draw (Philox)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from kernel_checks import DEVICE, assert_matches

from idf.kernels.diagnostics import (
    radial_power_spectrum,
    shannon_entropy_reference,
    shannon_entropy_triton,
)
from idf.kernels.ising import (
    Ising,
    ising_energy,
    ising_sweep,
    philox_uniforms,
    sweep_reference,
    sweep_triton,
)
from idf.kernels.langevin import langevin_step_reference, langevin_step_triton
from idf.kernels.mala import mala_step_reference, mala_step_triton
from idf.kernels.phi4 import Phi4, phi4_reference, phi4_triton
from idf.kernels.random import philox_normal, philox_uniform, step_seed

SHAPES = [((2, 13, 17), 2), ((2, 5, 6, 7), 3), ((3, 33), 1)]


def _model(shape, ndim, dtype, field: bool) -> Phi4:
    h = (
        torch.randn(shape[-ndim:], generator=torch.Generator().manual_seed(9), dtype=dtype)
        if field
        else 0.2
    )
    return Phi4(kappa=0.8, a=-0.7, b=0.9, h=h)


def _rel_total(a: torch.Tensor, b: torch.Tensor, dtype) -> None:
    # totals are sums of per-block partials in the field's dtype: the order differs from torch's
    # sum, so they agree to a few eps times the number of terms in a block (1024)
    tol = 1e3 * torch.finfo(dtype).eps
    torch.testing.assert_close(a.cpu(), b.cpu(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape, ndim", SHAPES)
@pytest.mark.parametrize("field", [False, True])
def test_phi4_evaluation(dtype, shape, ndim, field):
    phi = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    model = _model(shape, ndim, dtype, field)
    ref = phi4_reference(phi, model, ndim)
    got = phi4_triton(
        phi.to(DEVICE),
        Phi4(model.kappa, model.a, model.b, model.h.to(DEVICE) if field else model.h),
        ndim,
        block=64,
    )
    assert_matches(got.site_energy, ref.site_energy)
    assert_matches(got.gradient, ref.gradient)
    _rel_total(got.energy, ref.energy, dtype)


def test_phi4_gradient_is_the_derivative_of_the_energy():
    phi = torch.randn(2, 6, 7, dtype=torch.float64, requires_grad=True)
    model = Phi4(kappa=0.8, a=-0.7, b=0.9, h=torch.randn(6, 7, dtype=torch.float64))
    ev = phi4_reference(phi, model)
    (auto,) = torch.autograd.grad(ev.energy.sum(), phi)
    torch.testing.assert_close(ev.gradient, auto)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape, ndim", SHAPES)
def test_fused_langevin_pass(dtype, shape, ndim):
    phi = torch.randn(shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
    model = _model(shape, ndim, dtype, False)
    key = step_seed(7, 3)
    noise = philox_normal(key, shape, device=DEVICE).to(dtype).cpu()
    ref, e_ref = langevin_step_reference(
        phi, model, step_size=0.05, temperature=1.3, noise=noise, ndim=ndim
    )
    got, e_got = langevin_step_triton(
        phi.to(DEVICE), model, step_size=0.05, temperature=1.3, key=key, ndim=ndim, block=64
    )
    assert_matches(got, ref)
    _rel_total(e_got, e_ref, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mala_step(dtype):
    shape, ndim = (4, 13, 17), 2
    phi = torch.randn(shape, generator=torch.Generator().manual_seed(3), dtype=dtype)
    model = Phi4(kappa=0.5, a=-0.5, b=0.5)
    key = step_seed(11, 0)
    noise = philox_normal(key, shape, device=DEVICE).to(dtype).cpu()
    uniform = torch.tensor([0.01, 0.5, 0.9, 0.999], dtype=torch.float64)
    ref = mala_step_reference(
        phi, model, step_size=0.02, temperature=1.0, noise=noise, uniform=uniform, ndim=ndim
    )
    got = mala_step_triton(
        phi.to(DEVICE),
        model,
        step_size=0.02,
        temperature=1.0,
        key=key,
        uniform=uniform.to(DEVICE),
        ndim=ndim,
        block=64,
    )
    assert torch.equal(got.accepted.cpu(), ref.accepted)
    assert_matches(got.phi, ref.phi)
    torch.testing.assert_close(
        got.log_alpha.cpu(),
        ref.log_alpha,
        rtol=0,
        atol=1e3 * torch.finfo(dtype).eps * ref.energy.abs().max().item(),
    )


@pytest.mark.parametrize("rule", ["heat-bath", "metropolis"])
@pytest.mark.parametrize("h", [0.0, 0.3, "field"])
@pytest.mark.parametrize("shape", [(3, 10, 14), (1, 2, 2), (2, 6, 32)])
def test_ising_sweep(rule, h, shape):
    gen = torch.Generator().manual_seed(4)
    s = (torch.randint(0, 2, shape, generator=gen) * 2 - 1).to(torch.int8)
    model = Ising(J=1.0, h=torch.randn(shape[1:], generator=gen) if h == "field" else h)
    keys = (step_seed(5, 1, 0), step_seed(5, 1, 1))
    ref = sweep_reference(s, model, 0.45, rule, philox_uniforms(s.to(DEVICE), keys))
    dev_model = Ising(model.J, model.h.to(DEVICE) if h == "field" else model.h)
    got = sweep_triton(s.to(DEVICE), dev_model, 0.45, rule, keys, block=16)
    assert torch.equal(got.spins.cpu(), ref.spins)
    # E and M partials are float32 sums: exact for integer couplings, else ~1e-6 relative
    torch.testing.assert_close(got.magnetisation.cpu(), ref.magnetisation, rtol=0, atol=0)
    torch.testing.assert_close(got.energy.cpu(), ref.energy, rtol=1e-6, atol=1e-4)
    assert torch.equal(
        torch.stack(ising_energy(got.spins.cpu(), model)),
        torch.stack([ref.energy, ref.magnetisation]),
    )


def test_ising_energy_of_known_states():
    up = torch.ones(1, 4, 6, dtype=torch.int8)
    e, m = ising_energy(up, Ising(J=1.0, h=0.5))
    assert e.item() == -2 * 24 - 0.5 * 24 and m.item() == 24  # 2 bonds per site
    neel = (
        (1 - 2 * ((torch.arange(4).view(-1, 1) + torch.arange(6)) % 2)).to(torch.int8).unsqueeze(0)
    )
    assert (
        ising_energy(neel, Ising())[0].item() == 48 and ising_energy(neel, Ising())[1].item() == 0
    )


def test_ising_rejects_odd_lattices():
    with pytest.raises(ValueError, match="even"):
        sweep_reference(
            torch.ones(1, 5, 4, dtype=torch.int8), Ising(), 0.4, "heat-bath", (None, None)
        )


def test_entropy():
    x = torch.rand(3, 13, 17, generator=torch.Generator().manual_seed(6))
    x[0, 0, :4] = 0
    torch.testing.assert_close(
        shannon_entropy_triton(x.to(DEVICE), block=64).cpu(), shannon_entropy_reference(x)
    )
    assert shannon_entropy_reference(torch.ones(1, 8, 8)).item() == pytest.approx(math.log(64))
    point = torch.zeros(1, 8, 8)
    point[0, 3, 3] = 5.0
    assert shannon_entropy_reference(point).item() == 0
    with pytest.raises(ValueError):
        shannon_entropy_reference(-x)


def test_radial_spectrum_of_a_plane_wave():
    n = 32
    x = torch.arange(n, dtype=torch.float64)
    wave = torch.cos(2 * math.pi * 5 * x / n).view(1, -1).expand(n, n)
    radius, power, counts = radial_power_spectrum(wave.unsqueeze(0))
    # all power sits in the two modes (0, +-5): |FFT|^2 = (N/2)^2 each, / N
    assert torch.nonzero(power[0] > 1e-9).flatten().tolist() == [5]
    assert power[0, 5].item() * counts[5].item() == pytest.approx(2 * (n * n / 2) ** 2 / (n * n))
    assert counts.sum().item() == n * n


def test_philox_is_reproducible_and_well_distributed():
    a = philox_normal(123, (100_000,), device=DEVICE).cpu()
    assert torch.equal(a, philox_normal(123, (100_000,), device=DEVICE).cpu())
    assert not torch.equal(a, philox_normal(124, (100_000,), device=DEVICE).cpu())
    # mean and variance of 1e5 N(0,1) draws: standard errors 0.0032 and 0.0045; 5 sigma bounds
    assert abs(a.mean().item()) < 0.016 and abs(a.var().item() - 1) < 0.023
    u = philox_uniform(5, (100_000,), device=DEVICE).cpu()
    assert (
        0 <= u.min().item() and u.max().item() < 1 and abs(u.mean().item() - 0.5) < 0.0046
    )  # 5 sigma


@pytest.mark.parametrize("rule", ["heat-bath", "metropolis"])
@pytest.mark.parametrize("h", [0.0, "field"])
def test_ising_cpu_path_equals_the_reference(rule, h):
    from idf.kernels.ising import sweep_cpu

    gen = torch.Generator().manual_seed(8)
    s = (torch.randint(0, 2, (3, 8, 12), generator=gen) * 2 - 1).to(torch.int8)
    model = Ising(J=1.0, h=torch.randn(8, 12, generator=gen) if h == "field" else h)
    u = torch.rand(s.shape, generator=gen)
    fast = sweep_cpu(s, model, 0.5, rule, u)
    ref = sweep_reference(s, model, 0.5, rule, (u, u))
    assert torch.equal(fast.spins, ref.spins)
    assert torch.equal(fast.energy, ref.energy) and torch.equal(
        fast.magnetisation, ref.magnetisation
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape, ndim", SHAPES)
@pytest.mark.parametrize("field", [False, True])
def test_langevin_cpu_path_agrees_with_the_reference(dtype, shape, ndim, field):
    from idf.kernels.langevin import langevin_step_cpu

    gen = torch.Generator().manual_seed(12)
    phi = torch.randn(shape, generator=gen, dtype=dtype)
    noise = torch.randn(shape, generator=gen, dtype=dtype)
    model = _model(shape, ndim, dtype, field)
    kw = dict(step_size=0.05, temperature=1.3, noise=noise, ndim=ndim)
    fast, e_fast = langevin_step_cpu(phi, model, **kw)
    ref, e_ref = langevin_step_reference(phi, model, **kw)
    # different association of the same sums: a few eps of the largest term (|phi|^3 ~ 60 here)
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(fast, ref, rtol=0, atol=64 * eps * ref.abs().max().item())
    _rel_total(e_fast, e_ref, dtype)


# ---------------------------------------------------------------------------------------------
# Ground truth at the parameters users pick (T != 1, several step sizes and couplings): each step
# against the update rule written out here in numpy, not against another of our kernels.
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    """Small tensors: one torch thread (an OpenMP fan-out costs more than the work, and far more
    on a loaded machine); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _plane_waves(shape, ndim, seed):
    """phi = c0 + sum_a c_a cos(q_a x_a + theta_a) per chain, and its lattice Laplacian in closed
    form: sum_a (2 phi_i - phi_{i+e_a} - phi_{i-e_a}) = sum_a 4 sin^2(q_a / 2) c_a cos(q_a x_a + theta_a)
    for q_a = 2 pi m_a / n_a on the periodic lattice. numpy float64, shape (B, *grid)."""
    rng = np.random.default_rng(seed)
    batch, grid = shape[0], shape[1:]
    phi = np.broadcast_to(rng.uniform(-1, 1, (batch,) + (1,) * ndim), shape).copy()
    lap = np.zeros(shape)
    for axis, n in enumerate(grid):
        q = 2 * np.pi * rng.integers(1, n) / n
        c = rng.uniform(-1, 1, (batch,) + (1,) * ndim)
        x = np.arange(n).reshape([n if i == axis else 1 for i in range(ndim)])
        wave = c * np.cos(q * x + rng.uniform(0, 2 * np.pi))
        phi += wave
        lap += 4 * np.sin(q / 2) ** 2 * wave
    return phi, lap


def _np_energy_gradient(phi: np.ndarray, kappa, a, b, h, ndim):
    """E per chain and dE/dphi of E = sum_i kappa/2 sum_a (phi_{i+e_a} - phi_i)^2 + a/2 phi^2
    + b/4 phi^4 - h phi, from the definition, in numpy float64."""
    axes = tuple(range(phi.ndim - ndim, phi.ndim))
    energy = (a / 2 * phi**2 + b / 4 * phi**4 - h * phi).sum(axes)
    grad = a * phi + b * phi**3 - h
    for axis in axes:
        forward = np.roll(phi, -1, axis) - phi
        energy = energy + kappa / 2 * (forward**2).sum(axes)
        grad = grad + kappa * (2 * phi - np.roll(phi, -1, axis) - np.roll(phi, 1, axis))
    return energy, grad


# (T, eta, kappa, a, b, h, shape, ndim): a GFF at T = 0.25, phi^4 at T = 3 in 3-D, a stiff 1-D one at T = 0.4
AFFINE_CASES = [
    (0.25, 0.1, 1.0, 0.5, 0.0, 0.0, (2, 12, 10), 2),
    (3.0, 0.02, 0.7, -1.0, 1.5, 0.3, (2, 6, 4, 8), 3),
    (0.4, 0.05, 2.0, 0.3, 0.8, -0.2, (3, 16), 1),
]


@pytest.mark.parametrize("path", ["reference", "cpu"])
@pytest.mark.parametrize("temperature, eta, kappa, a, b, h, shape, ndim", AFFINE_CASES)
def test_langevin_step_is_the_exact_affine_map(path, temperature, eta, kappa, a, b, h, shape, ndim):
    """Given its noise xi, a Langevin step is the known affine map phi - eta grad E(phi) + sqrt(2 eta T) xi.
    From plane waves the gradient is closed-form (kappa x the Laplacian above + a phi + b phi^3 - h),
    so the step must equal it to float64 rounding (a few 1e-16 of |phi|^3 ~ 30: 1e-12 allows it).
    At T != 1 a noise scale without T is off by sqrt(T) - 1 ~ 0.5 x sigma ~ 0.1: no rounding hides it."""
    from idf.kernels.langevin import langevin_step_cpu

    phi, lap = _plane_waves(shape, ndim, seed=51)
    grad = kappa * lap + a * phi + b * phi**3 - h
    noise = np.random.default_rng(52).standard_normal(shape)
    expected = phi - eta * grad + math.sqrt(2 * eta * temperature) * noise
    step = langevin_step_reference if path == "reference" else langevin_step_cpu
    got, energy = step(
        torch.from_numpy(phi),
        Phi4(kappa, a, b, h),
        step_size=eta,
        temperature=temperature,
        noise=torch.from_numpy(noise),
        ndim=ndim,
    )
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        energy.numpy(), _np_energy_gradient(phi, kappa, a, b, h, ndim)[0], rtol=1e-12
    )


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("path", ["cpu", "triton"])
@pytest.mark.parametrize("temperature, eta", [(0.25, 0.2), (3.0, 0.05)])
def test_langevin_noise_has_variance_2_eta_t(path, temperature, eta):
    """The noise each path draws itself (CPU: torch's generator through `langevin_step`; Triton:
    Philox in the kernel, under the interpreter on a CPU, 8 program instances) at T != 1. From
    plane waves (closed-form gradient) the residual r = new - (phi - eta grad E) is the noise:
    over n = 8192 sites its mean is within 5 sigma / sqrt(n) of 0 and its variance within
    5 sqrt(2 / (n - 1)) = 7.8% of 2 eta T (the sample variance of n normals has relative standard
    error sqrt(2 / (n - 1))). float32 rounding of the step (~1e-7 of |phi|^3 < 16) is ~1e-5 of
    sigma >= 0.16. A noise without T would be off by a factor 1 / T: 4 or 1/3."""
    from idf.kernels.langevin import langevin_step, langevin_step_triton

    shape, ndim = (2, 64, 64), 2
    kappa, a, b, h = 0.8, -0.6, 0.9, 0.25
    phi, lap = _plane_waves(shape, ndim, seed=53)
    phi = phi.astype(np.float32).astype(np.float64)  # the state the kernel sees, exactly
    grad = kappa * lap + a * phi + b * phi**3 - h
    model = Phi4(kappa, a, b, h)
    x = torch.from_numpy(phi).to(torch.float32)
    if path == "cpu":
        new, _ = langevin_step(x, model, step_size=eta, temperature=temperature, seed=3, step=9)
    else:
        key = step_seed(3, 9)
        new, _ = langevin_step_triton(
            x.to(DEVICE), model, step_size=eta, temperature=temperature, key=key
        )
        # and exactly: the kernel's own draws (Philox) scaled by sigma, to float32 rounding
        xi = philox_normal(key, shape, device=DEVICE).cpu().double().numpy()
        expected = phi - eta * grad + math.sqrt(2 * eta * temperature) * xi
        np.testing.assert_allclose(new.cpu().double().numpy(), expected, rtol=0, atol=1e-4)
    r = new.cpu().double().numpy() - (phi - eta * grad)
    sigma2, n = 2 * eta * temperature, r.size
    assert abs(r.mean()) < 5 * math.sqrt(sigma2 / n), r.mean()
    assert abs(r.var(ddof=1) / sigma2 - 1) < 5 * math.sqrt(2 / (n - 1)), r.var(ddof=1) / sigma2


@pytest.mark.parametrize("path", ["reference", "triton"])
@pytest.mark.parametrize("temperature", [0.3, 3.0])
def test_mala_acceptance_is_the_metropolis_hastings_ratio(path, temperature):
    """log alpha = -(E(y) - E(x)) / T + log q(x|y) - log q(y|x), q the Langevin proposal of variance
    2 eta T: -(E(y) - E(x)) / T - |x - y + eta grad E(y)|^2 / (4 eta T) + |xi|^2 / 2, computed here in
    numpy from the same noise (given to the reference; the Triton kernel's own Philox draws),
    at T = 0.3 and 3 where a missing 1/T changes log alpha by |E(y) - E(x)| |1 - 1/T| (>= 0.8 here).
    float64 sums of ~30 terms of size ~1: agreement to 1e-9. Then each chain's decision is
    log u < log alpha (uniforms straddle alpha: half of them at alpha / 2, half at 2 alpha), the
    new state is y or x accordingly and its reported energy E of that state."""
    shape, ndim, eta = (4, 6, 5), 2, 0.1
    kappa, a, b, h = 0.6, -0.4, 0.7, 0.15
    x = (
        0.4 * math.sqrt(temperature) * np.random.default_rng(55).standard_normal(shape)
    )  # typical at T: alpha near 1
    model = Phi4(kappa, a, b, h)
    key = step_seed(13, 4)
    if path == "reference":
        xi = np.random.default_rng(56).standard_normal(shape)
    else:
        xi = philox_normal(key, shape, device=DEVICE).cpu().double().numpy()
    e_x, g_x = _np_energy_gradient(x, kappa, a, b, h, ndim)
    y = x - eta * g_x + math.sqrt(2 * eta * temperature) * xi
    e_y, g_y = _np_energy_gradient(y, kappa, a, b, h, ndim)
    reverse = ((x - y + eta * g_y) ** 2).sum((1, 2))
    log_alpha = (
        -(e_y - e_x) / temperature - reverse / (4 * eta * temperature) + (xi**2).sum((1, 2)) / 2
    )
    uniform = torch.from_numpy(
        np.minimum(np.exp(log_alpha) * np.array([0.5, 2.0, 0.5, 2.0]), 1 - 1e-12)
    )
    if path == "reference":
        got = mala_step_reference(
            torch.from_numpy(x),
            model,
            step_size=eta,
            temperature=temperature,
            noise=torch.from_numpy(xi),
            uniform=uniform,
            ndim=ndim,
        )
    else:
        got = mala_step_triton(
            torch.from_numpy(x).to(DEVICE),
            model,
            step_size=eta,
            temperature=temperature,
            key=key,
            uniform=uniform.to(DEVICE),
            ndim=ndim,
            block=64,
        )
    np.testing.assert_allclose(got.log_alpha.cpu().numpy(), log_alpha, rtol=0, atol=1e-9)
    accept = np.log(uniform.numpy()) < log_alpha
    assert accept.any() and not accept.all() and np.array_equal(got.accepted.cpu().numpy(), accept)
    chosen = np.where(accept[:, None, None], y, x)
    np.testing.assert_allclose(got.phi.cpu().numpy(), chosen, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.energy.cpu().numpy(), np.where(accept, e_y, e_x), rtol=1e-12)


def _exact_update_probability(before: np.ndarray, after: np.ndarray, coupling, field, beta, rule):
    """Per site: the probability, under the rule, of the outcome event (heat-bath: the new spin is
    +1; Metropolis: the spin flipped), and whether it happened. Colour 0 ((x + y) even) updates
    first, from its colour-1 neighbours as they were; colour 1 then from its colour-0 neighbours as
    they are after the sweep. Local field l = J sum_nn s + h; heat-bath P(+1) = 1 / (1 + e^{-2 beta l});
    Metropolis P(flip) = min(1, e^{-2 beta s l})."""

    def nn(s):
        return np.roll(s, 1, -1) + np.roll(s, -1, -1) + np.roll(s, 1, -2) + np.roll(s, -1, -2)

    ly, lx = before.shape[-2:]
    colour1 = (np.arange(ly)[:, None] + np.arange(lx)[None, :]) % 2 == 1
    local = coupling * np.where(colour1, nn(after), nn(before)) + field
    if rule == "heat-bath":
        return 1 / (1 + np.exp(-2 * beta * local)), after == 1
    return np.minimum(1.0, np.exp(-2 * beta * before * local)), after != before


def _binned_z(p: np.ndarray, happened: np.ndarray) -> float:
    """Largest |z| over 20 equal-width bins of the exact probability: the count of events in a bin
    against its exact mean sum p, standard deviation sqrt(sum p (1 - p)) (in the sweep's order the
    sites' events are independent Bernoulli(p)). Bins with variance under 10 are skipped: there the
    count is Poisson-like, and even at variance 10 its chance to pass 5 sigma is ~1e-5."""
    p, happened = p.ravel(), happened.ravel()
    bins = np.minimum((p * 20).astype(int), 19)
    worst = 0.0
    for k in np.unique(bins):
        sel = bins == k
        var = (p[sel] * (1 - p[sel])).sum()
        if var >= 10:
            worst = max(worst, abs(happened[sel].sum() - p[sel].sum()) / math.sqrt(var))
    return worst


# (T, J, h): ordered in a field; an antiferromagnet at T = 3 in a random field; near T_c
ISING_CASES = [(1.2, 1.0, 0.35), (3.0, -0.8, "field"), (2.27, 1.0, -0.1)]


def _ising_start(shape):
    gen = torch.Generator().manual_seed(57)
    s = torch.where(torch.rand(shape, generator=gen) < 0.6, 1, -1).to(torch.int8)
    return s, torch.randn(shape[1:], generator=gen) * 0.5


def _colour_select(shape, colour0: np.ndarray, colour1: np.ndarray) -> np.ndarray:
    ly, lx = shape[-2:]
    return np.where((np.arange(ly)[:, None] + np.arange(lx)[None, :]) % 2 == 1, colour1, colour0)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("path", ["cpu", "triton"])
@pytest.mark.parametrize("rule", ["heat-bath", "metropolis"])
@pytest.mark.parametrize("temperature, coupling, h", ISING_CASES)
def test_ising_sweep_decides_by_the_exact_probabilities(path, rule, temperature, coupling, h):
    """One sweep from a random state (60% up) with known uniforms (the CPU path is given them; the
    Triton kernel draws Philox numbers that `philox_uniforms` reproduces): each site's event
    (heat-bath: new spin +1; Metropolis: flip) happens iff u < p, p its exact probability written
    out above, at T != 1, J != 1 and h != 0. Sites where u is within 1e-6 of p (float32 rounding
    of p) are left out; they are ~1e-6 of the sites. A probability 15% off changes the decision
    of ~7% of the sites."""
    from idf.kernels.ising import sweep_cpu

    shape = (4, 64, 64) if path == "cpu" else (2, 64, 64)
    s, random_field = _ising_start(shape)
    field = random_field if h == "field" else h
    beta = 1 / temperature
    if path == "cpu":
        u = torch.rand(shape, generator=torch.Generator().manual_seed(58))
        after = sweep_cpu(s, Ising(coupling, field), beta, rule, u).spins
        u0 = u1 = u.double().numpy()
    else:
        keys = (step_seed(21, 5, 0), step_seed(21, 5, 1))
        dev = Ising(coupling, field.to(DEVICE) if h == "field" else field)
        after = sweep_triton(s.to(DEVICE), dev, beta, rule, keys).spins.cpu()
        u0, u1 = (x.cpu().double().numpy() for x in philox_uniforms(s.to(DEVICE), keys))
    h_np = random_field.double().numpy() if h == "field" else h
    p, happened = _exact_update_probability(
        s.double().numpy(), after.double().numpy(), coupling, h_np, beta, rule
    )
    u = _colour_select(shape, u0, u1)
    clear = np.abs(u - p) > 1e-6
    assert clear.mean() > 0.999 and np.array_equal(happened[clear], (u < p)[clear])


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("rule", ["heat-bath", "metropolis"])
@pytest.mark.parametrize("temperature, coupling, h", ISING_CASES)
def test_ising_sweep_updates_with_the_exact_probabilities(rule, temperature, coupling, h):
    """The same event against the same exact probabilities, statistically, with the random numbers
    the public CPU path (`ising_sweep`) draws itself: in each bin of p, the event count within 5
    standard deviations of sum p. A probability 15% off moves a bin of ~1000 sites at p ~ 0.5 by
    ~75, ~5 standard deviations in that bin alone. (The Triton kernel's decisions are checked
    exactly above against its own Philox uniforms, whose distribution
    test_philox_is_reproducible_and_well_distributed checks.)"""
    shape = (4, 64, 64)
    s, random_field = _ising_start(shape)
    field = random_field if h == "field" else h
    after = ising_sweep(
        s, Ising(coupling, field), temperature=temperature, rule=rule, seed=21, step=5
    ).spins
    h_np = random_field.double().numpy() if h == "field" else h
    p, happened = _exact_update_probability(
        s.double().numpy(), after.double().numpy(), coupling, h_np, 1 / temperature, rule
    )
    assert _binned_z(p, happened) < 5
