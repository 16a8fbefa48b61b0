"""The sampler classes of idf.engine.sampling.samplers, step by step, against their documented rules
(the module docstring and docs/diffusion.md): the annealing ladder, the replica-exchange step (one
MALA step per rung at η·T_i/T_0 with its own counter, then neighbour swaps on alternating pairs
accepted with min(1, exp((1/T_i − 1/T_j)(E_i − E_j)))), and the divergence errors.

The statistical consequences (replica 0 samples exp(−E/T_0)) are tests/test_sampling.py's; here
each step is compared exactly with the documented rule built from the kernels it names, so an
off-by-one in a counter, a flipped pair parity or a wrong sign in the swap rule cannot hide
behind sampling noise."""

from __future__ import annotations

import math

import pytest
import torch

from idf.engine.errors import Cancelled, Diverged
from idf.engine.sampling import boltzmann as sampling
from idf.engine.sampling import samplers
from idf.engine.sampling.models.ising import IsingEnergy
from idf.engine.sampling.models.phi4 import Phi4Energy
from idf.kernels.ising import Ising, ising_sweep
from idf.kernels.langevin import langevin_step
from idf.kernels.mala import mala_step
from idf.kernels.phi4 import phi4
from idf.kernels.random import cpu_generator

MODEL = Phi4Energy(
    kappa=1.0, a=-1.0, b=1.0
)  # the double well: rungs differ in energy, swaps sometimes fail


