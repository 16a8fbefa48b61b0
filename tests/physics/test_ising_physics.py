"""The Ising sampler against exact physics: Onsager's infinite-lattice results at L = 64, and the
exact Boltzmann distribution of a 4 x 4 lattice by enumeration of all 2^16 states (fast: energy
and magnetisation moments at several T, J and fields h != 0 for both update rules; slow: the
full p(E, |M|) at h = 0)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from exact_laws import one_torch_thread
from onsager import T_CRITICAL, elliptic_k, energy_per_spin, magnetisation

from idf.kernels.ising import Ising, ising_energy, ising_sweep

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture
def one_thread():
    with one_torch_thread():
        yield


def test_exact_formulas_known_values():
    assert elliptic_k(0.0) == pytest.approx(math.pi / 2)
    assert T_CRITICAL == pytest.approx(2.269185314213022)
    assert energy_per_spin(T_CRITICAL * (1 + 1e-6)) == pytest.approx(
        -math.sqrt(2), abs=1e-4
    )  # u(T_c) = -sqrt(2)
    assert energy_per_spin(0.5) == pytest.approx(-2.0, abs=1e-6)  # ground state: 2 bonds per spin
    assert energy_per_spin(1e3) == pytest.approx(
        -math.tanh(1e-3) * 2, rel=1e-3
    )  # high T: -2 tanh(beta)
    assert magnetisation(1.0) == pytest.approx(0.99927, abs=1e-5)


def _run(
    temperature: float, rule: str, chains: int, burn_in: int, sweeps: int, size: int, seed: int
):
    """Per-chain time averages of |m| and E/N after burn-in, starting fully ordered."""
    s = torch.ones(chains, size, size, dtype=torch.int8, device=DEVICE)
    model = Ising(J=1.0, h=0.0)
    abs_m = torch.zeros(chains, dtype=torch.float64, device=DEVICE)
    energy = torch.zeros(chains, dtype=torch.float64, device=DEVICE)
    for step in range(burn_in + sweeps):
        swept = ising_sweep(s, model, temperature=temperature, rule=rule, seed=seed, step=step)
        s = swept.spins
        if step >= burn_in:
            abs_m += swept.magnetisation.abs()
            energy += swept.energy
    n = size * size
    return (abs_m / (sweeps * n)).cpu().numpy(), (energy / (sweeps * n)).cpu().numpy(), s


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [1.8, 2.0, 2.6, 3.0])
def test_onsager_at_l64(temperature):
    """Tolerance: 5 standard errors of the mean over 32 independent chains (each chain's time
    average; the chain-to-chain spread includes autocorrelation), plus the finite-size effect.
    Off criticality the correlation length is a few sites (< 3 at these T), and finite-size
    corrections to e and m fall like exp(-L / xi) < 1e-9 at L = 64: negligible. Above T_c the
    infinite-lattice |m| is 0, but a finite lattice has <|m|> ~ sqrt(2 chi T / (pi N)) with the
    susceptibility chi = O(1..10) here: at most ~0.08 at L = 64, so we bound it by 0.1 and check
    it shrinks with L."""
    m, e, last = _run(
        temperature, "heat-bath", chains=32, burn_in=500, sweeps=1500, size=64, seed=17
    )
    se_e = e.std(ddof=1) / math.sqrt(len(e))
    assert abs(e.mean() - energy_per_spin(temperature)) <= 5 * se_e + 1e-9, (
        e.mean(),
        energy_per_spin(temperature),
        se_e,
    )
    assert se_e < 2e-3  # the test has power: errors far smaller than the differences between T
    if temperature < T_CRITICAL:
        se_m = m.std(ddof=1) / math.sqrt(len(m))
        assert abs(m.mean() - magnetisation(temperature)) <= 5 * se_m + 1e-9, (
            m.mean(),
            magnetisation(temperature),
            se_m,
        )
    else:
        assert m.mean() < 0.1
        small, _, _ = _run(
            temperature, "heat-bath", chains=32, burn_in=500, sweeps=1500, size=16, seed=18
        )
        assert m.mean() < 0.6 * small.mean()  # finite-size |m| shrinks (~1/L) as the lattice grows


def _exact_em_distribution(temperature: float, size: int = 4) -> dict[tuple[int, int], float]:
    """p(E, |M|) of the periodic size x size lattice by enumerating all 2^(size^2) states.

    |M| rather than M: at low T the sampler tunnels between +M and -M only every few hundred
    sweeps (a barrier of ~8J), so the sign split of a short run reflects its start, not the
    stationary law; the law is exactly symmetric under s -> -s."""
    n = size * size
    codes = np.arange(2**n, dtype=np.int64)
    spins = ((codes[:, None] >> np.arange(n)) & 1).astype(np.int8) * 2 - 1
    s = torch.from_numpy(spins.reshape(-1, size, size))
    e, m = ising_energy(s, Ising())
    weights = np.exp(-(e.numpy() - e.numpy().min()) / temperature)
    keys = np.stack([e.numpy().round().astype(int), np.abs(m.numpy()).round().astype(int)], 1)
    out: dict[tuple[int, int], float] = {}
    for key, w in zip(map(tuple, keys), weights):
        out[key] = out.get(key, 0.0) + w
    z = sum(out.values())
    return {k: v / z for k, v in out.items()}


def _sampled_em(temperature: float, rule: str, chains=4096, burn_in=50, sweeps=200, thin=2, seed=3):
    s = (
        (torch.randint(0, 2, (chains, 4, 4), generator=torch.Generator().manual_seed(seed)) * 2 - 1)
        .to(torch.int8)
        .to(DEVICE)
    )
    counts: dict[tuple[int, int], int] = {}
    total = 0
    for step in range(burn_in + sweeps):
        swept = ising_sweep(s, Ising(), temperature=temperature, rule=rule, seed=seed, step=step)
        s = swept.spins
        if step >= burn_in and (step - burn_in) % thin == 0:
            keys = (
                torch.stack([swept.energy.round(), swept.magnetisation.abs().round()], 1)
                .to(torch.int64)
                .cpu()
                .numpy()
            )
            uniq, cnt = np.unique(keys, axis=0, return_counts=True)
            for k, c in zip(map(tuple, uniq), cnt):
                counts[k] = counts.get(k, 0) + int(c)
            total += len(keys)
    return {k: c / total for k, c in counts.items()}, total


def _tv(p: dict, q: dict) -> float:
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["heat-bath", "metropolis"])
@pytest.mark.parametrize("temperature", [1.5, 2.27, 3.5])
def test_stationary_distribution_on_4x4_matches_enumeration(rule, temperature):
    """Total-variation distance between the sampled and exact p(E, |M|). Bound: for N independent
    draws, E[TV] ~ 1/2 sum_k sqrt(2 p_k (1 - p_k) / (pi N)); successive samples (2 sweeps apart)
    are correlated, which at most a few-fold inflates it, so we allow 4x that plus 0.002.
    A negative control at a 15% wrong temperature must exceed the same bound."""
    exact = _exact_em_distribution(temperature)
    sampled, n = _sampled_em(temperature, rule)
    expected_iid = 0.5 * sum(math.sqrt(2 * p * (1 - p) / (math.pi * n)) for p in exact.values())
    bound = 4 * expected_iid + 0.002
    assert _tv(sampled, exact) <= bound, (_tv(sampled, exact), bound)
    wrong = _exact_em_distribution(temperature * 1.15)
    assert _tv(sampled, wrong) > bound


def _enumerated_law(temperature: float, coupling: float, field: float, size: int = 4):
    """(probabilities, E, M) of every state of the periodic size x size lattice, written here from
    the definition with explicit neighbour lists (not the kernels' energy): each site's bonds to
    its right and lower neighbours, E = -J sum s_i s_j - h sum s_i."""
    n = size * size
    spins = ((np.arange(2**n, dtype=np.int64)[:, None] >> np.arange(n)) & 1) * 2 - 1
    y, x = np.divmod(np.arange(n), size)
    right, down = y * size + (x + 1) % size, ((y + 1) % size) * size + x
    energy = -coupling * (spins * (spins[:, right] + spins[:, down])).sum(1) - field * spins.sum(1)
    weights = np.exp(-(energy - energy.min()) / temperature)
    return (
        weights / weights.sum(),
        energy.astype(np.float64),
        spins.sum(1).astype(np.float64),
        spins,
    )


# (T, J, h): ordered in a field, near T_c, an antiferromagnet (J < 0; the lattice is bipartite, so
# it orders in the staggered pattern) and a weak coupling; all with h != 0, so the law is not
# symmetric under s -> -s. The probability of the sign against the field is 4e-6, 0.08, 0.10,
# 0.04: either far below 1 / chains (then it moves <M> by < 1e-4, a hundredth of its standard
# error) or well sampled. In between (e.g. h = 0.3 at T = 1.5: 2e-3, ~2 chains of 1024) the
# chains' spread would misjudge the standard error of <M>.
ISING_CASES = [(1.5, 1.0, 0.6), (2.27, 1.0, -0.2), (2.0, -1.0, 0.25), (1.2, 0.5, 0.15)]


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("rule", ["heat-bath", "metropolis"])
@pytest.mark.parametrize("temperature, coupling, field", ISING_CASES)
def test_4x4_moments_match_enumeration(rule, temperature, coupling, field):
    """1024 chains of 4 x 4 started from exact draws of the enumerated law, 30 sweeps: per-chain
    time averages of E, M, E^2 and M^2 within 5 standard errors of their exact values. A correct
    sweep keeps the law, so there is no burn-in and no start-up bias, also where the chains
    tunnel rarely between +M and -M (the chains' spread includes that: they are independent).
    Negative control: the same averages against the law at a 15% different temperature are
    rejected by far, so a heat-bath or Metropolis probability that is 15% off is caught."""
    chains, sweeps = 1024, 30
    prob, energy, magnetisation, states = _enumerated_law(temperature, coupling, field)
    rng = np.random.default_rng(19)
    start = states[rng.choice(len(prob), size=chains, p=prob)].reshape(chains, 4, 4)
    s = torch.from_numpy(start.astype(np.int8)).to(DEVICE)
    model = Ising(J=coupling, h=field)
    sums = np.zeros((4, chains))
    for step in range(sweeps):
        swept = ising_sweep(s, model, temperature=temperature, rule=rule, seed=37, step=step)
        s = swept.spins
        e, m = swept.energy.cpu().numpy(), swept.magnetisation.cpu().numpy()
        sums += [e, m, e * e, m * m]
    per_chain = sums / sweeps
    se = per_chain.std(1, ddof=1) / math.sqrt(chains)

    def z(p):
        exact = np.array([p @ energy, p @ magnetisation, p @ energy**2, p @ magnetisation**2])
        return (per_chain.mean(1) - exact) / se

    assert np.abs(z(prob)).max() < 5, (z(prob), per_chain.mean(1))
    assert np.abs(z(_enumerated_law(1.15 * temperature, coupling, field)[0])).max() > 15
