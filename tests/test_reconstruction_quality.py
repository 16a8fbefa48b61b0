"""The shipped denoiser on held-out plume fields (seeds training never drew), against the
baselines measured in the same run. Asserts only what the checkpoint achieves; the full table
(more fields, both densities, kriging) is bench/diffusion.py's, in docs/benchmarks.md."""

from __future__ import annotations

import pytest

from idf.engine import models
from idf.engine.training import evaluation

# What this exact run (4 held-out fields, 10% observed, 8 samples, seed 11) measured on a 2-core
# AMD EPYC (AVX-512), torch 2.13.0+cpu, 2026-11-30: diffusion rel. L2 0.027416, linear 0.14545,
# so diffusion/linear 0.18849. Deterministic: two runs at 2 threads agreed to the last bit; 1 vs
# 2 threads, and torch/oneDNN forced to AVX2 or no SIMD (a stand-in for another CPU), moved the
# figure by < 1e-6 relative. The bounds are 1.3x the measurement: float-rounding differences
# across CPUs/BLAS are five orders smaller, so only a real regression of the checkpoint, the
# sampler or the guidance (> 30% worse) fails them.
MEASURED_REL_L2 = 0.027416
MEASURED_VS_LINEAR = 0.18849


@pytest.mark.slow
def test_shipped_denoiser_meets_the_ten_percent_target_and_beats_interpolation():
    model = models.load_denoiser(models.DEFAULT_DENOISER, "cpu")
    e = evaluation.evaluate(model, 0.10, 4, count=8, seed=11)
    print(
        f"10% observed, 4 fields: diffusion {e.diffusion_rel_l2:.6f}, linear {e.linear_rel_l2:.6f}, "
        f"kriging {e.kriging_rel_l2:.6f}; coverage {e.diffusion_coverage:.4f}"
    )
    assert e.diffusion_rel_l2 < 1.3 * MEASURED_REL_L2  # regression bound: < 0.0356
    assert (
        e.diffusion_rel_l2 / e.linear_rel_l2 < 1.3 * MEASURED_VS_LINEAR
    )  # < 0.245: 4x better than interpolation
    # the product's headline target (docs/benchmarks.md: rel. L2 below 5% at 10% observed), weaker
    assert e.diffusion_rel_l2 < 0.05
    assert e.diffusion_rel_l2 < e.linear_rel_l2
