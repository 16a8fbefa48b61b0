"""A whole sampling run as a caller sees it (idf.engine.sampling.boltzmann), checked against independent
ground truths rather than against the code's own arithmetic:

- `effective_sample_size` against a direct-sum implementation of the documented estimator
  (docs/diffusion.md, the proto: the kept trace's length over its integrated autocorrelation
  time, Geyer's initial positive sequence, summed over chains) and against exact laws: an AR(1)
  series x_t = ρ x_{t−1} + ε has τ = (1 + ρ)/(1 − ρ), iid data τ = 1; it is a sum over chains,
  blind to a constant offset, and stops when asked with the work it was given.
- `sample`'s SampleOutput: shapes and dtypes (float32, float64 on request, int8 spins), the energy
  returned is the energy (the formula of docs/diffusion.md, evaluated here in numpy float64) of
  the samples returned, totals are exact sums, the total constraint's residual, acceptance rates
  (a count over the kept steps for MALA / replica exchange, NaN for the others), work =
  sites·chains·steps·replicas, progress reports (cadence, fields, "acceptance rate since the
  previous report"), Cancelled's and Diverged's work, Ising initial states validated, the same
  seed giving the same samples (the proto's promise).
- `estimate` against the memory model stated beside its constants, `tolerance_failures`
  against the documented default tolerance 1e-6·max(1, |target|).

Every run is seeded and small (≤ 64 sites but the 32×32 reverse-diffusion run, ≤ 64 chains,
≤ 100 steps); the whole file takes ~5 s."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from idf.engine.errors import Cancelled, Diverged, ParameterError
from idf.engine.sampling import boltzmann as sampling
from idf.engine.sampling.boltzmann import (
    Constraint,
    SampleOutput,
    SampleSpec,
    effective_sample_size,
    estimate,
    sample,
)

# --- independent references -------------------------------------------------------------------------


def geyer_ess(x: np.ndarray) -> float:
    """The documented estimator written plainly: sample autocorrelations ρ_t = Σ_{i<n−t} x_i x_{i+t}
    / Σ x_i² of the centred series (a direct sum, no FFT), pair sums Γ_k = ρ_{2k} + ρ_{2k+1} summed
    while positive (Geyer's initial positive sequence), τ = −1 + 2 Σ Γ_k, ESS = n / τ, and never
    more samples than steps (τ ≥ 1). A constant series has no correlation to estimate: n."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    x = x - x.mean()
    c0 = float(np.dot(x, x))
    if c0 == 0:
        return float(n)
    rho = [float(np.dot(x[: n - t], x[t:])) / c0 for t in range(n)]
    tau = -1.0
    for k in range(n // 2):
        g = rho[2 * k] + rho[2 * k + 1]
        if g <= 0:
            break
        tau += 2 * g
    return n / max(tau, 1.0)


def ar1(rho: float, n: int, chains: int, seed: int) -> np.ndarray:
    """(n, chains) stationary AR(1) series x_t = ρ x_{t−1} + ε_t."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(size=(n, chains))
    x = np.empty((n, chains))
    x[0] = eps[0] / math.sqrt(1 - rho * rho)  # start in the stationary law
    for t in range(1, n):
        x[t] = rho * x[t - 1] + eps[t]
    return x


def numpy_energy(
    samples: np.ndarray, model: str, params: dict[str, float], field: np.ndarray | None = None
) -> np.ndarray:
    """The energies of docs/diffusion.md's table, in float64, per chain (periodic lattices)."""
    s = samples.astype(np.float64)
    axes = tuple(range(1, s.ndim))
    if model == "ising":
        J, h = (
            params.get("J", 1.0),
            params.get("h", 0.0) + (0.0 if field is None else field.astype(np.float64)),
        )
        bonds = s * (np.roll(s, -1, -1) + np.roll(s, -1, -2))
        return -J * bonds.sum(axes) - (h * s).sum(axes)
    if model == "gaussian-free-field":
        kappa, a, b = params.get("kappa", 1.0), params.get("mass2", 1.0), 0.0
    else:
        kappa, a, b = params.get("kappa", 1.0), params.get("a", -1.0), params.get("b", 1.0)
    h = params.get("h", 0.0) + (0.0 if field is None else field.astype(np.float64))
    grad2 = sum((np.roll(s, -1, ax) - s) ** 2 for ax in axes)
    site = kappa / 2 * grad2 + a / 2 * s**2 + b / 4 * s**4 - h * s
    return site.sum(axes)


def energy_scale(samples: np.ndarray) -> np.ndarray:
    """Σ over sites of the magnitudes entering the energy, per chain: the scale of rounding error."""
    s = np.abs(samples.astype(np.float64))
    axes = tuple(range(1, s.ndim))
    return (s**2 + s**4 + 4 * s**2 + s).sum(axes) + 1.0


# --- effective_sample_size --------------------------------------------------------------------------

TRACES = {
    "ar1-0.9": ar1(0.9, 400, 1, 1)[:, 0]
    - 50.0,  # strongly correlated, mean and variance far from 0 and 1
    "ar1-0.5-odd": ar1(0.5, 203, 1, 2)[:, 0] * 3.0,
    "random-walk-odd": np.cumsum(
        np.random.default_rng(3).normal(size=201)
    ),  # long positive run of ρ_t
    "random-walk": np.cumsum(np.random.default_rng(4).normal(size=120)) + 7.0,
    "ramp-4": np.arange(4.0),  # the shortest trace the estimator applies to: τ = 1.5 by hand
    "ramp-5": np.arange(5.0) * 2.0,
    "blocks": np.tile(
        np.repeat([1.0, -1.0], 8), 6
    ),  # variance exactly 1, correlated in blocks of 8
    "iid": np.random.default_rng(5).normal(size=300),
    # integer, mean 0, Σx² = 12, ρ_1..7 = (1, 3, −3, 2, −1, 0, −2)/12: Γ_0 = 13/12, Γ_1 = 0 exactly,
    # Γ_2 = 1/12 > 0: the sum stops at the first pair that is not positive, zero included:
    # τ = −1 + 2·13/12 = 7/6, ESS = 17·6/7 (going on to Γ_2 would give 17·3/4)
    # 11 integers: Γ_0..Γ_3 = (3665/5104, 461/5104, 175/1276, 277/2552) > 0, Γ_4 < 0: the positive
    # sequence runs to lag 7 of 10 (past two thirds of the trace): τ = 707/638, ESS = 7018/707
    "long-positive-run": np.array([3, 1, 2, -2, 1, 0, 1, 2, -3, 1, -3], dtype=np.float64),
    "zero-pair": np.array(
        [1, 1, 1, 1, 0, -1, 0, -1, 1, -1, 0, -1, 1, 0, -1, -1, 0], dtype=np.float64
    ),
}


@pytest.mark.parametrize("name", sorted(TRACES))
def test_ess_is_geyers_estimator(name):
    """The FFT implementation equals the plain direct-sum estimator; rtol 1e-9: the two sum the
    same products in different orders (float64 rounding ~1e-13 relative on these lengths)."""
    x = TRACES[name]
    assert effective_sample_size(x[:, None]) == pytest.approx(geyer_ess(x), rel=1e-9)


def test_ess_of_a_four_step_ramp_by_hand():
    """x = 0,1,2,3 centred: Σx² = 5, ρ = 1, 1/4, −3/10, −9/20; Γ_0 = 5/4 > 0, Γ_1 = −3/4 stops
    the sum: τ = −1 + 5/2 = 3/2, ESS = 4 / (3/2) = 8/3."""
    assert effective_sample_size(np.arange(4.0)[:, None]) == pytest.approx(8 / 3, rel=1e-12)


def test_ess_of_a_long_positive_sequence_by_hand():
    """The pair sums are exact rationals here (see TRACES): every positive one counts (1e-12)."""
    assert effective_sample_size(TRACES["long-positive-run"][:, None]) == pytest.approx(
        7018 / 707, rel=1e-12
    )


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_ess_of_ar1_chains_follows_the_exact_autocorrelation_time(rho):
    """AR(1): ρ_t = ρ^t, so τ = 1 + 2 Σ_{t≥1} ρ^t = (1 + ρ)/(1 − ρ) exactly and ESS = n (1 − ρ)/(1 + ρ)
    per chain. 8 chains of 4000 steps: the estimator's relative spread on τ is about
    sqrt(2(2M + 1)/n) with M ~ 3τ lags summed (≤ 15% per chain at ρ = 0.9, ≤ 6% over 8 chains),
    and the truncation biases it a few % low: over seeds 0-19 the ratio to the exact value ranged
    0.88-1.06 for the three ρ. 15% bounds it (and the seed is fixed)."""
    n, chains = 4000, 8
    expected = chains * n * (1 - rho) / (1 + rho)
    assert effective_sample_size(ar1(rho, n, chains, 11)) == pytest.approx(expected, rel=0.15)


def test_ess_of_iid_data_is_the_trace_length():
    """τ = 1 for independent draws: ESS ≈ n (the same 15% as above; at τ = 1 the spread is ~4%)."""
    x = np.random.default_rng(12).normal(size=(2000, 4))
    assert effective_sample_size(x) == pytest.approx(8000, rel=0.15)
    assert effective_sample_size(x) <= 8000  # never more samples than steps


def test_constant_and_alternating_chains_count_every_step():
    """A constant chain (nothing to correlate) and an alternating one (ρ_t = (−1)^t (n − t)/n, every
    pair sum 1/n > 0, τ = −1 + 2·(n/2)/n = 0, capped at 1) both count each of their n steps: exact."""
    n = 64
    assert effective_sample_size(np.full((n, 1), 3.5)) == n
    # a constant whose float mean is inexact (22 × 0.1) is still constant: was 1.0 (its centred
    # trace was a constant 1e-17, not zero), while 3.5 gave n
    for value in (0.1, 1 / 3, -7.3e5, 1e-300):
        assert effective_sample_size(np.full((22, 1), value)) == 22
    # values apart by the smallest subnormal: the centred squares underflow to a zero variance,
    # which reads as constant too (not a division by zero)
    tiny = np.tile([0.0, 5e-324], 11)[:, None]
    assert effective_sample_size(tiny) == 22
    assert effective_sample_size(np.hstack([tiny, np.full((22, 1), 0.1), tiny])) == 66
    assert effective_sample_size(np.tile([1.0, -1.0], n // 2)[:, None]) == n


def test_ess_is_a_sum_over_chains():
    """Summed over chains, in any order, constant chains and short traces included (exact: each
    chain's term is computed alone and added)."""
    cols = [TRACES["random-walk"], np.full(120, -2.0), ar1(0.7, 120, 1, 8)[:, 0], np.zeros(120)]
    trace = np.stack(cols, axis=1)
    assert effective_sample_size(trace) == pytest.approx(sum(geyer_ess(c) for c in cols), rel=1e-9)
    for order in ([1, 0, 2, 3], [3, 2, 1, 0]):
        assert effective_sample_size(trace[:, order]) == pytest.approx(
            effective_sample_size(trace), rel=1e-12
        )
    for n in (1, 2, 3, 4, 5):  # short traces too: chains add
        short = np.random.default_rng(n).normal(size=(n, 3))
        total = effective_sample_size(short)
        assert total == pytest.approx(
            sum(effective_sample_size(short[:, [c]]) for c in range(3)), rel=1e-12
        )
        assert 0 < total <= 3 * n


def test_ess_is_blind_to_a_constant_offset():
    """Autocorrelation is of the centred series: adding 1000 changes nothing (rtol 1e-8: the offset
    costs ~1e-13 relative in the centring)."""
    x = ar1(0.8, 300, 2, 9)
    assert effective_sample_size(x + 1000.0) == pytest.approx(effective_sample_size(x), rel=1e-8)


def test_ess_stops_when_asked_with_the_work_it_was_given():
    x = ar1(0.5, 50, 3, 1)
    with pytest.raises(Cancelled) as e:
        effective_sample_size(x, lambda: True, 777)
    assert e.value.site_updates == 777
    with pytest.raises(Cancelled) as e:
        effective_sample_size(x, lambda: True)  # no work said: none charged
    assert e.value.site_updates == 0


# --- _check_finite ----------------------------------------------------------------------------------


def test_a_non_finite_mala_energy_blames_the_model():
    with pytest.raises(Diverged) as e:
        sampling._check_finite(
            torch.tensor([0.0, math.nan], dtype=torch.float64), 15, 0.2, "mala", 64
        )
    assert (e.value.parameter, e.value.step, e.value.site_updates) == (
        "energy_model.parameters",
        15,
        64,
    )


# --- tolerance_failures -----------------------------------------------------------------------------


def _out(residual: float) -> SampleOutput:
    z = np.zeros(2)
    return SampleOutput(
        samples=np.zeros((2, 4)),
        energy=z,
        total=z,
        constraint_residual=np.array([0.0, residual]),
        acceptance_rate=z,
        effective_sample_size=1.0,
        site_updates=0,
        compute_seconds=0.0,
    )


def _spec(target: float, tolerance: float) -> SampleSpec:
    return SampleSpec(
        "gaussian-free-field",
        {},
        (4,),
        "langevin",
        constraints=(Constraint("total", target, tolerance, 0.0),),
    )


@pytest.mark.parametrize(
    "target, tolerance, residual, fails",
    [
        (1e3, 0.0, 5e-4, False),  # default tolerance 1e-6·max(1, 1000) = 1e-3
        (1e3, 0.0, 2e-3, True),
        (-1e3, 0.0, 9e-4, False),  # |target|
        (0.5, 0.0, 1.5e-6, True),  # default 1e-6·max(1, 0.5) = 1e-6
        (0.5, 0.0, 0.9e-6, False),
        (3.0, 0.25, 0.25, False),  # exactly at the tolerance: not "more than"
        (3.0, 0.25, 0.2500001, True),
        (3.0, 0.1, 5e-3, False),  # a given tolerance replaces the default
    ],
)
def test_tolerance_failures_follow_the_documented_tolerance(target, tolerance, residual, fails):
    failures = sampling.tolerance_failures(_spec(target, tolerance), _out(residual))
    assert bool(failures) is fails
    if fails:
        tol = tolerance or 1e-6 * max(1.0, abs(target))
        assert failures == [
            f"constraints[0] (total = {target}): residual {residual:.3g} > tolerance {tol:.3g}"
        ]


# --- estimate -----------------------------------------------------------------------------------------


def test_estimate_follows_its_memory_model():
    """state_bytes = chains·sites·itemsize·(step buffers [+ R replicas]) (Gibbs: a fixed byte
    count per chain-site), + 64 B per site for an external field, + per kept step a float64
    per chain (16 B with the list) and 120 B of array object: the model written beside the
    constants. site_updates = sites·chains·steps·replicas."""
    base = dict(shape=(6, 10), steps=30, burn_in=12, count=3)
    sites, kept = 60, 18
    trace = kept * (3 * 16 + 120)
    for kind, buffers in (("langevin", 12), ("mala", 15)):
        for dtype, itemsize in (("", 4), ("float32", 4), ("float64", 8)):
            cost = estimate(SampleSpec("phi4", {}, sampler=kind, dtype=dtype, **base))
            assert cost.state_bytes == 3 * sites * itemsize * buffers + trace, (kind, dtype)
            assert cost.site_updates == sites * 3 * 30
    field = np.zeros((6, 10))
    with_field = estimate(
        SampleSpec("phi4", {}, sampler="langevin", dtype="float64", external_field=field, **base)
    )
    assert with_field.state_bytes == 3 * sites * 8 * 12 + sites * 64 + trace
    rx = estimate(
        SampleSpec(
            "phi4", {}, sampler="replica-exchange", temperatures=(1.0, 1.5, 2.0, 3.0), **base
        )
    )
    assert rx.state_bytes == 3 * sites * 4 * (14 + 4) + trace
    assert rx.site_updates == sites * 3 * 30 * 4
    gibbs = estimate(SampleSpec("ising", {}, sampler="gibbs", external_field=field, **base))
    assert gibbs.state_bytes == 3 * sites * 68 + sites * 64 + trace


# --- sample: what a caller sees ----------------------------------------------------------------------

RUNS = {
    # name: (spec, params for the energy, replicas)
    "langevin-phi4-f32-field": (
        SampleSpec(
            "phi4",
            {"a": -0.5},
            (6, 8),
            "langevin",
            steps=12,
            count=3,
            seed=1,
            external_field=np.random.default_rng(2).normal(size=(6, 8)),
        ),
        1,
    ),  # float64 field, float32 run
    "mala-phi4-f64-field": (
        SampleSpec(
            "phi4",
            {"h": 0.2},
            (6, 8),
            "mala",
            step_size=0.15,
            steps=12,
            count=3,
            seed=2,
            dtype="float64",
            external_field=np.random.default_rng(0).normal(size=(6, 8)),
        ),
        1,
    ),
    "langevin-gff-1d": (
        SampleSpec("gaussian-free-field", {}, (16,), "langevin", steps=10, count=2, seed=3),
        1,
    ),
    "mala-phi4-3d": (
        SampleSpec("phi4", {}, (3, 4, 5), "mala", steps=8, count=2, seed=4, dtype="float64"),
        1,
    ),
    "annealed-gff": (
        SampleSpec(
            "gaussian-free-field",
            {},
            (6, 6),
            "annealed-langevin",
            max_temperature=3.0,
            steps=10,
            count=2,
            seed=5,
        ),
        1,
    ),
    "replica-phi4-f64": (
        SampleSpec(
            "phi4",
            {},
            (4, 6),
            "replica-exchange",
            temperatures=(1.0, 1.4, 2.0),
            step_size=0.12,
            steps=10,
            count=3,
            seed=6,
            dtype="float64",
        ),
        3,
    ),
    "gibbs-ising-field": (
        SampleSpec(
            "ising",
            {"J": 0.7},
            (4, 6),
            "gibbs",
            steps=6,
            count=3,
            seed=7,
            external_field=np.random.default_rng(1).normal(size=(4, 6)),
        ),
        1,
    ),
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_sample_output_is_what_was_asked_and_measures_itself(name):
    spec, replicas = RUNS[name]
    before = time.perf_counter()
    out = sample(spec)
    elapsed = time.perf_counter() - before
    count, sites = spec.count, math.prod(spec.shape)
    assert out.samples.shape == (count, *spec.shape)
    expected_dtype = (
        np.int8
        if spec.model == "ising"
        else (np.float64 if spec.dtype == "float64" else np.float32)
    )
    assert out.samples.dtype == expected_dtype
    if spec.model == "ising":
        assert set(np.unique(out.samples)) <= {-1, 1}
    # the energy returned is the energy of the samples returned, with the external field. Float64
    # runs: 1e-10 of the terms' magnitude (summation order only); float32 runs compute site
    # energies in float32: 1e-5 of it (a few ulps of 6e-8 per term, over ≤ 48 sites); spin
    # models hold the field h in float32: 1e-6 (one rounding of 6e-8 per |h| term).
    params = dict(spec.parameters)
    truth = numpy_energy(out.samples, spec.model, params, spec.external_field)
    rtol = 1e-6 if spec.model == "ising" else (1e-10 if spec.dtype == "float64" else 1e-5)
    assert out.energy.shape == (count,)
    np.testing.assert_allclose(
        out.energy, truth, rtol=0, atol=rtol * float(energy_scale(out.samples).max()) + 1e-12
    )
    # totals: the exact float64 sum of each sample's values (fsum; numpy's pairwise float64 sum of
    # ≤ 60 values is within 1e-13 relative)
    assert out.total.dtype == np.float64
    exact = np.array([math.fsum(s.astype(np.float64).ravel()) for s in out.samples])
    np.testing.assert_allclose(out.total, exact, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(out.constraint_residual, np.zeros(count))
    assert out.site_updates == sites * count * spec.steps * replicas and isinstance(
        out.site_updates, int
    )
    rates = out.acceptance_rate
    assert rates.shape == (count,)
    if spec.sampler in ("mala", "replica-exchange"):
        # accepted steps over kept steps: in [0, 1], and an integer count once multiplied back (1e-9)
        kept = spec.steps - spec.burn_in
        assert np.all((rates >= 0) & (rates <= 1))
        np.testing.assert_allclose(rates * kept, np.round(rates * kept), atol=1e-9)
    else:
        assert np.all(np.isnan(rates))
    assert 0 <= out.compute_seconds <= elapsed  # measured inside the call
    assert 0 < out.effective_sample_size <= count * (spec.steps - spec.burn_in)


def test_ising_initial_states_must_be_spins():
    for bad in (0, 2):
        initial = np.ones((4, 4), dtype=np.int8)
        initial[1, 2] = bad
        with pytest.raises(ParameterError) as e:
            sample(SampleSpec("ising", {}, (4, 4), "gibbs", steps=2, initial=initial))
        assert (e.value.parameter, e.value.reason) == ("initial", "Ising states are +1/-1")


def test_the_initial_state_is_where_every_chain_starts():
    """One Langevin step of size 1e-10 moves a chain by η·∇E ~ 1e-9 plus noise √(2ηT) ≈ 1.4e-5 per
    site: every chain ends within 1e-4 (7σ) of the initial state. At T = 1e-6 a heat-bath sweep
    of the ordered Ising state keeps it (flip probability 1/(1 + e^{8J/T}) = 0)."""
    initial = np.random.default_rng(2).normal(size=(5, 6))
    out = sample(
        SampleSpec(
            "gaussian-free-field",
            {},
            (5, 6),
            "langevin",
            step_size=1e-10,
            steps=1,
            count=3,
            initial=initial,
        )
    )
    assert out.samples.shape == (3, 5, 6)
    for s in out.samples:
        np.testing.assert_allclose(s, initial, atol=1e-4)
    spins = sample(
        SampleSpec(
            "ising",
            {},
            (4, 6),
            "gibbs",
            temperature=1e-6,
            steps=1,
            count=2,
            initial=np.ones((4, 6), np.int8),
        )
    )
    np.testing.assert_array_equal(spins.samples, np.ones((2, 4, 6), np.int8))
    assert list(spins.energy) == [-2 * 24, -2 * 24]  # −J·(2 bonds per site)


def test_same_seed_same_ising_samples():
    """The proto: equal requests with equal seeds give equal samples (the random initial spins included)."""
    spec = SampleSpec("ising", {}, (6, 6), "gibbs", steps=2, count=2, seed=9)
    np.testing.assert_array_equal(sample(spec).samples, sample(spec).samples)


def test_different_seeds_start_independent_ising_chains():
    """The seed is the seed of the whole random stream, initial spins included. At T = 1e-6 one
    heat-bath sweep is nearly a function of the starting spins (each spin takes the sign of its
    neighbours' sum, coins only at ties), so chains of two seeds agree on half of their sites
    when their starts are independent (E = 1/2 by the ±1 symmetry) and on ~80% if both started
    alike. 16 chains × 64 sites; [0.4, 0.6] is ±6σ of 1024 fair coins (σ = 1.6%)."""
    a = sample(
        SampleSpec("ising", {}, (8, 8), "gibbs", temperature=1e-6, steps=1, count=16, seed=1)
    ).samples
    b = sample(
        SampleSpec("ising", {}, (8, 8), "gibbs", temperature=1e-6, steps=1, count=16, seed=2)
    ).samples
    assert 0.4 <= float((a == b).mean()) <= 0.6


def test_ising_chains_start_without_a_preferred_sign():
    """h = 0: E(s) = E(−s), and the default start is drawn without preferring either sign, so at
    T = 1 (well below T_c ≈ 2.27, where an 8×8 chain keeps its sign over 5 sweeps) the chains
    end magnetised up and down in about equal numbers: 64 chains, Binomial(64, 1/2), σ = 4;
    [12, 52] is ±5σ."""
    out = sample(
        SampleSpec("ising", {}, (8, 8), "gibbs", temperature=1.0, steps=5, count=64, seed=3)
    )
    down = int((out.samples.reshape(64, -1).sum(1) < 0).sum())
    assert 12 <= down <= 52


@pytest.mark.parametrize("kind", ["langevin", "annealed-langevin"])
def test_the_total_constraint_holds_exactly(kind):
    """Projected Langevin keeps Σx = target: in float64 the residual is rounding (≤ 1e-9 for 36
    values of order 1), and it is |Σ sample − target| of the returned samples (1e-12)."""
    spec = SampleSpec(
        "gaussian-free-field",
        {},
        (6, 6),
        kind,
        steps=10,
        count=2,
        seed=4,
        dtype="float64",
        max_temperature=3.0 if kind == "annealed-langevin" else 0.0,
        constraints=(Constraint("total", 3.0, 0.0, 0.0),),
    )
    out = sample(spec)
    assert np.all(out.constraint_residual <= 1e-9)
    exact = np.array([abs(math.fsum(s.ravel()) - 3.0) for s in out.samples])
    np.testing.assert_allclose(out.constraint_residual, exact, atol=1e-12)
    assert sampling.tolerance_failures(spec, out) == []


def _reports(spec: SampleSpec, **kw) -> tuple[SampleOutput, list]:
    got: list = []
    out = sample(spec, progress=got.append, **kw)
    return out, got


@pytest.mark.parametrize(
    "steps, every, expected",
    [
        (40, 0, list(range(2, 41, 2))),  # default: every steps // 20 steps
        (50, 0, list(range(2, 51, 2))),  # 50 // 20 = 2
        (10, 0, list(range(1, 11))),  # at least every step
        (10, 3, [3, 6, 9, 10]),  # and always the last step
        (7, 4, [4, 7]),
    ],
)
def test_progress_cadence(steps, every, expected):
    spec = SampleSpec("gaussian-free-field", {}, (4, 4), "langevin", steps=steps, seed=1)
    _, got = _reports(spec, progress_every=every) if every else _reports(spec)
    assert [p.step for p in got] == expected
    assert all(p.total_steps == steps and p.temperature == 1.0 for p in got)
    assert all(isinstance(p.mean_energy, float) and math.isfinite(p.mean_energy) for p in got)
    assert all(
        isinstance(p.acceptance_rate, float) and math.isnan(p.acceptance_rate) for p in got
    )  # no accept/reject


@pytest.mark.parametrize("kind", ["mala", "replica-exchange"])
def test_progress_acceptance_is_the_rate_since_the_previous_report(kind):
    """With a report every step, each report's rate is the fraction of the chains that accepted
    that step (a multiple of 1/count); a report every 4 steps carries the mean of the steps since
    the previous one; the final per-chain rate is the accepted count over the kept steps, so its
    mean times kept is the sum of the per-step rates from burn_in on (kept = 10, not a power of
    two, so a rate is no exact binary fraction). Exact relations between counts: 1e-12."""
    spec = SampleSpec(
        "phi4",
        {},
        (6, 6),
        kind,
        step_size=0.08,
        steps=13,
        burn_in=3,
        count=3,
        seed=8,
        temperatures=(1.0, 1.5, 2.2) if kind == "replica-exchange" else (),
    )
    out, each = _reports(spec, progress_every=1)
    _, fours = _reports(spec, progress_every=4)
    per_step = np.array([p.acceptance_rate for p in each])
    assert len(per_step) == 13 and np.all((per_step >= 0) & (per_step <= 1))
    np.testing.assert_allclose(per_step * 3, np.round(per_step * 3), atol=1e-12)
    assert (
        0 < per_step.mean() < 1 and per_step[3] > 0
    )  # the step at burn_in accepts sometimes, rejects sometimes
    assert [p.step for p in fours] == [4, 8, 12, 13]
    windows = [per_step[0:4].mean(), per_step[4:8].mean(), per_step[8:12].mean(), per_step[12]]
    np.testing.assert_allclose([p.acceptance_rate for p in fours], windows, atol=1e-12)
    kept = 13 - 3
    np.testing.assert_allclose(
        out.acceptance_rate * kept, np.round(out.acceptance_rate * kept), atol=1e-9
    )
    assert float(out.acceptance_rate.mean()) * kept == pytest.approx(per_step[3:].sum(), abs=1e-12)
    assert all(p.total_steps == 13 and p.temperature == 1.0 for p in each)


def test_progress_mean_energy_is_the_trace_whose_ess_is_reported():
    """One chain: each report's mean energy is that chain's energy, so the reports from burn_in on
    are the kept energy trace, and the reported ESS is the ESS of that trace (rtol 1e-12: the
    same function of the same floats). Kept = 3 < 4 steps: the trace length itself."""
    spec = SampleSpec("phi4", {}, (6, 6), "mala", step_size=0.15, steps=40, burn_in=7, seed=3)
    out, each = _reports(spec, progress_every=1)
    trace = np.array([[p.mean_energy] for p in each[7:]])
    assert out.effective_sample_size == pytest.approx(effective_sample_size(trace), rel=1e-12)
    assert float(out.energy[0]) == pytest.approx(each[-1].mean_energy, rel=1e-12)
    short = sample(SampleSpec("ising", {}, (4, 4), "gibbs", steps=5, burn_in=2, count=2, seed=3))
    assert short.effective_sample_size == 3 * 2


def test_annealed_progress_walks_the_ladder_down_to_t():
    """docs/diffusion.md: T_k = T_max·(T/T_max)^(k/9), the steps split evenly over 10 levels:
    with 20 steps, step k is at level k // 2."""
    spec = SampleSpec(
        "gaussian-free-field",
        {},
        (4, 4),
        "annealed-langevin",
        temperature=0.5,
        max_temperature=4.0,
        steps=20,
        seed=2,
    )
    _, got = _reports(spec, progress_every=2)
    expected = [4.0 * (0.5 / 4.0) ** (level / 9) for level in range(10)]
    assert [p.temperature for p in got] == pytest.approx(expected, rel=1e-12)


def test_reverse_diffusion_reports_progress():
    """The learned path streams progress too (one step: the shipped denoiser's load is the cost, ~1 s)."""
    _, got = _reports(SampleSpec("phi4", {}, (32, 32), "reverse-diffusion", steps=1, count=1))
    assert got and got[-1].step == got[-1].total_steps


def test_cancelled_runs_report_the_work_done():
    """Replica exchange with 3 rungs asks should_stop once per step in the run and once more before
    each higher rung: the 7th question is the run's, before step 2, after 2 full steps of 3 rungs
    of 2 chains of 24 sites. Asked once more after the last step (the ESS), the whole work."""

    def stop_at(n):
        calls = [0]

        def should_stop():
            calls[0] += 1
            return calls[0] >= n

        return should_stop

    spec = SampleSpec(
        "phi4",
        {},
        (4, 6),
        "replica-exchange",
        temperatures=(1.0, 1.5, 2.0),
        steps=5,
        count=2,
        seed=1,
    )
    with pytest.raises(Cancelled) as e:
        sample(spec, should_stop=stop_at(7))
    assert e.value.site_updates == 24 * 2 * 2 * 3 and isinstance(e.value.site_updates, int)
    lang = SampleSpec("phi4", {}, (4, 6), "langevin", steps=5, count=2, seed=1)
    with pytest.raises(Cancelled) as e:
        sample(lang, should_stop=stop_at(6))  # 5 steps asked, then the ESS asks
    assert e.value.site_updates == 24 * 2 * 5 and isinstance(e.value.site_updates, int)


HOT = dict(
    model="phi4",
    parameters={},
    shape=(8, 8),
    sampler="langevin",
    temperature=1e6,
    step_size=0.15,
    count=2,
    seed=0,
)


def test_a_divergence_is_caught_at_a_check_with_the_work_so_far():
    """Checks every FINITE_CHECK_EVERY = 8 steps (after steps 8, 16, …): a hot chain that blows up
    within its first 8 steps is caught after step 8 (index 7), with 64 sites·2 chains·8 steps done."""
    with pytest.raises(Diverged) as e:
        sample(SampleSpec(steps=100, **HOT))
    assert e.value.parameter == "sampler.step_size"
    assert (
        e.value.step == 7
        and e.value.site_updates == 64 * 2 * 8
        and isinstance(e.value.site_updates, int)
    )


def test_a_divergence_at_the_last_step_ends_the_run_before_its_last_report():
    """The last step is always checked: a 5-step run whose chain is non-finite by its last step
    raises Diverged at step 4 with the whole work, instead of a final report (step 5 of 5), which
    is only sent for a run that completes."""
    got: list = []
    with pytest.raises(Diverged) as e:
        sample(SampleSpec(steps=5, **HOT), progress=got.append, progress_every=1)
    assert e.value.step == 4 and e.value.site_updates == 64 * 2 * 5
    assert [p.step for p in got] == [1, 2, 3, 4]
