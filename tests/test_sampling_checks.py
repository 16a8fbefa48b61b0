"""What a sampling run refuses and what it derives before it starts (idf.engine.sampling.boltzmann._check,
the stability limit, the replica ladder, the energy-model registry), checked as users see it.

- Refusals: every bad parameter is a ParameterError whose `parameter` is the field the caller
  set and whose reason carries the limit and the value given; every documented limit is tested
  at its exact boundary (accepted) and one float past it (refused). Through `sampling.estimate`,
  which raises exactly what `sample` would (its docstring), so no chain runs.
- The step-size limit: `curvature` is documented as the largest curvature of the energy near its
  minima, and a gradient step is linearly stable when η·curvature < 2. The ground truth here is
  the largest eigenvalue of the Hessian of the energy written out from the registry's formula
  (autograd on a small periodic lattice, at the minimum), for each model in 1-3 D.
- The replica ladder: `rungs` (8, docs/diffusion.md) geometric temperatures from T to T_max.
- energy_models.build: the model it builds has the registry's documented energy, compared with
  the formula evaluated independently (numpy) on small fields, with and without a field map.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from idf.engine.errors import ParameterError
from idf.engine.sampling import boltzmann as sampling
from idf.engine.sampling import energy_models
from idf.kernels.ising import ising_energy
from idf.kernels.phi4 import phi4

SPEC = sampling.SampleSpec("phi4", {}, shape=(4, 4), steps=4, seed=0)
T_MIN, T_MAX = sampling.MIN_TEMPERATURE, sampling.MAX_TEMPERATURE
V_MAX = sampling.MAX_FIELD_VALUE


def spec(**changes) -> sampling.SampleSpec:
    return dataclasses.replace(SPEC, **changes)


def refused(s: sampling.SampleSpec) -> ParameterError:
    with pytest.raises(ParameterError) as e:
        sampling.estimate(s)
    return e.value


def up(x: float) -> float:
    return float(np.nextafter(x, math.inf))


def down(x: float) -> float:
    return float(np.nextafter(x, -math.inf))


# --- the default sampler -----------------------------------------------------------------------------


def test_default_sampler_is_mala_for_fields_and_gibbs_for_spins():
    """An unset sampler is the model's default (proto: MALA for continuous fields, Gibbs for
    spins). MALA reports an acceptance rate in [0, 1]; Gibbs has none (NaN)."""
    sampling.estimate(SPEC)
    out = sampling.sample(SPEC)
    assert np.all((out.acceptance_rate >= 0) & (out.acceptance_rate <= 1))
    ising = sampling.sample(dataclasses.replace(SPEC, model="ising"))
    assert np.all(np.isnan(ising.acceptance_rate)) and ising.samples.dtype == np.int8


# --- temperatures ------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [T_MIN, T_MAX])
def test_temperature_limits_are_accepted(t):
    sampling.estimate(spec(temperature=t))


@pytest.mark.parametrize("t", [down(T_MIN), up(T_MAX), 0.0, -1.0, math.nan, math.inf])
def test_temperature_outside_limits_is_refused_with_limits_and_value(t):
    e = refused(spec(temperature=t))
    assert e.parameter == "sampler.temperature"
    assert "[1e-06, 1e+06]" in e.reason and f"got {t}" in e.reason


@pytest.mark.parametrize("t", [down(T_MIN), 2e6, math.nan])
def test_max_temperature_outside_limits_is_refused(t):
    e = refused(spec(sampler="annealed-langevin", max_temperature=t))
    assert e.parameter == "sampler.max_temperature"
    assert (
        "[1e-06, 1e+06]" in e.reason and f"got {t}" in e.reason
    )  # every digit: 1e-06 would read as inside


@pytest.mark.parametrize("kind", ["annealed-langevin", "replica-exchange"])
def test_tempering_needs_max_temperature_above_temperature(kind):
    """Without a ladder, annealing and tempering span T..T_max, so T_max must exceed T: unset
    (0) and equal are refused, one float above is accepted."""
    for t_max in (0.0, 1.0):
        e = refused(spec(sampler=kind, temperature=1.0, max_temperature=t_max))
        assert (
            e.parameter == "sampler.max_temperature" and "max_temperature > temperature" in e.reason
        )
    sampling.estimate(spec(sampler=kind, temperature=1.0, max_temperature=up(1.0)))


def test_temperature_ladder_rungs_are_checked_one_by_one():
    e = refused(spec(sampler="replica-exchange", temperatures=(1.0, 2.0, 2e6)))
    assert e.parameter == "sampler.temperatures[2]"
    assert "[1e-06, 1e+06]" in e.reason and "got 2000000.0" in e.reason


@pytest.mark.parametrize("ladder", [(2.0, 3.0), (1.0, 3.0, 2.0), (1.0, 2.0, 2.0), (1.0, 0.5)])
def test_ladder_must_ascend_from_the_target_temperature(ladder):
    e = refused(spec(sampler="replica-exchange", temperature=1.0, temperatures=ladder))
    assert e.parameter == "sampler.temperatures"
    assert e.reason == "an ascending ladder starting at the target temperature"


def test_ascending_ladder_from_target_is_accepted():
    sampling.estimate(
        spec(sampler="replica-exchange", temperature=1.0, temperatures=(1.0, up(1.0), 3.0))
    )


# --- shapes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,shape",
    [
        ("phi4", (1,)),
        ("phi4", (5,)),
        ("phi4", (1, 4)),
        ("phi4", (2, 3, 4)),
        ("gaussian-free-field", (1, 1, 1)),
        ("ising", (2, 4)),
    ],
)
def test_shapes_within_the_documented_extents_are_accepted(model, shape):
    """Continuous models take 1 to 3 positive extents (an extent of 1 is positive), Ising 2 even."""
    sampling.estimate(spec(model=model, shape=shape))


@pytest.mark.parametrize("shape", [(), (4, 0), (0,), (-1, 4), (2, 2, 2, 2)])
def test_continuous_shapes_outside_extents_are_refused(shape):
    e = refused(spec(shape=shape))
    assert e.parameter == "shape"
    assert e.reason == f"phi4 takes 1 to 3 positive extents, got {list(shape)}"


def test_shape_message_quotes_at_most_four_extents():
    """A caller-sized tuple is echoed truncated, so the message stays short."""
    e = refused(spec(shape=(1, 2, 3, 4, 5, 6)))
    assert e.parameter == "shape" and e.reason.endswith("got [1, 2, 3, 4]")


def test_ising_with_three_extents_is_refused_quoting_its_shape():
    e = refused(spec(model="ising", shape=(2, 2, 2)))
    assert e.parameter == "shape" and e.reason == "ising takes 2 positive extents, got [2, 2, 2]"


@pytest.mark.parametrize("shape", [(4,), (3, 4), (4, 5)])
def test_ising_lattices_are_2d_with_even_sides(shape):
    e = refused(spec(model="ising", shape=shape))
    assert (
        e.parameter == "shape"
        and e.reason == "Ising lattices are 2-D with even sides (checkerboard updates)"
    )


# --- steps, count, burn-in, step size ----------------------------------------------------------------


def test_one_step_is_enough():
    sampling.estimate(spec(steps=1, burn_in=0))


def test_zero_steps_are_refused():
    e = refused(spec(steps=0))
    assert e.parameter == "sampler.steps" and e.reason == "must be >= 1, got 0"


def test_sample_count_must_be_positive():
    sampling.estimate(spec(count=1))
    e = refused(spec(count=0))
    assert e.parameter == "sample_count" and e.reason == "must be >= 1, got 0"


@pytest.mark.parametrize("burn_in", [4, 5, -1])
def test_burn_in_must_leave_a_step(burn_in):
    e = refused(spec(steps=4, burn_in=burn_in))
    assert e.parameter == "sampler.burn_in" and e.reason == f"must be in [0, steps), got {burn_in}"


def test_burn_in_of_all_but_one_step_is_accepted():
    sampling.estimate(spec(steps=4, burn_in=3))


@pytest.mark.parametrize("eta", [-0.01, math.nan, math.inf, -math.inf])
def test_step_size_must_be_finite_and_non_negative(eta):
    e = refused(spec(sampler="langevin", step_size=eta))
    assert e.parameter == "sampler.step_size" and e.reason == f"must be finite and >= 0, got {eta}"


@pytest.mark.parametrize(
    "kind,extra",
    [
        ("langevin", {}),
        ("mala", {}),
        ("annealed-langevin", {"max_temperature": 2.0}),
        ("replica-exchange", {"max_temperature": 2.0}),
    ],
)
def test_step_size_limit_is_accepted_exactly_and_refused_beyond(kind, extra):
    """GFF kappa=1, mass2=0 in 2-D: Hessian eigenvalues up to 4·2·1 = 8, so the limit is
    2/8 = 0.25, exact in binary. max_step_size is the largest step accepted."""
    base = spec(
        model="gaussian-free-field", parameters={"kappa": 1.0, "mass2": 0.0}, sampler=kind, **extra
    )
    sampling.estimate(dataclasses.replace(base, step_size=0.25))
    e = refused(dataclasses.replace(base, step_size=up(0.25)))
    assert e.parameter == "sampler.step_size"
    e = refused(dataclasses.replace(base, step_size=0.3))
    assert e.parameter == "sampler.step_size"
    assert (
        e.reason.startswith("0.3 is too large for this model") and "2/curvature = 0.25" in e.reason
    )


def test_flat_energy_step_limit_is_1e3():
    """kappa = mass2 = 0: no curvature, so 1e3 bounds the step (docstring of max_step_size)."""
    base = spec(
        model="gaussian-free-field", parameters={"kappa": 0.0, "mass2": 0.0}, sampler="langevin"
    )
    sampling.estimate(dataclasses.replace(base, step_size=1e3))
    assert refused(dataclasses.replace(base, step_size=up(1e3))).parameter == "sampler.step_size"


# --- constraints -------------------------------------------------------------------------------------


def total(
    target: float = 0.0, tolerance: float = 0.0, weight: float = 0.0, name: str = "total"
) -> sampling.Constraint:
    return sampling.Constraint(name, target, tolerance, weight)


CONSTRAINED = spec(model="gaussian-free-field", sampler="langevin")  # 16 sites


@pytest.mark.parametrize(
    "kind,extra", [("langevin", {}), ("annealed-langevin", {"max_temperature": 2.0})]
)
def test_exact_constraints_run_with_both_langevins(kind, extra):
    sampling.estimate(
        dataclasses.replace(CONSTRAINED, sampler=kind, constraints=(total(1.0),), **extra)
    )


@pytest.mark.parametrize(
    "kind,extra", [("mala", {}), ("replica-exchange", {"max_temperature": 2.0})]
)
def test_exact_constraints_refuse_other_samplers(kind, extra):
    e = refused(dataclasses.replace(CONSTRAINED, sampler=kind, constraints=(total(1.0),), **extra))
    assert e.parameter == "energy_model.constraints[0]"
    assert (
        e.reason
        == "exact constraints are enforced by projected Langevin: use langevin or annealed-langevin"
    )


def test_unknown_constraint_names_what_the_model_supports():
    e = refused(dataclasses.replace(CONSTRAINED, constraints=(total(1.0), total(name="mean"))))
    assert (
        e.parameter == "energy_model.constraints[1].name"
        and e.reason == "gaussian-free-field supports ['total']"
    )


def test_constraint_weight_must_be_zero():
    e = refused(dataclasses.replace(CONSTRAINED, constraints=(total(1.0, weight=0.5),)))
    assert e.parameter == "energy_model.constraints[0].weight"
    assert e.reason == "only exact enforcement (weight 0) is supported"


def test_constraint_target_limit_is_per_site():
    """|target| / sites <= 1e6: on 16 sites ±1.6e7 exactly is accepted, one float beyond refused."""
    for t in (16 * V_MAX, -16 * V_MAX, 2e6):
        sampling.estimate(dataclasses.replace(CONSTRAINED, constraints=(total(t),)))
    for t in (up(16 * V_MAX), math.nan, math.inf):
        e = refused(dataclasses.replace(CONSTRAINED, constraints=(total(t),)))
        assert e.parameter == "energy_model.constraints[0].target"
        assert e.reason == f"must be finite with |target| / sites <= 1e+06, got {t:.4g}"


@pytest.mark.parametrize("tol", [-0.1, math.nan, math.inf])
def test_constraint_tolerance_must_be_finite_and_non_negative(tol):
    e = refused(dataclasses.replace(CONSTRAINED, constraints=(total(1.0, tolerance=tol),)))
    assert (
        e.parameter == "energy_model.constraints[0].tolerance"
        and e.reason == f"must be finite and >= 0, got {tol:.4g}"
    )


# --- initial states and field maps -------------------------------------------------------------------

ARRAYS = ["initial", "external_field"]
FIELD_NAME = {"initial": "initial", "external_field": "energy_model.external_field"}


@pytest.mark.parametrize("which", ARRAYS)
@pytest.mark.parametrize(
    "array",
    [
        np.zeros((4, 4)),
        np.ones((4, 4), np.int64),
        np.ones((4, 4), bool),
        np.full((4, 4), V_MAX, np.float32),
        np.full((4, 4), -V_MAX),
    ],
)
def test_numeric_arrays_up_to_the_value_limit_are_accepted(which, array):
    sampling.estimate(spec(**{which: array}))


@pytest.mark.parametrize("which", ARRAYS)
def test_array_of_another_shape_is_refused_quoting_both_shapes(which):
    e = refused(spec(**{which: np.zeros((4, 5))}))
    assert e.parameter == FIELD_NAME[which] and e.reason == "shape [4, 5] differs from [4, 4]"
    e = refused(spec(**{which: np.zeros((1, 2, 3, 4, 5))}))  # quoted truncated to four extents
    assert e.parameter == FIELD_NAME[which] and e.reason == "shape [1, 2, 3, 4] differs from [4, 4]"


@pytest.mark.parametrize("which", ARRAYS)
def test_non_numeric_arrays_are_refused(which):
    e = refused(spec(**{which: np.zeros((4, 4), complex)}))
    assert e.parameter == FIELD_NAME[which] and e.reason == "must be numeric, got complex128"


@pytest.mark.parametrize("which", ARRAYS)
@pytest.mark.parametrize("bad", [up(V_MAX), -up(V_MAX), math.nan, math.inf])
def test_array_values_beyond_the_limit_are_refused(which, bad):
    a = np.zeros((4, 4))
    a[1, 2] = bad
    e = refused(spec(**{which: a}))
    assert (
        e.parameter == FIELD_NAME[which]
        and e.reason == "values must be finite with |value| <= 1e+06"
    )


# --- the initial energy must be finite ---------------------------------------------------------------
# Values the checks above accept (<= 1e6) cannot overflow float32 energies with parameters within
# their bounds (b/4 phi^4 <= 2.5e29), so the guard is exercised directly, with a state of 1e20
# (phi^4 = 1e80, beyond float32).


def test_overflowing_initial_energy_names_what_the_caller_set():
    info = energy_models.info("phi4")
    params = energy_models.resolve_parameters(info, {})
    model = energy_models.build(info, params, None, torch.float32, torch.device("cpu"))
    x = torch.full((2, 4, 4), 1e20)
    for s, name in (
        (spec(initial=np.zeros((4, 4))), "initial"),
        (spec(external_field=np.zeros((4, 4))), "energy_model.external_field"),
    ):
        with pytest.raises(ParameterError) as e:
            sampling._check_initial_energy(x, model, 2, s)
        assert e.value.parameter == name
        assert (
            e.value.reason
            == "the energy of the initial state overflows: values too large for this model"
        )
    sampling._check_initial_energy(
        torch.full((2, 4, 4), 1e6), model, 2, SPEC
    )  # the largest accepted value


# --- curvature and the stability limit against the Hessian -------------------------------------------


def energy_torch(
    phi: torch.Tensor, kappa: float, a: float, b: float, h: float = 0.0
) -> torch.Tensor:
    """The registry's energy: sum_i kappa/2 sum_a (phi[i+e_a]-phi_i)^2 + a/2 phi^2 + b/4 phi^4 - h phi."""
    bond = sum((torch.roll(phi, -1, ax) - phi) ** 2 for ax in range(phi.ndim))
    return (kappa / 2 * bond + a / 2 * phi**2 + b / 4 * phi**4 - h * phi).sum()


