"""A proof's record: what was checked, against which policy, with which result — the JSON
document the log signs and appends (schema: docs/metrics.md, "Record").

The rules of a proof request live here, apart from any transport: which inputs a policy needs
(`ProofInputs.of`), what checking them costs (`ProofInputs.estimate`), the metrics and verdict
(`ProofInputs.measure`, `verdict`), the record itself (`record`) and its bounds (a record lists a
digest per input frame, ~90 bytes each, and bounded strings: 256 frames keep it near 25 KB;
records are append-only and listed in pages, so they stay small). `parse` reads a stored record
back into a `Record`. Digests and canonical JSON are the SDK's (`idf.client.proofs`): offline
verifiers compute the same bytes, so the caller passes them in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from idf.engine.cost import Cost
from idf.engine.errors import ParameterError
from idf.engine.proofs import metrics, policies

RECORD_VERSION = 1
MAX_SEQUENCE_FRAMES = 256
MAX_RECORD_BYTES = 64 * 1024
VERDICTS = ("PASS", "FAIL")


def check_frames(policy: policies.Policy, frames: int) -> None:
    """A sequence policy checks 2 to MAX_SEQUENCE_FRAMES frames."""
    if not 2 <= frames <= MAX_SEQUENCE_FRAMES:
        raise ParameterError(
            "sequence",
            f"policy {policy.name} checks a time sequence of 2 to "
            f"{MAX_SEQUENCE_FRAMES} frames, got {frames}",
        )


@dataclass(frozen=True)
class ProofInputs:
    """The arrays a policy checks, by role: `prediction` and `reference` for compare policies,
    `sequence[0]`, `sequence[1]`, ... for sequence policies."""

    policy: policies.Policy
    arrays: Mapping[str, np.ndarray]

    @classmethod
    def of(
        cls,
        policy: policies.Policy,
        *,
        prediction: np.ndarray | None = None,
        reference: np.ndarray | None = None,
        sequence: Sequence[np.ndarray] = (),
    ) -> ProofInputs:
        """The inputs `policy` needs, or a ParameterError naming the one missing or out of bounds."""
        if policy.kind == "compare":
            arrays = {"prediction": prediction, "reference": reference}
            for role, a in arrays.items():
                if a is None:
                    raise ParameterError(
                        role, f"policy {policy.name} compares a prediction with a reference"
                    )
            return cls(policy, arrays)  # type: ignore[arg-type]
        check_frames(policy, len(sequence))
        return cls(policy, {f"sequence[{i}]": f for i, f in enumerate(sequence)})

    @property
    def field(self) -> str:
        """The request field a cost refusal names."""
        return "prediction" if self.policy.kind == "compare" else "sequence"

    def estimate(self) -> Cost:
        """What `measure` will cost (idf.engine.cost); never raises, allocates nothing."""
        first = next(iter(self.arrays.values()))
        if self.policy.kind == "compare":
            return metrics.estimate_compare(first.shape)
        return metrics.estimate_sequence(len(self.arrays), first.shape)

    def measure(self) -> dict[str, float]:
        """The policy kind's metrics (ParameterError when one is undefined for these inputs)."""
        if self.policy.kind == "compare":
            return metrics.compare(self.arrays["prediction"], self.arrays["reference"])
        return metrics.sequence_metrics(list(self.arrays.values()))


@dataclass(frozen=True)
class Record:
    """A stored record, read back (`parse`)."""

    id: str
    log: str
    create_time: str  # RFC 3339, UTC, microseconds
    policy: str
    verdict: str  # PASS or FAIL
    metrics: dict[str, float]
    checks: tuple[policies.Outcome, ...]
    inputs: dict[str, str]  # role -> digest of the array
    producer_name: str
    producer_version: str


def record(
    inputs: ProofInputs,
    values: Mapping[str, float],
    *,
    proof_id: str,
    log: str,
    create_time: str,
    digests: Mapping[str, str],
    producer_name: str,
    producer_version: str,
) -> dict[str, Any]:
    """The record of checking `inputs` whose metrics are `values` (ParameterError when the policy
    needs a metric the inputs do not define). `digests` maps each input role to its digest."""
    outcomes, passed = policies.evaluate(inputs.policy, dict(values))
    if set(digests) != set(inputs.arrays):
        raise ValueError(f"digests for {sorted(digests)}, inputs {sorted(inputs.arrays)}")
    return {
        "version": RECORD_VERSION,
        "id": proof_id,
        "log": log,
        "create_time": create_time,
        "policy": inputs.policy.name,
        "verdict": VERDICTS[0] if passed else VERDICTS[1],
        "metrics": dict(values),
        "checks": [
            {
                "metric": o.metric,
                "comparison": o.comparison,
                "threshold": o.threshold,
                "value": o.value,
                "verdict": VERDICTS[0] if o.passed else VERDICTS[1],
            }
            for o in outcomes
        ],
        "inputs": dict(digests),
        "producer": {"name": producer_name, "version": producer_version},
    }


def check_size(body: bytes) -> None:
    """Defence in depth: every part of a record is bounded above, and so is the whole."""
    if len(body) > MAX_RECORD_BYTES:
        raise ParameterError(
            "sequence", f"the proof record would be {len(body)} bytes; at most {MAX_RECORD_BYTES}"
        )


def parse(body: bytes) -> Record:
    """A stored record (ValueError, KeyError or TypeError when it does not parse: a tampered log)."""
    r = json.loads(body)
    for verdict in [r["verdict"], *(c["verdict"] for c in r["checks"])]:
        if verdict not in VERDICTS:
            raise ValueError(f"verdict {verdict!r}")
    return Record(
        id=r["id"],
        log=r["log"],
        create_time=r["create_time"],
        policy=r["policy"],
        verdict=r["verdict"],
        metrics={str(k): float(v) for k, v in r["metrics"].items()},
        checks=tuple(
            policies.Outcome(
                c["metric"],
                c["comparison"],
                float(c["threshold"]),
                float(c["value"]),
                c["verdict"] == VERDICTS[0],
            )
            for c in r["checks"]
        ),
        inputs={str(k): str(v) for k, v in r["inputs"].items()},
        producer_name=r["producer"]["name"],
        producer_version=r["producer"]["version"],
    )
