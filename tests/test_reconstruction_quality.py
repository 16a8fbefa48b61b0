"""The shipped denoiser on held-out plume fields (seeds training never drew), against the
baselines measured in the same run. Asserts only what the checkpoint achieves; the full table
(more fields, both densities, kriging) is bench/diffusion.py's, in docs/benchmarks.md."""

from __future__ import annotations

import pytest

from idf.engine import models, reconstruction


@pytest.mark.slow
def test_shipped_denoiser_meets_the_ten_percent_target_and_beats_interpolation():
    model = models.load_denoiser(models.DEFAULT_DENOISER, "cpu")
    e = reconstruction.evaluate(model, 0.10, 4, count=8, seed=11)
    print(f"10% observed, 4 fields: diffusion {e.diffusion_rel_l2:.4f}, linear {e.linear_rel_l2:.4f}, "
          f"kriging {e.kriging_rel_l2:.4f}; coverage {e.diffusion_coverage:.3f}")
    assert e.diffusion_rel_l2 < 0.05
    assert e.diffusion_rel_l2 < e.linear_rel_l2