def hessian_max(shape: tuple[int, ...], kappa: float, a: float, b: float, at: float) -> float:
    """Largest eigenvalue of the Hessian at the uniform state phi = at (float64 autograd)."""
    phi0 = torch.full(shape, at, dtype=torch.float64)
    hess = torch.autograd.functional.hessian(
        lambda p: energy_torch(p.view(shape), kappa, a, b), phi0.flatten()
    )
    return float(torch.linalg.eigvalsh(hess).max())


SHAPES = [
    (8,),
    (4, 6),
    (2, 4, 4),
]  # even sides: the periodic Laplacian reaches its top eigenvalue 4 per axis
# (model, parameters, the minimum of the energy): a >= 0 has its minimum at 0; the double well
# a < 0 < b at phi^2 = -a/b.
CASES = [
    ("gaussian-free-field", {"kappa": 0.7, "mass2": 0.5}, 0.0),
    ("gaussian-free-field", {"kappa": 2.5, "mass2": 3.0}, 0.0),
    ("phi4", {"kappa": 0.7, "a": 0.5, "b": 1.0}, 0.0),
    ("phi4", {"kappa": 1.3, "a": 0.0, "b": 2.0}, 0.0),
    ("phi4", {"kappa": 0.7, "a": -2.0, "b": 0.5}, 2.0),
    ("phi4", {"kappa": 1.5, "a": -3.0, "b": 1.0}, math.sqrt(3.0)),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}d")
