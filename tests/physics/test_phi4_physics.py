"""phi^4 samplers away from the defaults, against laws computed independently in numpy
(tests/physics/exact_laws.py): single sites (kappa = 0, where exp(-E/T) factorises into
one-site densities exp(-(a x^2/2 + b x^4/4 - h x)/T)) and a periodic 1-D ring (kappa > 0, by
its transfer operator).

Each MALA chain starts from an exact draw of the target law. A correct kernel keeps that law at
every step, so time averages need no burn-in and carry no start-up bias; a wrong kernel drifts
away from it within a few steps, which is what the tests detect. The unadjusted Langevin chain
has its own law, biased by the step; we compute that law itself after k steps from 0 (its
transition kernel iterated on a grid) and compare with it, so no tolerance absorbs a bias.

Tolerances: 5 standard errors. Chains are independent, so the standard error of a mean over
chains of per-chain time averages is the chains' spread / sqrt(chains), autocorrelation
included; with thousands of chains the mean is normal to a good approximation, and the chance
that any of the 30 z-scores below passes 5 by chance is ~ 30 x 6e-7.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from exact_laws import Ring, Site, law_moments, one_torch_thread

from idf.kernels.langevin import langevin_step
from idf.kernels.mala import mala_step
from idf.kernels.phi4 import Phi4

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
Z_MAX = 5.0
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def one_thread():
    with one_torch_thread():
        yield


# (a, b, h, T, eta): a double well at low T, a stiff quartic at high T, deep wells at T = 3,
# and a Gaussian (b = 0) at T = 0.3 with a step so large (eta a = 0.6) that the unadjusted chain's
# variance is 1 / (1 - eta a / 2) = 1.43 times the Boltzmann one
SITES = [
    (-1.0, 1.0, 0.3, 0.5, 0.1),
    (0.5, 2.0, -0.5, 2.0, 0.05),
    (-2.0, 0.5, 0.2, 3.0, 0.05),
    (1.0, 0.0, 0.4, 0.3, 0.6),
]


def _z(per_chain: np.ndarray, expected: float) -> float:
    return float(
        (per_chain.mean() - expected) / (per_chain.std(ddof=1) / math.sqrt(len(per_chain)))
    )


def test_exact_laws_reproduce_the_gaussian_closed_forms():
    """The numerical laws against the Gaussian case (b = 0), where everything is closed-form:
    Boltzmann N(h/a, T/a); the unadjusted chain from 0 has mean m_{k+1} = (1 - eta a) m_k + eta h
    and variance v_{k+1} = (1 - eta a)^2 v_k + 2 eta T; the ring's <x^2> and <x_0 x_1> are sums
    over its Fourier modes of T cos(q)^{0,1} / (N A_q), A_q = 4 kappa sin^2(q/2) + a, plus (h/a)^2."""
    site = Site(a=1.5, b=0.0, h=0.4, temperature=0.7)
    mean = 0.4 / 1.5
    np.testing.assert_allclose(site.moments((1, 2)), [mean, 0.7 / 1.5 + mean**2], rtol=1e-10)
    eta, steps = 0.2, 12
    m = v = 0.0
    for _ in range(steps):
        m, v = (1 - eta * 1.5) * m + eta * 0.4, (1 - eta * 1.5) ** 2 * v + 2 * eta * 0.7
    x, p = site.ula_law(eta, steps)
    np.testing.assert_allclose(law_moments(x, p, (1, 2)), [m, v + m * m], rtol=1e-9)
    n, kappa = 6, 0.8
    q = 2 * np.pi * np.arange(n) / n
    a_q = 4 * kappa * np.sin(q / 2) ** 2 + 1.5
    ring = Ring(site, kappa, n).moments()
    assert ring["x1"] == pytest.approx(mean, rel=1e-9)
    assert ring["x2"] == pytest.approx(0.7 / n * np.sum(1 / a_q) + mean**2, rel=1e-9)
    assert ring["x0x1"] == pytest.approx(0.7 / n * np.sum(np.cos(q) / a_q) + mean**2, rel=1e-9)


@pytest.mark.parametrize("a, b, h, temperature, eta", SITES)
def test_mala_single_site_moments_and_acceptance(a, b, h, temperature, eta):
    """16384 one-site chains from exact draws, 20 MALA steps: <x>, <x^2>, <x^4> and the mean
    acceptance rate within 5 standard errors of the quadrature values (the acceptance of a
    stationary chain is the 2-D integral E min(1, alpha) over x and the proposal's noise). The
    acceptance rate also checks the proposal: MALA with a wrong gradient still keeps exp(-E/T)
    (its acceptance corrects any proposal) but accepts less often."""
    site = Site(a, b, h, temperature)
    chains, steps = 16384, 20
    rng = np.random.default_rng(11)
    phi = torch.from_numpy(site.sample(chains, rng)).reshape(chains, 1).to(DEVICE)
    model = Phi4(kappa=0.0, a=a, b=b, h=h)
    sums = np.zeros((4, chains))
    for step in range(steps):
        r = mala_step(
            phi, model, step_size=eta, temperature=temperature, seed=23, step=step, ndim=1
        )
        phi = r.phi
        x = phi[:, 0].double().cpu().numpy()
        sums += [x, x**2, x**4, r.accepted.double().cpu().numpy()]
    per_chain = sums / steps
    exact = list(site.moments((1, 2, 4))) + [site.mala_acceptance(eta)]
    z = [_z(pc, e) for pc, e in zip(per_chain, exact)]
    assert max(map(abs, z)) < Z_MAX, (z, per_chain.mean(1), exact)


@pytest.mark.parametrize("a, b, h, temperature, eta", SITES)
def test_unadjusted_langevin_single_site_law_after_k_steps(a, b, h, temperature, eta):
    """16384 independent sites (64 chains x 256 sites, kappa = 0, so every site is its own chain)
    after 25 unadjusted steps from 0: <x> and <x^2> within 5 standard errors of the chain's exact
    law at step 25. The draws are independent, so the standard error is exact:
    sqrt((<x^2m> - <x^m>^2) / n) from that same law. Negative control: the step's bias is
    visible, i.e. the Boltzmann <x^2> is excluded where eta makes it differ."""
    site = Site(a, b, h, temperature)
    steps = 25
    model = Phi4(kappa=0.0, a=a, b=b, h=h)
    phi = torch.zeros(64, 256, dtype=torch.float64, device=DEVICE)
    for step in range(steps):
        phi, _ = langevin_step(
            phi, model, step_size=eta, temperature=temperature, seed=29, step=step, ndim=1
        )
    x = phi.cpu().numpy().ravel()
    grid, law = site.ula_law(eta, steps)
    m = law_moments(grid, law, (1, 2, 4))
    se = np.sqrt([m[1] - m[0] ** 2, m[2] - m[1] ** 2]) / math.sqrt(x.size)
    z = (np.array([x.mean(), (x**2).mean()]) - m[:2]) / se
    assert np.abs(z).max() < Z_MAX, (z, [x.mean(), (x**2).mean()], m[:2])
    if b == 0:  # the big-step Gaussian: its law has clearly left exp(-E/T)
        assert abs(((x**2).mean() - site.moments((2,))[0]) / se[1]) > 3 * Z_MAX


@pytest.mark.parametrize(
    "kappa, a, b, h, temperature, eta",
    [(1.0, -1.0, 1.0, 0.2, 0.7, 0.05), (0.5, 0.3, 2.0, -0.4, 2.0, 0.04)],
)
def test_mala_ring_matches_the_transfer_operator(kappa, a, b, h, temperature, eta):
    """A periodic ring of 8 coupled phi^4 sites (ndim = 1): 512 chains from exact draws of the
    ring's law, 30 MALA steps; the site averages of x, x^2 and x_i x_{i+1} within 5 standard
    errors (chains' spread) of the transfer-operator values. The draws sit on a grid of spacing
    ~0.02 spread uniformly over their cells: that moves <x^2> by ~dx^2/12 ~ 3e-5, far below the
    standard errors (measured 4e-3 to 1.7e-2)."""
    ring = Ring(Site(a, b, h, temperature), kappa, 8)
    chains, steps = 512, 30
    phi = torch.from_numpy(ring.sample(chains, np.random.default_rng(13))).to(DEVICE)
    model = Phi4(kappa=kappa, a=a, b=b, h=h)
    sums = np.zeros((3, chains))
    for step in range(steps):
        phi = mala_step(
            phi, model, step_size=eta, temperature=temperature, seed=31, step=step, ndim=1
        ).phi
        x = phi.double().cpu().numpy()
        sums += [x.mean(1), (x**2).mean(1), (x * np.roll(x, -1, 1)).mean(1)]
    exact = ring.moments()
    z = [_z(pc, e) for pc, e in zip(sums / steps, [exact["x1"], exact["x2"], exact["x0x1"]])]
    assert max(map(abs, z)) < Z_MAX, (z, (sums / steps).mean(1), exact)
