"""Samplers on the Gaussian free field against its closed-form spectrum, mode by mode.

E = sum kappa/2 |grad phi|^2 + m^2/2 phi^2 on a periodic L x L lattice is diagonal in Fourier
space: with phi_k = sum_x phi_x e^{-i k.x} and A_k = kappa sum_a 4 sin^2(k_a / 2) + m^2,
    Boltzmann (exact; MALA):     <|phi_k|^2> / N = T / A_k
    unadjusted Langevin, step eta (its own exact stationary law, biased by the step):
        phi_k <- (1 - eta A_k) phi_k + sqrt(2 eta T) xi_k   =>   <|phi_k|^2> / N = T / (A_k (1 - eta A_k / 2))
    and, from phi = 0, after k steps exactly  <|phi_k|^2> / N = 2 eta T (1 - rho^2k) / (1 - rho^2),  rho = 1 - eta A_k.

The fast tests use those exact laws away from the defaults (T = 0.25 ... 3, several eta, kappa,
m^2): unadjusted Langevin against its law after k steps from 0 (exact at every k, so no burn-in
and no stationarity assumption), and MALA started from exact draws of the Boltzmann field (a
correct MALA keeps that law at every step; a wrong one drifts off it within a few steps). The
slow tests run long chains from 0 at T = 1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from exact_laws import one_torch_thread

from idf.kernels.langevin import langevin_step
from idf.kernels.mala import mala_step
from idf.kernels.phi4 import Phi4

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture
def one_thread():
    with one_torch_thread():
        yield


def _a_k(size: int, kappa: float, mass2: float) -> np.ndarray:
    k = 2 * np.pi * np.arange(size) / size
    lam = 4 * np.sin(k / 2) ** 2
    return kappa * (lam[:, None] + lam[None, :]) + mass2


def _modes(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(one of each pair k, -k of the size x size modes; which of those are real, k = -k)."""
    k = np.arange(size)
    kx, ky = np.meshgrid(k, k, indexing="ij")
    flat, partner = kx * size + ky, ((-kx) % size) * size + (-ky) % size
    return flat <= partner, flat == partner


def _boltzmann_field(
    chains: int, size: int, a: np.ndarray, temperature: float, seed: int
) -> torch.Tensor:
    """Exact draws of exp(-E/T): white noise filtered by sqrt(T / A_k) (a real, stationary
    Gaussian field with <|phi_k|^2> / N = T / A_k), in numpy."""
    white = np.random.default_rng(seed).standard_normal((chains, size, size))
    return torch.from_numpy(np.real(np.fft.ifft2(np.fft.fft2(white) * np.sqrt(temperature / a))))


def _power(phi: torch.Tensor) -> np.ndarray:
    size = phi.shape[-1]
    return (torch.fft.fft2(phi.double()).abs() ** 2 / (size * size)).cpu().numpy()


# (T, eta, kappa, m^2, dtype); largest eta A_k / 2 = 0.43, 0.43, 0.6, 0.09: the step's bias of the
# unadjusted chain, 1 / (1 - eta A_k / 2), reaches 1.74, 1.74, 2.5 and 1.1
ULA_CASES = [
    (0.25, 0.1, 1.0, 0.5, torch.float64),
    (3.0, 0.05, 2.0, 1.0, torch.float32),
    (1.0, 0.2, 0.5, 2.0, torch.float64),
    (3.0, 0.02, 1.0, 1.0, torch.float32),
]


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("temperature, eta, kappa, mass2, dtype", ULA_CASES)
def test_unadjusted_langevin_law_after_k_steps(temperature, eta, kappa, mass2, dtype):
    """256 chains of 8 x 8 from phi = 0, 40 steps: each mode's mean of |phi_k|^2 / (N v_k) over the
    chains is 1, v_k the exact variance after 40 steps. The chains and the modes (one of each
    pair k, -k) are independent Gaussians, so the statistic's law is exact: |phi_k|^2 / (N v_k) is
    Exp(1) for a complex mode (variance 1 / 256 of the mean) and chi^2_1 for a real one (2 / 256).
    Each of the 34 modes within 5 standard errors, and their pooled mean within 5 (pooled
    standard error 1 / sqrt(256 x 34) ~ 0.01: a noise without T would put it at 1 / T).
    Negative control where the step's bias is large: the Boltzmann law T / A_k is rejected."""
    size, chains, steps = 8, 256, 40
    model = Phi4.gaussian_free_field(kappa, mass2)
    phi = torch.zeros(chains, size, size, dtype=dtype, device=DEVICE)
    for step in range(steps):
        phi, _ = langevin_step(
            phi, model, step_size=eta, temperature=temperature, seed=41, step=step
        )
    a = _a_k(size, kappa, mass2)
    rho = 1 - eta * a
    v = 2 * eta * temperature * (1 - rho ** (2 * steps)) / (1 - rho**2)
    half, real = _modes(size)
    ratio = (_power(phi) / v).mean(0)[half]
    var = np.where(real[half], 2.0, 1.0) / chains
    z = (ratio - 1) / np.sqrt(var)
    pooled = (ratio.sum() - ratio.size) / math.sqrt(var.sum())
    assert np.abs(z).max() < 5 and abs(pooled) < 5, (np.abs(z).max(), pooled, ratio.mean())
    if (eta * a / 2).max() > 0.2:
        boltzmann = (_power(phi) / (temperature / a)).mean(0)[half]
        assert abs(boltzmann.sum() - boltzmann.size) / math.sqrt(var.sum()) > 20