@pytest.mark.parametrize("model,params,minimum", CASES)
def test_curvature_is_the_largest_hessian_eigenvalue_at_the_minimum(model, params, minimum, shape):
    info = energy_models.info(model)
    p = energy_models.resolve_parameters(info, params)
    kappa, a, b = p["kappa"], p.get("mass2", p.get("a")), p.get("b", 0.0)
    phi = torch.full(shape, minimum, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(energy_torch(phi, kappa, a, b), phi)
    assert float(grad.abs().max()) < 1e-12  # sanity: it is the minimum (float64 rounding ~1e-15)
    truth = hessian_max(shape, kappa, a, b, minimum)
    c = sampling.curvature(info, p, len(shape))
    assert c == pytest.approx(
        truth, rel=1e-12
    )  # eigvalsh of a <= 32x32 matrix, entries O(10): error ~1e-14
    assert sampling.max_step_size(info, p, len(shape)) == pytest.approx(
        min(2 / truth, 1e3), rel=1e-12
    )


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}d")
def test_inverted_quadratic_curvature_lies_between_hessian_and_laplacian(shape):
    """a < 0 with b = 0 has no minimum; its Hessian is the same everywhere, largest eigenvalue
    4·ndim·kappa + a. The limit must not be looser than that (unstable steps) nor tighter than the
    Laplacian part 4·ndim·kappa alone (a negative quadratic only lowers every eigenvalue)."""
    info = energy_models.info("phi4")
    p = energy_models.resolve_parameters(info, {"kappa": 0.7, "a": -1.5, "b": 0.0})
    truth = hessian_max(shape, 0.7, -1.5, 0.0, 0.3)
    c = sampling.curvature(info, p, len(shape))
    assert truth - 1e-12 <= c <= 4 * len(shape) * 0.7 + 1e-12  # 1e-12: eigvalsh rounding as above


