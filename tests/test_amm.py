"""AMM arithmetic against Uniswap v2's published test cases (UniswapV2Pair.spec.ts: mint,
getInputPrice, burn), including that the exact expected output passes the K check and one base
unit more is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from idf.engine.errors import ParameterError
from idf.engine.market.amm import (
    MINIMUM_LIQUIDITY,
    AmmError,
    Reserves,
    amount_in,
    amount_out,
    burned,
    k_holds,
    liquidity_minted,
    optimal_deposit,
    price_impact,
)

E18 = 10**18
# [swap amount, reserve in, reserve out, expected output] (getInputPrice cases)
SWAPS = [
    (1, 5, 10, 1662497915624478906),
    (1, 10, 5, 453305446940074565),
    (2, 5, 10, 2851015155847869602),
    (2, 10, 5, 831248957812239453),
    (1, 10, 10, 906610893880149131),
    (1, 100, 100, 987158034397061298),
    (1, 1000, 1000, 996006981039903216),
]


@pytest.mark.parametrize("swap, r_in, r_out, expected", SWAPS)
def test_get_input_price_golden_values(swap, r_in, r_out, expected):
    a, ri, ro = swap * E18, r_in * E18, r_out * E18
    assert amount_out(a, ri, ro, 30) == expected
    assert k_holds(ri, ro, a, expected, 30)
    assert not k_holds(ri, ro, a, expected + 1, 30)  # "UniswapV2: K"


def test_mint_golden_values():
    # first deposit 1e18 / 4e18: liquidity sqrt = 2e18, of which 1000 is locked
    pool = Reserves(0, 0, 0)
    minted = liquidity_minted(pool, E18, 4 * E18)
    assert minted + MINIMUM_LIQUIDITY == 2 * E18


def test_burn_golden_values():
    # deposit 3e18 / 3e18, burn everything but the locked minimum: 3e18 - 1000 of each back
    minted = liquidity_minted(Reserves(0, 0, 0), 3 * E18, 3 * E18)
    pool = Reserves(3 * E18, 3 * E18, minted + MINIMUM_LIQUIDITY)
    assert burned(pool, minted) == (3 * E18 - 1000, 3 * E18 - 1000)


@given(
    st.integers(1, 10**18),
    st.integers(10**3, 10**24),
    st.integers(10**3, 10**24),
    st.sampled_from([0, 5, 30, 100]),
)
def test_exact_in_is_the_largest_output_k_allows(a, ri, ro, fee):
    out = amount_out(a, ri, ro, fee)
    assert k_holds(ri, ro, a, out, fee) if out > 0 else True
    assert not k_holds(ri, ro, a, out + 1, fee)


@given(
    st.integers(1, 10**18),
    st.integers(10**3, 10**24),
    st.integers(10**3, 10**24),
    st.sampled_from([0, 5, 30, 100]),
)
def test_exact_out_is_the_smallest_input_k_allows(out, ri, ro, fee):
    if out >= ro:
        with pytest.raises(AmmError):
            amount_in(out, ri, ro, fee)
        return
    a = amount_in(out, ri, ro, fee)
    assert k_holds(ri, ro, a, out, fee)
    assert a == 1 or not k_holds(ri, ro, a - 2, out, fee)  # within the +1 rounding of the rule


def test_deposits_follow_the_pool_ratio():
    pool = Reserves(1000 * E18, 2000 * E18, 10**21)
    assert optimal_deposit(pool, 10, 100, 0, 0) == (10, 20)
    assert optimal_deposit(pool, 100, 10, 0, 0) == (5, 10)
    with pytest.raises(AmmError) as info:
        optimal_deposit(pool, 10, 100, 0, 21)
    assert info.value.reason == "SLIPPAGE"


def test_burning_too_few_shares_to_withdraw_either_token_is_refused():
    """UniswapV2Pair.burn requires amount0 > 0 && amount1 > 0 (INSUFFICIENT_LIQUIDITY_BURNED)."""
    pool = Reserves(ceu=1_000_000, pft=1_000, shares=1_000)
    assert burned(pool, 1) == (1_000, 1)
    lopsided = Reserves(ceu=1_000_000, pft=999, shares=1_000)  # one share: 1000 CEU but 0 PFT
    for pool_, shares in (
        (lopsided, 1),
        (Reserves(ceu=999, pft=1_000_000, shares=1_000), 1),
        (Reserves(ceu=5, pft=5, shares=1_000), 100),
    ):
        with pytest.raises(AmmError) as info:
            burned(pool_, shares)
        assert info.value.reason == "INSUFFICIENT_LIQUIDITY_BURNED"
        assert str(info.value) == "too few shares to withdraw anything"
    assert burned(lopsided, 2) == (2_000, 1)
    with pytest.raises(ParameterError) as info:
        burned(pool, 0)
    assert info.value.parameter == "shares"


def test_price_impact_is_zero_for_nothing_and_measures_the_slippage():
    assert price_impact(0, 0, 5 * E18, 10 * E18) == 0.0
    # 1 in at a marginal price of 2 out per in, 1.662… out: impact 1 - 1.662…/2 (fee included)
    got = price_impact(E18, 1662497915624478906, 5 * E18, 10 * E18)
    assert got == pytest.approx(1 - 1.662497915624478906 / 2, rel=1e-12)


def test_router_library_values_for_get_amount_in_and_out():
    """UniswapV2Router01.spec.ts (v2-periphery): getAmountOut(2, 100, 100) == 1 and
    getAmountIn(1, 100, 100) == 2 at the 0.3% fee."""
    assert amount_out(2, 100, 100, 30) == 1
    assert amount_in(1, 100, 100, 30) == 2


@pytest.mark.parametrize(
    "out, ri, ro, fee",
    [
        (1, 100, 100, 30),
        (7, 1000, 500, 30),
        (10**6, 10**12, 3 * 10**9, 5),
        (3, 10, 10, 0),
        (123, 10**9, 10**9, 100),
    ],
)
def test_exact_out_is_the_ceiling_uniswap_adds_one_to(out, ri, ro, fee):
    """getAmountIn is floor(q) + 1 with q = R_in·out·BPS / ((R_out − out)(BPS − fee)) the exact real
    input: the smallest input K allows when q is not an integer, one more when it is."""
    from fractions import Fraction

    q = Fraction(ri * out * 10_000, (ro - out) * (10_000 - fee))
    a = amount_in(out, ri, ro, fee)
    assert a == q.numerator // q.denominator + 1
    assert k_holds(ri, ro, a, out, fee)
    if q.denominator != 1:
        assert not k_holds(ri, ro, a - 1, out, fee)


@pytest.mark.parametrize(
    "call, parameter",
    [
        (lambda: amount_out(0, 10, 10, 30), "amount_in"),
        (lambda: amount_in(0, 10, 10, 30), "amount_out"),
        (lambda: liquidity_minted(Reserves(0, 0, 0), 0, 10), "amount_ceu"),
        (lambda: liquidity_minted(Reserves(0, 0, 0), 10, -1), "amount_pft"),
    ],
)
def test_non_positive_amounts_are_refused_by_name(call, parameter):
    with pytest.raises(ParameterError) as info:
        call()
    assert info.value.parameter == parameter
    assert str(info.value).startswith(f"{parameter}: must be > 0, got ")


@pytest.mark.parametrize("fn", [amount_out, amount_in])
def test_an_empty_side_is_no_liquidity_and_one_unit_is_liquidity(fn):
    for ri, ro in ((0, 10), (10, 0), (0, 0), (-1, 10), (10, -1)):
        with pytest.raises(AmmError) as info:
            fn(1, ri, ro, 30)
        assert (info.value.reason, str(info.value)) == ("NO_LIQUIDITY", "the pool has no liquidity")
    # reserves of one base unit are a (tiny) pool: no NO_LIQUIDITY refusal
    assert amount_out(1, 1, 1, 30) == 0
    assert amount_out(10, 1, 1, 30) == 0  # 9.97·1 // (1 + 9.97) in base units
    with pytest.raises(AmmError) as info:
        amount_in(1, 1, 1, 30)
    assert (info.value.reason, str(info.value)) == (
        "INSUFFICIENT_LIQUIDITY",
        "cannot take 1 out of a reserve of 1",
    )
    assert amount_in(1, 1, 2, 30) == 2


def test_k_check_refuses_emptying_the_output_reserve():
    assert not k_holds(100, 100, 10**9, 100, 30)  # taking all 100 out: new_out = 0
    assert k_holds(100, 100, 10**9, 99, 30)


def test_slippage_minimum_is_inclusive_and_named():
    pool = Reserves(1000 * E18, 2000 * E18, 10**21)
    assert optimal_deposit(pool, 10, 100, 0, 20) == (10, 20)  # exactly the minimum PFT
    assert optimal_deposit(pool, 100, 10, 5, 0) == (5, 10)  # exactly the minimum CEU
    with pytest.raises(AmmError) as info:
        optimal_deposit(pool, 10, 100, 0, 21)
    assert str(info.value) == "would deposit 20 PFT, below the minimum 21"
    with pytest.raises(AmmError) as info:
        optimal_deposit(pool, 100, 10, 6, 0)
    assert (info.value.reason, str(info.value)) == (
        "SLIPPAGE",
        "would deposit 5 CEU, below the minimum 6",
    )


def test_deposit_ratio_tie_keeps_the_desired_ceu():
    """UniswapV2Router02._addLiquidity: `if (amountBOptimal <= amountBDesired)` deposit A as
    desired: at equality the other branch would round the CEU down (3:2 pool, 2 CEU → 1 PFT; the
    reverse quote of 1 PFT is 1 CEU)."""
    assert optimal_deposit(Reserves(3, 2, 10), 2, 1, 0, 0) == (2, 1)


def test_an_empty_output_reserve_never_satisfies_k():
    assert not k_holds(10, 0, 5, 0, 30)
    assert not k_holds(0, 0, 5, 0, 30)


def test_later_deposits_mint_in_proportion_to_the_smaller_side():
    """UniswapV2Pair.mint: liquidity = min(amount0·totalSupply / reserve0, amount1·totalSupply / reserve1),
    refused (INSUFFICIENT_LIQUIDITY_MINTED) when it rounds to zero."""
    pool = Reserves(ceu=1_000, pft=4_000, shares=2_000)
    assert liquidity_minted(pool, 10, 40) == 20
    assert liquidity_minted(pool, 10, 80) == 20  # the extra PFT is donated, not minted against
    assert liquidity_minted(pool, 30, 40) == 20
    assert liquidity_minted(Reserves(1_000, 1_000, 1_000), 1, 1) == 1  # one share is a share
    for pool_, ceu, pft in (
        (Reserves(1_000, 1_000, 10), 50, 50),
        (Reserves(0, 0, 0), 1_000, 1_000),
    ):
        with pytest.raises(AmmError) as info:
            liquidity_minted(pool_, ceu, pft)
        assert (info.value.reason, str(info.value)) == (
            "INSUFFICIENT_LIQUIDITY_MINTED",
            "the deposit is too small to mint any share",
        )
