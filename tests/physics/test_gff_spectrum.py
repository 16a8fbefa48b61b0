"""Samplers on the Gaussian free field against its closed-form spectrum, mode by mode.

E = sum kappa/2 |grad phi|^2 + m^2/2 phi^2 on a periodic L x L lattice is diagonal in Fourier
space: with phi_k = sum_x phi_x e^{-i k.x} and A_k = kappa sum_a 4 sin^2(k_a / 2) + m^2,
    Boltzmann (exact; MALA):     <|phi_k|^2> / N = T / A_k
    unadjusted Langevin, step eta (its own exact stationary law, biased by the step):
        phi_k <- (1 - eta A_k) phi_k + sqrt(2 eta T) xi_k   =>   <|phi_k|^2> / N = T / (A_k (1 - eta A_k / 2))
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from idf.kernels.langevin import langevin_step
from idf.kernels.mala import mala_step
from idf.kernels.phi4 import Phi4

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _a_k(size: int, kappa: float, mass2: float) -> np.ndarray:
    k = 2 * np.pi * np.arange(size) / size
    lam = 4 * np.sin(k / 2) ** 2
    return kappa * (lam[:, None] + lam[None, :]) + mass2


def _spectra(sampler: str, size: int, kappa: float, mass2: float, eta: float, chains: int, burn_in: int, steps: int, thin: int, seed: int):
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
    per_chain, _ = _spectra("langevin", size, kappa, mass2, eta, chains=64, burn_in=200, steps=3000, thin=20, seed=5)
    a = _a_k(size, kappa, mass2)
    z = _z_scores(per_chain, 1.0 / (a * (1 - eta * a / 2)))
    assert np.abs(z).max() < 5, np.abs(z).max()
    assert np.abs(_z_scores(per_chain, 1.0 / a)).max() > 20


@pytest.mark.slow
def test_mala_matches_the_boltzmann_spectrum():
    """MALA is exact for exp(-E/T): every one of the 256 modes within 5 standard errors of T / A_k.
    Negative control: the Langevin-biased spectrum of the same step size is rejected."""
    size, kappa, mass2, eta = 16, 1.0, 1.0, 0.03
    per_chain, acceptance = _spectra("mala", size, kappa, mass2, eta, chains=64, burn_in=300, steps=6000, thin=50, seed=6)
    assert 0.4 < acceptance < 0.95
    a = _a_k(size, kappa, mass2)
    z = _z_scores(per_chain, 1.0 / a)
    assert np.abs(z).max() < 5, np.abs(z).max()
    assert np.abs(_z_scores(per_chain, 1.0 / (a * (1 - eta * a / 2)))).max() > 5
