"""phi^4 evaluation, the fused Langevin pass, MALA, Ising sweeps, entropy: Triton against the
torch references fed the very random numbers the kernels draw (Philox)."""

from __future__ import annotations

import math

import pytest
import torch

from kernel_checks import DEVICE, assert_matches
from idf.kernels.diagnostics import radial_power_spectrum, shannon_entropy_reference, shannon_entropy_triton
from idf.kernels.ising import Ising, ising_energy, philox_uniforms, sweep_reference, sweep_triton
from idf.kernels.langevin import langevin_step_reference, langevin_step_triton
from idf.kernels.mala import mala_step_reference, mala_step_triton
from idf.kernels.phi4 import Phi4, phi4_reference, phi4_triton
from idf.kernels.random import philox_normal, philox_uniform, step_seed

SHAPES = [((2, 13, 17), 2), ((2, 5, 6, 7), 3), ((3, 33), 1)]


def _model(shape, ndim, dtype, field: bool) -> Phi4:
    h = torch.randn(shape[-ndim:], generator=torch.Generator().manual_seed(9), dtype=dtype) if field else 0.2
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
    got = phi4_triton(phi.to(DEVICE), Phi4(model.kappa, model.a, model.b, model.h.to(DEVICE) if field else model.h), ndim, block=64)
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
    ref, e_ref = langevin_step_reference(phi, model, step_size=0.05, temperature=1.3, noise=noise, ndim=ndim)
    got, e_got = langevin_step_triton(phi.to(DEVICE), model, step_size=0.05, temperature=1.3, key=key, ndim=ndim, block=64)
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
    ref = mala_step_reference(phi, model, step_size=0.02, temperature=1.0, noise=noise, uniform=uniform, ndim=ndim)
    got = mala_step_triton(phi.to(DEVICE), model, step_size=0.02, temperature=1.0, key=key, uniform=uniform.to(DEVICE), ndim=ndim, block=64)
    assert torch.equal(got.accepted.cpu(), ref.accepted)
    assert_matches(got.phi, ref.phi)
    torch.testing.assert_close(got.log_alpha.cpu(), ref.log_alpha, rtol=0, atol=1e3 * torch.finfo(dtype).eps * ref.energy.abs().max().item())


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
    assert torch.equal(torch.stack(ising_energy(got.spins.cpu(), model)), torch.stack([ref.energy, ref.magnetisation]))


def test_ising_energy_of_known_states():
    up = torch.ones(1, 4, 6, dtype=torch.int8)
    e, m = ising_energy(up, Ising(J=1.0, h=0.5))
    assert e.item() == -2 * 24 - 0.5 * 24 and m.item() == 24  # 2 bonds per site
    neel = (1 - 2 * ((torch.arange(4).view(-1, 1) + torch.arange(6)) % 2)).to(torch.int8).unsqueeze(0)
    assert ising_energy(neel, Ising())[0].item() == 48 and ising_energy(neel, Ising())[1].item() == 0


def test_ising_rejects_odd_lattices():
    with pytest.raises(ValueError, match="even"):
        sweep_reference(torch.ones(1, 5, 4, dtype=torch.int8), Ising(), 0.4, "heat-bath", (None, None))


def test_entropy():
    x = torch.rand(3, 13, 17, generator=torch.Generator().manual_seed(6))
    x[0, 0, :4] = 0
    torch.testing.assert_close(shannon_entropy_triton(x.to(DEVICE), block=64).cpu(), shannon_entropy_reference(x))
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
    assert 0 <= u.min().item() and u.max().item() < 1 and abs(u.mean().item() - 0.5) < 0.0046  # 5 sigma


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
    assert torch.equal(fast.energy, ref.energy) and torch.equal(fast.magnetisation, ref.magnetisation)


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