def start(count: int = 16, side: int = 6, seed: int = 5) -> torch.Tensor:
    return torch.randn(
        (count, side, side), generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


# --- one-temperature samplers: each step is its kernel's ----------------------------------------------


@pytest.mark.parametrize("shape", [(30,), (3, 4, 5)], ids=["1d", "3d"])
def test_langevin_and_mala_steps_are_their_kernels_in_any_dimension(shape):
    """ndim reaches the kernels (a 1-D chain read as 2-D would couple the wrong neighbours)."""
    ndim, x0 = (
        len(shape),
        torch.randn((4, *shape), generator=torch.Generator().manual_seed(8), dtype=torch.float64),
    )
    lang, mala = (
        samplers.Langevin(x0.clone(), MODEL, 0.7, 0.03, 4, ndim),
        samplers.Mala(x0.clone(), MODEL, 0.7, 0.03, 4, ndim),
    )
    x, y = x0.clone(), x0.clone()
    for k in range(3):
        a, b = lang.step(k), mala.step(k)
        x, _ = langevin_step(x, MODEL, step_size=0.03, temperature=0.7, seed=4, step=k, ndim=ndim)
        m = mala_step(y, MODEL, step_size=0.03, temperature=0.7, seed=4, step=k, ndim=ndim)
        y = m.phi
        assert torch.equal(lang.x, x) and torch.equal(a.energy, phi4(x, MODEL, ndim).energy)
        assert (
            torch.equal(mala.x, y)
            and torch.equal(b.energy, m.energy)
            and torch.equal(b.accepted, m.accepted)
        )
        assert a.temperature == b.temperature == 0.7 and a.accepted is None


@pytest.mark.parametrize("rule", ["heat-bath", "metropolis"])
def test_gibbs_sweeps_with_its_rule_and_temperature(rule):
    spins = (torch.randint(0, 2, (3, 8, 8), generator=torch.Generator().manual_seed(2)) * 2 - 1).to(
        torch.int8
    )
    s = samplers.Gibbs(spins.clone(), IsingEnergy(J=1.0, h=0.2), 1.5, 6, rule=rule)
    x = spins.clone()
    for k in range(3):
        info = s.step(k)
        swept = ising_sweep(x, Ising(J=1.0, h=0.2), temperature=1.5, rule=rule, seed=6, step=k)
        x = swept.spins
        assert (
            torch.equal(s.x, x)
            and torch.equal(info.energy, swept.energy)
            and info.temperature == 1.5
        )


# --- annealed Langevin: the ladder ------------------------------------------------------------------


def test_the_annealing_ladder_is_geometric_with_the_step_scaled_by_temperature():
    t, t_max, eta, steps, levels = 0.5, 4.0, 0.02, 100, 10
    s = samplers.AnnealedLangevin(start(2), MODEL, t, t_max, eta, steps, 1, 2, levels=levels)
    for k in range(steps):
        level = min(levels - 1, k * levels // steps)  # ten steps per level
        t_k = t_max * (t / t_max) ** (level / (levels - 1))
        got_t, got_eta = s._level(k)
        assert got_t == pytest.approx(t_k, rel=1e-12) and got_eta == pytest.approx(
            eta * t_k / t_max, rel=1e-12
        )
    assert s._level(0) == (t_max, eta)  # starts hot at the given step
    assert s._level(steps - 1)[0] == pytest.approx(t) and s._level(steps - 1)[1] == pytest.approx(
        eta * t / t_max
    )
    assert s._level(9)[0] == t_max and s._level(10)[0] < t_max  # the first change is at step 10


def test_the_default_ladder_has_ten_levels_and_two_levels_are_its_ends():
    assert (
        samplers.AnnealedLangevin(start(2), MODEL, 1.0, 8.0, 0.01, 100, 1, 2).levels == 10
    )  # docs/diffusion.md: K = 10
    two = samplers.AnnealedLangevin(start(2), MODEL, 1.0, 8.0, 0.01, 10, 1, 2, levels=2)
    assert [two._level(k)[0] for k in (0, 4, 5, 9)] == [8.0, 8.0, 1.0, 1.0]


def test_more_levels_than_steps_gives_one_level_per_step_and_one_level_is_the_target():
    s = samplers.AnnealedLangevin(start(2), MODEL, 1.0, 8.0, 0.01, 4, 1, 2, levels=10)
    assert s.levels == 4
    assert [round(s._level(k)[0], 12) for k in range(4)] == [8.0, 4.0, 2.0, 1.0]  # 8 (1/8)^(k/3)
    one = samplers.AnnealedLangevin(start(2), MODEL, 1.0, 8.0, 0.01, 4, 1, 2, levels=1)
    assert one.levels == 1 and one._level(0) == pytest.approx((1.0, 0.01 / 8))
    zero = samplers.AnnealedLangevin(start(2), MODEL, 1.0, 8.0, 0.01, 4, 1, 2, levels=0)
    assert zero.levels == 1


def test_an_annealed_step_is_the_langevin_step_at_its_level():
    x0 = start(4)
    s = samplers.AnnealedLangevin(x0.clone(), MODEL, 0.5, 4.0, 0.02, 30, 9, 2, levels=3)
    x = x0.clone()
    for k in range(30):
        t_k, eta_k = s._level(k)
        info = s.step(k)
        x, _ = langevin_step(x, MODEL, step_size=eta_k, temperature=t_k, seed=9, step=k, ndim=2)
        assert torch.equal(s.x, x) and info.temperature == t_k and info.accepted is None
        assert torch.allclose(info.energy, phi4(x, MODEL, 2).energy, rtol=1e-12, atol=0)


def test_an_annealed_chain_with_a_total_keeps_it_from_the_start():
    x0 = start(3)
    s = samplers.AnnealedLangevin(x0, MODEL, 0.5, 2.0, 0.02, 10, 9, 2, total=7.0)
    sums = lambda x: x.sum((-2, -1))  # noqa: E731
    assert torch.allclose(sums(s.x), torch.full((3,), 7.0, dtype=torch.float64), atol=1e-12)
    for k in range(10):
        s.step(k)
        assert torch.allclose(sums(s.x), torch.full((3,), 7.0, dtype=torch.float64), atol=1e-11)


# --- replica exchange: the documented step, from the kernels it names --------------------------------


def documented_step(replicas, energies, temperatures, eta, seed, k, ndim):
    """Module docstring of idf.engine.sampling.samplers: MALA on every rung (step size η·T_i/T_0, counter
    k·R + i), then swaps of pairs (i, i+1), i ≡ k mod 2, each chain deciding with one uniform
    u from cpu_generator(seed, k, 2**31): swap iff u < exp((1/T_i − 1/T_j)(E_i − E_j))."""
    r = len(temperatures)
    replicas, energies, accepted = list(replicas), list(energies), None
    for i, t in enumerate(temperatures):
        m = mala_step(
            replicas[i],
            MODEL,
            step_size=eta * t / temperatures[0],
            temperature=t,
            seed=seed,
            step=k * r + i,
            ndim=ndim,
        )
        replicas[i], energies[i] = m.phi, m.energy
        accepted = m.accepted if i == 0 else accepted
    gen = cpu_generator(seed, k, 2**31)
    swaps = []
    for i in range(k % 2, r - 1, 2):
        j = i + 1
        u = torch.rand(energies[i].shape, generator=gen, dtype=torch.float64)
        bound = torch.exp((1 / temperatures[i] - 1 / temperatures[j]) * (energies[i] - energies[j]))
        swap = u < bound
        swaps.append(swap)
        for chain in torch.nonzero(swap).flatten().tolist():
            replicas[i][chain], replicas[j][chain] = (
                replicas[j][chain].clone(),
                replicas[i][chain].clone(),
            )
            energies[i][chain], energies[j][chain] = (
                energies[j][chain].clone(),
                energies[i][chain].clone(),
            )
    return replicas, energies, accepted, swaps


@pytest.mark.parametrize("shape", [(36,), (6, 6), (3, 3, 4)], ids=["1d", "2d", "3d"])
def test_replica_exchange_steps_are_the_documented_rule(shape):
    # T_0 ≠ 1, so a step size of η·T_i·T_0 instead of η·T_i/T_0 shows
    temperatures, eta, seed, count, ndim = [0.8, 1.2, 1.9, 3.0], 0.05, 21, 16, len(shape)
    x0 = start(count).reshape(count, *shape)
    s = samplers.ReplicaExchange(x0, MODEL, temperatures, eta, seed, ndim)
    e0 = phi4(x0, MODEL, ndim).energy
    assert s.swaps_tried == s.swaps_accepted == 0
    assert all(torch.equal(r, x0) for r in s.replicas) and all(
        torch.equal(e, e0) for e in s.energies
    )
    assert s.replicas[0] is not x0  # copies: the caller's tensor is not stepped in place
    replicas, energies = [x0.clone() for _ in temperatures], [e0.clone() for _ in temperatures]
    tried = accepted_swaps = 0
    for k in range(8):
        info = s.step(k)
        replicas, energies, accepted, swaps = documented_step(
            replicas, energies, temperatures, eta, seed, k, ndim
        )
        for i in range(len(temperatures)):
            assert torch.equal(s.replicas[i], replicas[i]), (k, i)
            assert torch.equal(s.energies[i], energies[i]), (k, i)
            # the bookkeeping follows the swapped states: each rung's energy is its state's
            assert torch.allclose(
                s.energies[i], phi4(s.replicas[i], MODEL, ndim).energy, rtol=1e-10, atol=1e-10
            )
        assert len(swaps) == (
            2 if k % 2 == 0 else 1
        )  # pairs (0,1),(2,3) on even steps, (1,2) on odd
        tried += sum(w.numel() for w in swaps)
        accepted_swaps += sum(int(w.sum()) for w in swaps)
        assert (s.swaps_tried, s.swaps_accepted) == (tried, accepted_swaps)
        assert info.temperature == temperatures[0] and torch.equal(info.energy, s.energies[0])
        assert torch.equal(info.accepted, accepted) and torch.equal(s.x, s.replicas[0])
    # the check has power: some swaps were refused and some made
    assert 0 < accepted_swaps < tried


def test_swaps_favour_the_colder_rung_taking_the_lower_energy():
    """Two rungs, hand-made energies: a colder rung holding the higher energy always swaps
    (log α > 0); the reverse swaps with probability exp(−Δβ ΔE), here e^-53 (never)."""
    temperatures = [1.0, 2.0]
    low = torch.zeros((64, 4, 4), dtype=torch.float64)
    high = torch.full((64, 4, 4), 2.5, dtype=torch.float64)  # 16 sites × 6.64 above φ = 0
    s = samplers.ReplicaExchange(
        low, MODEL, temperatures, 1e-12, 3, 2
    )  # tiny steps: states barely move
    s.replicas, s.energies = (
        [high.clone(), low.clone()],
        [phi4(high, MODEL, 2).energy, phi4(low, MODEL, 2).energy],
    )
    assert float((s.energies[0] - s.energies[1]).min()) > 100  # Δβ ΔE = 0.5 · 106 = 53
    s.step(0)  # even step: the pair (0, 1)
    assert s.swaps_accepted == s.swaps_tried == 64
    # the cold rung now holds the low state; a step of 1e-12 moves it by ~sqrt(2e-12) = 1.4e-6
    assert torch.allclose(s.replicas[0], low, atol=1e-4)
    s.step(1)  # odd step: no pair among two rungs
    assert s.swaps_tried == 64
    s.step(2)  # the pair again: going back would cost exp(−53)
    assert s.swaps_tried == 128 and s.swaps_accepted == 64
    assert torch.allclose(s.replicas[0], low, atol=1e-4)


def test_a_stop_between_rungs_reports_the_work_done():
    calls = []
    s = samplers.ReplicaExchange(
        start(2),
        MODEL,
        [1.0, 2.0, 4.0],
        0.05,
        3,
        2,
        should_stop=lambda: calls.append(1) or len(calls) >= 2,
    )
    with pytest.raises(Cancelled) as e:
        s.step(3)
    # stopped before rung 2 of step 3: 3 full steps of 3 rungs and 2 rungs, of 2 chains of 36 sites
    assert e.value.site_updates == 72 * (3 * 3 + 2)


# --- divergence ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["langevin", "annealed-langevin"])
def test_an_unadjusted_divergence_blames_the_step_size_and_suggests_a_quarter(kind):
    e = sampling._diverged(17, 0.12, kind, 4096)
    assert isinstance(e, Diverged)
    assert (e.parameter, e.step, e.site_updates) == ("sampler.step_size", 17, 4096)
    assert (
        "at step 17" in e.reason
        and f"try step_size <= {0.12 / 4:.3g}" in e.reason
        and "0.03" in e.reason
    )


@pytest.mark.parametrize("kind", ["mala", "replica-exchange"])
def test_an_adjusted_divergence_blames_the_model_not_the_step(kind):
    """MALA rejects a step that blows up, so a non-finite energy there is the model's or the
    state's range, and halving the step would not help."""
    e = sampling._diverged(40, 0.12, kind, 99)
    assert (e.parameter, e.step, e.site_updates) == ("energy_model.parameters", 40, 99)
    assert (
        "overflowed at step 40" in e.reason
        and "floating-point range" in e.reason
        and "step_size" not in e.reason
    )


def test_a_finite_check_names_the_step_and_work():
    energy = torch.tensor([1.0, math.inf], dtype=torch.float64)
    with pytest.raises(Diverged) as e:
        sampling._check_finite(energy, 7, 0.1, "mala", 123)
    assert (e.value.parameter, e.value.step, e.value.site_updates) == (
        "energy_model.parameters",
        7,
        123,
    )
    sampling._check_finite(
        torch.ones(3, dtype=torch.float64), 7, 0.1, "mala", 123
    )  # finite: no error


# --- the generic steps of idf.engine.sampling.energy (models without fused kernels: XY) -----------


def _xy_reference(
    x: torch.Tensor, J: float, h: float, ndim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """E and ∇E of the XY energy by autograd of its formula (independent of XYEnergy.evaluate)."""
    x = x.detach().clone().requires_grad_()
    axes = tuple(range(x.ndim - ndim, x.ndim))
    e = -h * torch.cos(x).sum(axes)
    for a in axes:
        e = e - J * torch.cos(torch.roll(x, -1, a) - x).sum(axes)
    e.sum().backward()
    return e.detach(), x.grad


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(7,), (4, 6), (2, 3, 4)], ids=["1d", "2d", "3d"])
def test_generic_langevin_and_mala_steps_are_the_documented_rule(shape, dtype):
    """Energy.langevin_step / mala_step (docstring of idf.engine.sampling.energy) step by step against
    the rule built here from autograd and the documented noise stream: standard normals of the
    state's dtype from cpu_generator(seed, step), then MALA's float64 uniforms from the same
    generator; XY then wraps the angles to [−π, π). Energies are float64 whatever the dtype."""
    from idf.engine.sampling.models.xy import XYEnergy

    ndim, J, h, eta, t, seed = len(shape), 0.8, 0.3, 0.07, 0.6, 11
    energy = XYEnergy(J=J, h=h)
    x0 = (
        torch.rand((5, *shape), generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 8
        - 4
    ).to(dtype)
    x, y = x0.clone(), x0.clone()
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    for k in range(3):
        new, e_old = energy.langevin_step(
            x, step_size=eta, temperature=t, seed=seed, step=k, ndim=ndim
        )
        e_ref, g_ref = _xy_reference(x.double(), J, h, ndim)
        noise = torch.randn(x.shape, generator=cpu_generator(seed, k), dtype=dtype)
        want = (
            torch.remainder(
                x - eta * g_ref.to(dtype) + math.sqrt(2 * eta * t) * noise + math.pi, 2 * math.pi
            )
            - math.pi
        )
        assert e_old.dtype == torch.float64 and torch.allclose(e_old, e_ref, **tol)
        assert new.dtype == dtype and torch.allclose(new, want, **tol)
        assert bool(((-math.pi <= new) & (new < math.pi)).all())
        x = new

        r = energy.mala_step(y, step_size=eta, temperature=t, seed=seed, step=k, ndim=ndim)
        gen = cpu_generator(seed, k)
        xi = torch.randn(y.shape, generator=gen, dtype=dtype)
        u = torch.rand((5,), generator=gen, dtype=torch.float64)
        e_y, g_y = _xy_reference(y.double(), J, h, ndim)
        prop = y.double() - eta * g_y + math.sqrt(2 * eta * t) * xi.double()
        e_p, g_p = _xy_reference(prop, J, h, ndim)
        axes = tuple(range(1, y.ndim))
        log_a = (
            -(e_p - e_y) / t
            - ((y.double() - prop + eta * g_p) ** 2).sum(axes) / (4 * eta * t)
            + (xi.double() ** 2).sum(axes) / 2
        )
        accept = torch.log(u) < log_a
        assert torch.allclose(
            r.log_alpha, log_a, rtol=1e-9, atol=1e-9 if dtype == torch.float64 else 1e-3
        )
        decided = (
            torch.abs(torch.log(u) - log_a) > 1e-3
        )  # float32 rounding cannot flip these decisions
        assert torch.equal(r.accepted[decided], accept[decided])
        kept = torch.where(accept.reshape(-1, *[1] * ndim), prop, y.double())
        wrapped = torch.remainder(kept + math.pi, 2 * math.pi) - math.pi
        assert (
            torch.allclose(r.phi.double()[decided], wrapped[decided], **tol)
            and r.phi.dtype == dtype
        )
        assert torch.allclose(r.energy[decided], torch.where(accept, e_p, e_y)[decided], **tol)
        y = r.phi


def test_energy_defaults_derive_from_evaluate_and_continuous_models_have_no_sweep():
    from idf.engine.sampling.models.xy import XYEnergy

    energy, x = (
        XYEnergy(J=1.2, h=-0.4),
        torch.rand((2, 5, 5), generator=torch.Generator().manual_seed(3), dtype=torch.float64),
    )
    e, g = energy.evaluate(x, 2)
    assert torch.equal(energy.energy(x, 2), e) and torch.equal(energy.gradient(x, 2), g)
    with pytest.raises(NotImplementedError, match="^XYEnergy has no Gibbs sweep$"):
        energy.sweep(x, temperature=1.0, rule="heat-bath", seed=0, step=0)


@pytest.mark.parametrize("kappa,a,b", [(1.0, 0.5, 0.0), (0.7, -1.0, 1.3), (0.0, 2.0, 0.4)])
def test_phi4_energy_evaluates_with_its_kernels_and_bounds_its_hessian(kappa, a, b):
    """Phi4Energy.evaluate/gradient are the fused kernel's; hessian_bounds(A) encloses the exact
    Hessian spectrum (autograd) of every state with |φ_i| <= A, and is attained at φ = 0 for a ≥ 0
    (top: 4·ndim·κ + a on an even lattice) — the bounds reverse diffusion's guidance steps with."""
    rng = torch.Generator().manual_seed(4)
    energy = Phi4Energy(kappa=kappa, a=a, b=b, h=0.2)
    x = torch.rand((2, 4, 4), generator=rng, dtype=torch.float64) * 3 - 1.5
    for state, ndim in (
        (x, 2),
        (x[0], 1),
        (x[:, :, :, None].expand(2, 4, 4, 3).contiguous(), 3),
    ):  # ndim reaches the kernel
        ev = phi4(state, energy, ndim)
        e, g = energy.evaluate(state, ndim)
        assert (
            torch.equal(e, ev.energy)
            and torch.equal(g, ev.gradient)
            and torch.equal(energy.gradient(state, ndim), ev.gradient)
        )
    amplitude = 1.5
    lo, hi = energy.hessian_bounds(amplitude, 2)

    def total(phi: torch.Tensor) -> torch.Tensor:
        return phi4(phi[None], energy, 2).energy[0]

    for state in (
        x[0],
        x[1],
        torch.full((4, 4), amplitude, dtype=torch.float64),
        torch.zeros(4, 4, dtype=torch.float64),
    ):
        eig = torch.linalg.eigvalsh(torch.autograd.functional.hessian(total, state).reshape(16, 16))
        assert lo - 1e-9 <= float(eig.min()) and float(eig.max()) <= hi + 1e-9
    top_at_zero = float(
        torch.linalg.eigvalsh(
            torch.autograd.functional.hessian(
                total, torch.zeros(4, 4, dtype=torch.float64)
            ).reshape(16, 16)
        ).max()
    )
    assert top_at_zero == pytest.approx(8 * kappa + a, rel=1e-12)
    assert lo == min(a, 0.0) and hi == pytest.approx(8 * kappa + abs(a) + 3 * b * amplitude**2)


def test_float32_chains_accumulate_energies_and_mala_norms_in_float64():
    """On a 512² float32 lattice, float32 sums of the energy terms and of MALA's |ξ|² and
    |x − y + η∇E(y)|² would be off by ~1e-3; the engine sums them in float64 (idf.engine.sampling.energy,
    models/xy.py). The reference repeats the same float32 arithmetic per site and sums in float64."""
    from idf.engine.sampling.models.xy import XYEnergy

    energy, eta, t, seed = XYEnergy(J=0.9, h=0.35), 0.05, 0.8, 3
    x = torch.rand((1, 512, 512), generator=torch.Generator().manual_seed(2)) * 6 - 3  # float32
    e, g = energy.evaluate(x, 2)
    bonds = sum(torch.cos(torch.roll(x, -1, a) - x).double().sum() for a in (1, 2))
    terms = (
        -0.9 * bonds - (0.35 * torch.cos(x)).double().sum()
    )  # per-site products in float32, as documented
    assert abs(float(e[0]) - float(terms)) < 1e-7  # float32 accumulation is off by ~1e-4 here
    r = energy.mala_step(x, step_size=eta, temperature=t, seed=seed, step=0, ndim=2)
    gen = cpu_generator(seed, 0)
    xi = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    sigma = math.sqrt(2 * eta * t)
    proposal = x - eta * g + sigma * xi
    e_y, g_y = energy.evaluate(proposal, 2)
    res = x - proposal + eta * g_y
    log_a = (
        -(e_y - e) / t - (res * res).double().sum() / (2 * sigma**2) + (xi * xi).double().sum() / 2
    )
    assert abs(float(r.log_alpha[0]) - float(log_a[0])) < 1e-6
