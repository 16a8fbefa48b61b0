"""Policies: named sets of thresholds that turn metrics into per-check verdicts and an overall
PASS/FAIL. A policy whose metric was not computed is not applicable to that input.

A policy also says what a PASS earns (`Policy.reward`, in PFT base units): its `reward_base`,
plus for policies with an nrmse check a bonus of up to the base again, linear in how far under
the threshold the error is. What is actually paid is bounded by the market's rules
(docs/market.md, "PFT rewards")."""

from __future__ import annotations

import operator
from dataclasses import dataclass

from idf.engine.errors import ParameterError

_OPS = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Check:
    metric: str
    comparison: str  # "<=" or ">="
    threshold: float


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    kind: str  # "compare" (prediction vs reference) or "sequence"
    checks: tuple[Check, ...]
    reward_base: int = 0  # PFT base units a PASS earns before the bonus

    def reward(self, metrics: dict[str, float]) -> int:
        """What a PASS with these metrics earns: the base, plus base x (1 - nrmse / threshold)
        (floored, never negative) when the policy checks nrmse."""
        threshold = next((c.threshold for c in self.checks if c.metric == "nrmse"), None)
        if not threshold or "nrmse" not in metrics:
            return self.reward_base
        return self.reward_base + int(self.reward_base * max(0.0, 1 - metrics["nrmse"] / threshold))


@dataclass(frozen=True)
class Outcome:
    metric: str
    comparison: str
    threshold: float
    value: float
    passed: bool


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy(
            "forecast-default",
            "Forecast against ground truth: 10% normalised RMSE, 99% energy fidelity, spectra correlated at 0.9.",
            "compare",
            (
                Check("nrmse", "<=", 0.1),
                Check("energy_fidelity", ">=", 0.99),
                Check("spectrum_correlation", ">=", 0.9),
            ),
            1000,
        ),
        Policy(
            "reconstruction-default",
            "Field reconstruction: 5% normalised RMSE and 99% energy fidelity.",
            "compare",
            (Check("nrmse", "<=", 0.05), Check("energy_fidelity", ">=", 0.99)),
            2000,
        ),
        Policy(
            "conservation-strict",
            "Conservative dynamics in float64: total drift <= 1e-10 relative, entropy never decreases by more than 1e-9 nats.",
            "sequence",
            (Check("total_drift", "<=", 1e-10), Check("entropy_decrease", "<=", 1e-9)),
            500,
        ),
        Policy(
            "conservation-float32",
            "Conservative dynamics in float32: total drift <= 1e-5 relative, entropy decrease <= 1e-6 nats.",
            "sequence",
            (Check("total_drift", "<=", 1e-5), Check("entropy_decrease", "<=", 1e-6)),
            250,
        ),
    )
}
DEFAULT_POLICY = "forecast-default"


def get(name: str) -> Policy:
    policy = POLICIES.get(name or DEFAULT_POLICY)
    if policy is None:
        raise ParameterError("policy", f"unknown policy {name!r}; known: {sorted(POLICIES)}")
    return policy


def evaluate(policy: Policy, metrics: dict[str, float]) -> tuple[list[Outcome], bool]:
    """Per-check outcomes and the overall verdict (True = PASS)."""
    outcomes = []
    for check in policy.checks:
        if check.metric not in metrics:
            raise ParameterError(
                "policy", f"{policy.name} checks {check.metric}, which is undefined for this input"
            )
        value = metrics[check.metric]
        outcomes.append(
            Outcome(
                check.metric,
                check.comparison,
                check.threshold,
                value,
                _OPS[check.comparison](value, check.threshold),
            )
        )
    return outcomes, all(o.passed for o in outcomes)
