"""Metrics against hand-computed values, and properties: identical arrays are perfect and each
metric moves the right way under perturbation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from idf.engine.errors import ParameterError
from idf.engine.proofs.metrics import boundary_mask, compare, sequence_metrics, shannon_entropy
from idf.engine.proofs.policies import POLICIES, evaluate, get


def test_hand_computed_2x2():
    p = np.array([[1.0, 2.0], [3.0, 4.0]])
    r = np.ones((2, 2))
    m = compare(p, r)  # d = [[0, 1], [2, 3]]
    assert m["rmse"] == pytest.approx(math.sqrt(14 / 4))
    assert m["nrmse"] == pytest.approx(math.sqrt(14) / 2)
    assert m["conserved_rmse"] == pytest.approx(6 / 4)
    assert m["boundary_rmse"] == pytest.approx(m["rmse"])  # every site of a 2x2 grid is on the edge
    assert m["max_error"] == 3
    assert m["energy_fidelity"] == pytest.approx(1 - 6 / 4)
    assert (
        m["fourier_rmse_low"] == pytest.approx(m["rmse"])
        and m["fourier_rmse_mid"] == m["fourier_rmse_high"] == 0
    )


def test_hand_computed_interior_and_bands():
    r = np.ones((5, 5))
    p = r.copy()
    p[2, 2] = 3.0  # an interior error only
    m = compare(p, r)
    assert m["boundary_rmse"] == 0 and m["max_error"] == 2
    assert m["rmse"] == pytest.approx(2 / 5)
    # a single-site error spreads evenly over all 25 modes: |F_k| = 2 everywhere, all radii <= 4
    assert m["fourier_rmse_low"] == pytest.approx(m["rmse"])
    assert boundary_mask((3, 4)).sum() == 3 * 4 - 1 * 2


def test_bands_split_the_rmse_exactly():
    rng = np.random.default_rng(0)
    r = rng.random((40, 40)) + 1
    m = compare(r + 0.1 * rng.standard_normal((40, 40)), r)
    assert m["fourier_rmse_low"] ** 2 + m["fourier_rmse_mid"] ** 2 + m[
        "fourier_rmse_high"
    ] ** 2 == pytest.approx(m["rmse"] ** 2)
    assert min(m["fourier_rmse_low"], m["fourier_rmse_mid"], m["fourier_rmse_high"]) > 0


def test_sequence_metrics_hand_computed():
    uniform = np.ones((4, 4))
    peaked = np.zeros((4, 4))
    peaked[0, 0] = 16.0
    m = sequence_metrics([peaked, uniform, uniform * 1.1])
    assert m["total_drift"] == pytest.approx(0.1)
    assert m["entropy_decrease"] == 0  # peaked -> uniform: entropy rises (log 16), then stays
    assert sequence_metrics([uniform, peaked])["entropy_decrease"] == pytest.approx(math.log(16))
    assert shannon_entropy(uniform) == pytest.approx(math.log(16))
    assert "entropy_decrease" not in sequence_metrics(
        [uniform - 2, uniform - 2]
    )  # negative: undefined


@pytest.mark.parametrize(
    "p, r, parameter",
    [
        (np.ones((2, 2)), np.ones((2, 3)), "reference"),
        (np.ones((2, 2), np.float32), np.ones((2, 2)), "reference"),
        (np.ones((2, 2)), np.zeros((2, 2)), "reference"),
        (np.ones((2, 2)), np.array([[1.0, -1.0], [1.0, -1.0]]), "reference"),  # zero total
        (np.full((2, 2), np.nan), np.ones((2, 2)), "prediction"),
    ],
)
def test_undefined_metrics_are_errors(p, r, parameter):
    with pytest.raises(ParameterError) as info:
        compare(p, r)
    assert info.value.parameter == parameter


fields = arrays(
    np.float64,
    st.tuples(st.integers(2, 12), st.integers(2, 12)),
    elements=st.floats(0.5, 10, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=60, deadline=None)
@given(fields)
def test_identical_arrays_are_perfect(r):
    m = compare(r.copy(), r)
    assert (
        m["rmse"] == m["nrmse"] == m["max_error"] == m["conserved_rmse"] == m["boundary_rmse"] == 0
    )
    assert m["energy_fidelity"] == 1
    assert all(m[f"fourier_rmse_{b}"] == 0 for b in ("low", "mid", "high"))
    if "spectrum_correlation" in m:
        assert m["spectrum_correlation"] == pytest.approx(1)


@settings(max_examples=60, deadline=None)
@given(fields, st.integers(0, 2**31), st.floats(0.01, 1.0))
def test_errors_grow_with_the_perturbation(r, seed, eps):
    direction = (
        np.random.default_rng(seed).standard_normal(r.shape) + 0.1
    )  # nonzero mean: totals move
    small, large = compare(r + eps * direction, r), compare(r + 2 * eps * direction, r)
    for name in ("rmse", "nrmse", "max_error", "conserved_rmse", "boundary_rmse"):
        assert large[name] == pytest.approx(2 * small[name], rel=1e-9)  # homogeneous of degree 1
    assert large["energy_fidelity"] <= small["energy_fidelity"] <= 1


def test_policies_turn_metrics_into_verdicts():
    r = np.random.default_rng(1).random((16, 16)) + 1
    outcomes, passed = evaluate(get("forecast-default"), compare(r * 1.001, r))
    assert passed and all(o.passed for o in outcomes)
    outcomes, passed = evaluate(get("forecast-default"), compare(r * 1.5, r))
    assert not passed and {o.metric for o in outcomes if not o.passed} >= {
        "nrmse",
        "energy_fidelity",
    }
    with pytest.raises(ParameterError):
        get("no-such-policy")
    with pytest.raises(ParameterError):  # a sequence policy cannot judge a comparison
        evaluate(get("conservation-strict"), compare(r, r))
    assert {"forecast-default", "conservation-strict"} <= set(POLICIES)