def test_max_step_size_is_two_over_curvature_below_the_cap():
    """kappa = 0, mass2 = 1 (Hessian = identity): the limit is 2, not the flat-energy cap."""
    info = energy_models.info("gaussian-free-field")
    for m2, limit in ((1.0, 2.0), (0.5, 4.0), (4.0, 0.5)):
        p = energy_models.resolve_parameters(info, {"kappa": 0.0, "mass2": m2})
        assert (
            sampling.max_step_size(info, p, 2) == limit
        )  # exact: 2/m2 for these m2 is a binary fraction


def test_max_step_size_never_exceeds_1e3():
    """Nearly flat (2/curvature = 2e4) and flat energies are both capped at exactly 1e3."""
    info = energy_models.info("gaussian-free-field")
    for m2 in (1e-4, 0.0):
        p = energy_models.resolve_parameters(info, {"kappa": 0.0, "mass2": m2})
        assert sampling.max_step_size(info, p, 2) == 1e3


# --- the default step --------------------------------------------------------------------------------


def test_default_step_is_half_the_limit_when_the_default_is_not_stable():
    """GFF kappa=5, mass2=0 in 2-D: curvature 40, limit 2/40 = 0.05 = DEFAULT_STEP['langevin'].
    A step at the limit is only marginally stable (η·c = 2 is not < 2), so the default becomes
    half the limit; steeper still (kappa=10) also half the limit."""
    info = energy_models.info("gaussian-free-field")
    for kappa, limit in ((5.0, 0.05), (10.0, 0.025)):
        p = energy_models.resolve_parameters(info, {"kappa": kappa, "mass2": 0.0})
        assert sampling.max_step_size(info, p, 2) == limit
        for kind in ("langevin", "annealed-langevin"):
            eta = sampling._default_step(kind, info, p, 2)
            assert eta == limit / 2 and eta * sampling.curvature(info, p, 2) < 2


