"""The proof and market rules of the engine, without a server: records (`idf.engine.proofs.records`),
policy rewards (`Policy.reward`) and the market operations over reserves
(`idf.engine.market.operations`). Expected values are worked by hand from the formulas in
docs/market.md and docs/proofs.md, or follow from conservation (nothing created or destroyed by
a swap, a deposit or a withdrawal)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from idf.client.proofs import array_digest, canonical_json
from idf.engine.errors import ParameterError
from idf.engine.market import amm
from idf.engine.market import operations as ops
from idf.engine.proofs import policies, records


def _inputs(policy: str = "forecast-default", shift: float = 1e-3) -> records.ProofInputs:
    r = np.linspace(1, 2, 64).reshape(8, 8)
    return records.ProofInputs.of(policies.get(policy), prediction=r + shift, reference=r)


def test_a_record_round_trips_and_names_what_was_checked():
    inputs = _inputs()
    values = inputs.measure()
    digests = {k: array_digest(v) for k, v in inputs.arrays.items()}
    rec = records.record(
        inputs,
        values,
        proof_id="abc",
        log="idf.test/log",
        create_time="2026-12-02T00:00:00.000000Z",
        digests=digests,
        producer_name="me",
        producer_version="1",
    )
    assert rec["verdict"] == "PASS" and rec["version"] == records.RECORD_VERSION
    assert [c["metric"] for c in rec["checks"]] == [
        "nrmse",
        "energy_fidelity",
        "spectrum_correlation",
    ]
    back = records.parse(canonical_json(rec))
    assert back.inputs == digests and back.metrics == values and back.verdict == "PASS"
    assert back.producer_name == "me" and back.producer_version == "1" and back.id == "abc"
    assert all(c.passed for c in back.checks)
    failing = records.record(
        _inputs(shift=1.0),
        _inputs(shift=1.0).measure(),
        proof_id="f",
        log="l",
        create_time="t",
        digests=digests,
        producer_name="",
        producer_version="",
    )
    assert failing["verdict"] == "FAIL" and failing["checks"][0]["verdict"] == "FAIL"


def test_records_refuse_what_they_cannot_hold():
    with pytest.raises(ValueError):
        records.record(
            _inputs(),
            _inputs().measure(),
            proof_id="x",
            log="l",
            create_time="t",
            digests={"prediction": "d"},
            producer_name="",
            producer_version="",
        )
    with pytest.raises(ParameterError) as e:
        records.check_size(b"x" * (records.MAX_RECORD_BYTES + 1))
    assert e.value.parameter == "sequence"
    records.check_size(b"x" * records.MAX_RECORD_BYTES)
    body = json.loads(
        canonical_json(
            records.record(
                _inputs(),
                _inputs().measure(),
                proof_id="x",
                log="l",
                create_time="t",
                digests={"prediction": "a", "reference": "b"},
                producer_name="",
                producer_version="",
            )
        )
    )
    body["verdict"] = "MAYBE"
    with pytest.raises(ValueError):
        records.parse(json.dumps(body).encode())


def test_inputs_name_the_missing_role_and_bound_the_frames():
    compare = policies.get("forecast-default")
    with pytest.raises(ParameterError) as e:
        records.ProofInputs.of(compare, prediction=np.ones(4))
    assert e.value.parameter == "reference"
    seq = policies.get("conservation-strict")
    for n in (0, 1, records.MAX_SEQUENCE_FRAMES + 1):
        with pytest.raises(ParameterError) as e:
            records.ProofInputs.of(seq, sequence=[np.ones(4)] * n)
        assert e.value.parameter == "sequence"
    inputs = records.ProofInputs.of(seq, sequence=[np.ones((4, 4))] * 3)
    assert (
        list(inputs.arrays) == ["sequence[0]", "sequence[1]", "sequence[2]"]
        and inputs.field == "sequence"
    )
    assert inputs.estimate().site_updates == 3 * 16
    assert inputs.measure()["total_drift"] == 0.0


def test_policy_rewards_base_plus_bonus_linear_under_the_threshold():
    forecast = policies.get("forecast-default")  # base 1000, nrmse <= 0.1
    assert forecast.reward({"nrmse": 0.0}) == 2000
    assert forecast.reward({"nrmse": 0.025}) == 1750
    assert forecast.reward({"nrmse": 0.1}) == 1000
    assert forecast.reward({"nrmse": 0.5}) == 1000  # past the threshold: no negative bonus
    assert policies.get("reconstruction-default").reward({"nrmse": 0.01}) == 2000 + 1600
    assert (
        policies.get("conservation-strict").reward({"total_drift": 0.0}) == 500
    )  # no nrmse check: the base
    assert policies.get("conservation-float32").reward({}) == 250


def test_swaps_move_what_the_pool_formula_says_and_conserve_tokens():
    r = amm.Reserves(10_000, 20_000, 14_142, 30)
    t = ops.swap(r, "CEU", amount_in=1_000, min_amount_out=0)
    # out = 1000*9970*20000 // (10000*10000 + 1000*9970) = 1813
    assert (t.amount_in, t.amount_out) == (1_000, 1_813)
    assert (t.after.ceu, t.after.pft, t.after.shares) == (11_000, 18_187, 14_142)
    back = ops.swap(r, "PFT", amount_out=500, max_amount_in=10**9)
    assert back.after.ceu == 9_500 and back.after.pft == 20_000 + back.amount_in
    with pytest.raises(ops.MarketError) as e:
        ops.swap(r, "CEU", amount_in=1_000, min_amount_out=1_814)
    assert (e.value.reason, e.value.field) == ("SLIPPAGE", "min_amount_out")
    with pytest.raises(ops.MarketError) as e:
        ops.swap(r, "PFT", amount_out=500, max_amount_in=back.amount_in - 1)
    assert (e.value.reason, e.value.field) == ("SLIPPAGE", "max_amount_in")
    with pytest.raises(ops.MarketError) as e:
        ops.swap(
            amm.Reserves(20_000, 10_000, 14_142, 30), "CEU", amount_in=1
        )  # 9970*10000 // (2e8 + 9970) = 0
    assert e.value.reason == "INSUFFICIENT_OUTPUT"
    q = ops.quote(r, "CEU", amount_in=1_000)
    assert (q["amount_out"], q["fee"]) == (1_813, 3)


def test_deposits_lock_minimum_liquidity_once_and_withdrawals_return_shares_worth():
    empty = amm.Reserves(0, 0, 0, 30)
    first = ops.deposit(empty, 40_000, 10_000, 0, 0)
    assert (first.ceu, first.pft, first.locked) == (40_000, 10_000, amm.MINIMUM_LIQUIDITY)
    assert first.shares + first.locked == 20_000  # sqrt(40000 * 10000)
    second = ops.deposit(
        first.after, 4_000, 4_000, 0, 0
    )  # at the pool's 4:1 ratio: 4000 CEU, 1000 PFT
    assert (second.ceu, second.pft, second.locked, second.shares) == (4_000, 1_000, 0, 2_000)
    w = ops.withdraw(second.after, 2_000, 0, 0)
    assert (w.ceu, w.pft) == (4_000, 1_000) and w.after == first.after
    with pytest.raises(ops.MarketError) as e:
        ops.withdraw(second.after, 2_000, 4_001, 0)
    assert (e.value.reason, e.value.field) == ("SLIPPAGE", "amount_ceu_min")
    with pytest.raises(ops.MarketError) as e:
        ops.withdraw(empty, 1, 0, 0)
    assert e.value.reason == "NO_LIQUIDITY"


def test_price_and_reward_budget():
    assert (
        ops.price(0, 1000) == 1 and ops.price(1, 1000) == 1 and ops.price(1_000_000, 1000) == 1000
    )
    assert ops.price(1_000_001, 1000) == 1001  # ceil
    assert ops.reward_budget(41, 0, 100.0) == 4100 and ops.reward_budget(41, 4000, 100.0) == 100
    assert ops.reward_budget(3, 0, 0.1) == 0  # floor(0.3)
    assert ops.reward_budget(10, 0, 0.1) == 1  # exact: Fraction(0.1) * 10 is just above 1
    assert ops.is_user_account("market/accounts/alice")
    assert not ops.is_user_account("market/accounts/-treasury") and not ops.is_user_account(None)
    assert not ops.is_user_account("")