# (T, eta, kappa, m^2): eta A_k / 2 up to 0.36, 0.34, 0.34 -- an unadjusted chain with these steps
# would be 1.5 times too wide in its stiffest modes
MALA_CASES = [(0.3, 0.08, 1.0, 1.0), (3.0, 0.15, 0.5, 0.5), (0.25, 0.04, 2.0, 1.0)]


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("temperature, eta, kappa, mass2", MALA_CASES)
def test_mala_keeps_the_boltzmann_spectrum(temperature, eta, kappa, mass2):
    """256 chains of 8 x 8 started from exact Boltzmann draws, 30 MALA steps: the per-chain time
    averages of |phi_k|^2 / (N T / A_k). Standard errors from the spread of the chains (they are
    independent; the spread includes the autocorrelation in time). Each of the 34 independent
    modes within 5 standard errors, and the pooled mean over modes within 5. Negative control:
    the step's unadjusted law T / (A_k (1 - eta A_k / 2)) is rejected by far, so a sampler that
    lost its accept/reject step would fail."""
    size, chains, steps = 8, 256, 30
    a = _a_k(size, kappa, mass2)
    phi = _boltzmann_field(chains, size, a, temperature, seed=43).to(DEVICE)
    model = Phi4.gaussian_free_field(kappa, mass2)
    power = np.zeros((chains, size, size))
    for step in range(steps):
        phi = mala_step(phi, model, step_size=eta, temperature=temperature, seed=47, step=step).phi
        power += _power(phi)
    half, _ = _modes(size)
    per_chain = (power / steps / (temperature / a))[:, half]
    z = (per_chain.mean(0) - 1) / (per_chain.std(0, ddof=1) / math.sqrt(chains))
    pooled = per_chain.mean(1)
    z_pooled = (pooled.mean() - 1) / (pooled.std(ddof=1) / math.sqrt(chains))
    assert np.abs(z).max() < 5 and abs(z_pooled) < 5, (np.abs(z).max(), z_pooled, pooled.mean())
    biased = (power / steps / (temperature / (a * (1 - eta * a / 2))))[:, half].mean(1)
    assert abs(biased.mean() - 1) / (biased.std(ddof=1) / math.sqrt(chains)) > 20


def _spectra(
    sampler: str,
    size: int,
    kappa: float,
    mass2: float,
    eta: float,
    chains: int,
    burn_in: int,
    steps: int,
    thin: int,
    seed: int,
):
    """Per-chain time averages of |phi_k|^2 / N: shape (chains, size, size)."""
    model = Phi4.gaussian_free_field(kappa, mass2)
    phi = torch.zeros(chains, size, size, dtype=torch.float64, device=DEVICE)
    acc = torch.zeros(chains, size, size, dtype=torch.float64, device=DEVICE)
    kept = 0
    accepted = 0.0
    for step in range(burn_in + steps):
        if sampler == "mala":
            result = mala_step(phi, model, step_size=eta, temperature=1.0, seed=seed, step=step)
            phi = result.phi
            accepted += result.accepted.double().mean().item()
        else:
            phi, _ = langevin_step(phi, model, step_size=eta, temperature=1.0, seed=seed, step=step)
        if step >= burn_in and (step - burn_in) % thin == 0:
            acc += torch.fft.fft2(phi).abs() ** 2 / (size * size)
            kept += 1
    return (acc / kept).cpu().numpy(), accepted / (burn_in + steps)


def _z_scores(per_chain: np.ndarray, expected: np.ndarray) -> np.ndarray:
    # standard error from the spread of independent chains' time averages (includes the
    # autocorrelation of each chain)
    se = per_chain.std(axis=0, ddof=1) / math.sqrt(per_chain.shape[0])
    return (per_chain.mean(axis=0) - expected) / se


@pytest.mark.slow
def test_langevin_matches_its_exact_stationary_spectrum():
    """Every one of the 1024 modes within 5 standard errors (chains = 64, so the z-scores are
    Student-t with 63 degrees of freedom: P(any of 1024 beyond 5) ~ 5e-3). Negative control: the
    same samples against the unbiased Boltzmann spectrum fail by far (eta A / 2 is up to 0.4)."""
    size, kappa, mass2, eta = 32, 1.0, 0.5, 0.1
    per_chain, _ = _spectra(
        "langevin", size, kappa, mass2, eta, chains=64, burn_in=200, steps=3000, thin=20, seed=5
    )
    a = _a_k(size, kappa, mass2)
    z = _z_scores(per_chain, 1.0 / (a * (1 - eta * a / 2)))
    assert np.abs(z).max() < 5, np.abs(z).max()
    assert np.abs(_z_scores(per_chain, 1.0 / a)).max() > 20


@pytest.mark.slow
def test_mala_matches_the_boltzmann_spectrum():
    """MALA is exact for exp(-E/T): every one of the 256 modes within 5 standard errors of T / A_k.
    Negative control: the Langevin-biased spectrum of the same step size is rejected."""
    size, kappa, mass2, eta = 16, 1.0, 1.0, 0.03
    per_chain, acceptance = _spectra(
        "mala", size, kappa, mass2, eta, chains=64, burn_in=300, steps=6000, thin=50, seed=6
    )
    assert 0.4 < acceptance < 0.95
    a = _a_k(size, kappa, mass2)
    z = _z_scores(per_chain, 1.0 / a)
    assert np.abs(z).max() < 5, np.abs(z).max()
    assert np.abs(_z_scores(per_chain, 1.0 / (a * (1 - eta * a / 2)))).max() > 5
