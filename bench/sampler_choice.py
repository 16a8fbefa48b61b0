"""Which reverse sampler `Reconstruct` uses: heun vs stochastic on validation fields.

    python bench/sampler_choice.py [--fields 8] [--out results.json]

Validation seeds (fieldsets.VALIDATION_SEEDS) are neither trained on nor in the held-out range
that bench/diffusion.py reports, so choosing the sampler here does not tune on the test set.
Prints one JSON document: relative L2 and ±2σ coverage per method and observed fraction.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from report import emit  # noqa: I001 - bench/ is the script's folder

from idf.engine import models
from idf.engine.flows import fieldsets
from idf.engine.sampling import reverse
from idf.engine.training import evaluation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    model = models.load_denoiser(models.DEFAULT_DENOISER, "cpu")
    covariance = evaluation.kriging_covariance(model.metadata.get("family", "plume"), model.side)
    rows = [
        {
            "method": method,
            **dataclasses.asdict(
                evaluation.evaluate(
                    model,
                    fraction,
                    args.fields,
                    method=method,
                    covariance=covariance,
                    seeds=fieldsets.VALIDATION_SEEDS,
                )
            ),
        }
        for method in reverse.METHODS
        for fraction in (0.03, 0.10)
    ]
    emit(
        {
            "benchmark": "sampler_choice",
            "date": time.strftime("%Y-%m-%d"),
            "denoiser": models.DEFAULT_DENOISER,
            "seeds": "validation",
            "results": rows,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