# --- the replica ladder ------------------------------------------------------------------------------


def test_replica_ladder_is_eight_geometric_rungs_from_t_to_t_max():
    s = spec(sampler="replica-exchange", temperature=0.5, max_temperature=4.0)
    ladder = sampling.replica_ladder(s)
    assert len(ladder) == 8
    assert ladder[0] == 0.5 and ladder[-1] == pytest.approx(4.0, rel=1e-14)  # a few ulps of pow
    ratios = np.array(ladder[1:]) / np.array(ladder[:-1])
    assert ratios == pytest.approx(np.full(7, 8.0 ** (1 / 7)), rel=1e-14)
    given = (0.5, 0.7, 3.0)
    assert sampling.replica_ladder(dataclasses.replace(s, temperatures=given)) == list(given)


def test_replica_exchange_work_counts_eight_replicas():
    """site_updates = sites x chains x steps x replicas (estimate's docstring), 8 rungs by default."""
    cost = sampling.estimate(
        spec(sampler="replica-exchange", max_temperature=3.0, count=2, steps=5)
    )
    assert cost.site_updates == 16 * 2 * 5 * 8


# --- parameter ranges --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,params",
    [
        ("gaussian-free-field", {"kappa": 0.0, "mass2": 0.0}),
        ("gaussian-free-field", {"kappa": 1e6, "mass2": 1e6, "h": 1e6}),
        ("phi4", {"a": -1e6, "b": 0.0, "h": -1e6}),
        ("ising", {"J": -1e6, "h": 1e6}),
    ],
)
def test_parameter_range_ends_are_accepted(model, params):
    sampling.estimate(spec(model=model, parameters=params))


@pytest.mark.parametrize("name,value", [("kappa", down(0.0)), ("kappa", up(1e6)), ("b", -1e-300)])
def test_parameters_past_their_range_are_refused(name, value):
    e = refused(spec(parameters={name: value}))
    assert e.parameter == f"energy_model.parameters[{name}]"


# --- energy_models.build has the documented energies -------------------------------------------------


def numpy_energy(phi: np.ndarray, kappa: float, a: float, b: float, h) -> float:
    bond = sum((np.roll(phi, -1, ax) - phi) ** 2 for ax in range(phi.ndim))
    return float(np.sum(kappa / 2 * bond + a / 2 * phi**2 + b / 4 * phi**4 - h * phi))


RNG = np.random.default_rng(3)
FIELD = RNG.normal(size=(4, 6))
HMAP = RNG.normal(size=(4, 6))


@pytest.mark.parametrize("hmap", [None, HMAP], ids=["uniform-h", "field-map"])
@pytest.mark.parametrize(
    "model,params",
    [
        ("gaussian-free-field", {"kappa": 0.7, "mass2": 1.9, "h": 0.3}),
        ("phi4", {"kappa": 1.3, "a": -0.6, "b": 2.2, "h": -0.4}),
    ],
)
def test_built_continuous_models_have_the_documented_energy(model, params, hmap):
    info = energy_models.info(model)
    p = energy_models.resolve_parameters(info, params)
    built = energy_models.build(info, p, hmap, torch.float64, torch.device("cpu"))
    got = float(phi4(torch.as_tensor(FIELD)[None], built, 2).energy[0])
    a, b = p.get("mass2", p.get("a")), p.get("b", 0.0)
    h = p["h"] + (hmap if hmap is not None else 0.0)  # the map adds to the uniform h (registry)
    assert got == pytest.approx(
        numpy_energy(FIELD, p["kappa"], a, b, h), rel=1e-12
    )  # float64 sums of 24 terms


def test_float64_models_keep_the_field_map_in_float64():
    """A map of 0.1s is not exact in float32 (error 1.5e-9 each); in a float64 run the energy
    agrees with the float64 formula to rounding (1e-14 relative), far below that error x 24 sites."""
    info = energy_models.info("gaussian-free-field")
    p = energy_models.resolve_parameters(info, {"h": 0.0})
    hmap = np.full((4, 6), 0.1)
    built = energy_models.build(info, p, hmap, torch.float64, torch.device("cpu"))
    phi = np.full((4, 6), 1e4)
    got = float(phi4(torch.as_tensor(phi)[None], built, 2).energy[0])
    assert got == pytest.approx(numpy_energy(phi, 1.0, 1.0, 0.0, hmap), rel=1e-14, abs=0)


def test_float32_samples_stay_float32_with_a_float64_field_map():
    """proto SampleRequest.dtype: unset means float32 samples, whatever the map's own dtype."""
    out = sampling.sample(spec(sampler="langevin", external_field=HMAP[:4, :4].copy()))
    assert out.samples.dtype == np.float32


def ising_numpy_energy(s: np.ndarray, J: float, h) -> float:
    """-J sum over bonds (each once: right and down neighbours, periodic) - sum h_i s_i."""
    bonds = s * np.roll(s, -1, 0) + s * np.roll(s, -1, 1)
    return float(-J * bonds.sum() - np.sum(h * s))


@pytest.mark.parametrize(
    "hmap", [None, np.arange(24.0).reshape(4, 6) - 10], ids=["uniform-h", "field-map"]
)
def test_built_ising_has_the_documented_energy(hmap):
    """Integer J, h: the energy is exact (ising_energy's docstring)."""
    info = energy_models.info("ising")
    p = energy_models.resolve_parameters(info, {"J": -2.0, "h": 3.0})
    built = energy_models.build(info, p, hmap, torch.float32, torch.device("cpu"))
    s = np.where(RNG.random((4, 6)) < 0.5, 1, -1).astype(np.int8)
    got = float(ising_energy(torch.as_tensor(s)[None], built)[0][0])
    assert got == ising_numpy_energy(
        s.astype(float), -2.0, 3.0 + (hmap if hmap is not None else 0.0)
    )


def test_ising_runs_do_not_depend_on_the_requested_float_dtype():
    """Spin samples are int8 whatever dtype asks (proto: int8 for spin models): a float64 request
    runs the very same chain as float32, energies included, even with a non-integer field map."""
    s = spec(
        model="ising", parameters={"h": 0.1}, external_field=np.full((4, 4), 0.1), steps=3, count=2
    )
    a, b = sampling.sample(s), sampling.sample(dataclasses.replace(s, dtype="float64"))
    assert np.array_equal(a.samples, b.samples) and np.array_equal(a.energy, b.energy)


@pytest.mark.parametrize("kind", ["langevin", "mala"])
def test_the_field_maps_own_dtype_does_not_change_a_run(kind):
    """The same map values sent as float32 or as float64 (values exact in float32) run the same
    chain: a run computes in its own dtype (float32 here), so samples and energies are bit-equal
    (equal requests with equal seeds give equal samples, proto SampleRequest.seed)."""
    hmap = RNG.normal(size=(4, 4)).astype(np.float32)
    s = spec(sampler=kind, steps=3, count=2, seed=4)
    a = sampling.sample(dataclasses.replace(s, external_field=hmap))
    b = sampling.sample(dataclasses.replace(s, external_field=hmap.astype(np.float64)))
    assert np.array_equal(a.samples, b.samples) and np.array_equal(a.energy, b.energy)
