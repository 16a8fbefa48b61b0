"""What an engine call will cost, known before it starts: the work model of admission control.

Every engine entry point has a pure `estimate(...)` next to it (`sampling.boltzmann.estimate`,
`forecast.physics.estimate`, `forecast.nvp.estimate`, `reconstruction.posterior.estimate`,
`proofs.metrics.estimate_compare`, `proofs.metrics.estimate_sequence`) taking the same arguments the call takes, allocating nothing and
running nothing. It returns a `Cost`:

- `site_updates`: the work, in the unit metering charges. For a run that completes it equals
  the `site_updates` the engine reports afterwards (tests check this for every sampler and
  forecaster); a cancelled run reports less (`Cancelled.site_updates`).
- `weight`: what one of those site updates costs in stencil-equivalent work, for the per-call
  work ceiling (`work`): 1 for stencil and spin updates, `LEARNED_WORK_WEIGHT` for a network
  evaluation per site. Billing counts plain site updates.
- `state_bytes`: the peak of the memory the call allocates (host RAM on the CPU path): every
  live buffer of chains x sites x itemsize, replicas included, the temporaries of one step, the
  outputs it builds, the network's activations on the learned paths. Inputs the caller already
  holds are not counted.

How the per-site buffer counts below were measured: `python -m idf.engine.cost` runs each path
in a fresh process on shapes large enough (>= 32 MiB per buffer) that every array is its own
mmap, resets the kernel's high-water mark (/proc/self/clear_refs "5"), runs the call, and reads
VmHWM - VmRSS(before) from /proc/self/status. tracemalloc cannot see torch's CPU allocator,
hence RSS. The constants are the measured peak divided by (chains x sites x itemsize), rounded
up; the same command prints measured peak against estimate for each path. On CUDA the fused
Triton kernels keep fewer temporaries, so the CPU figure is an upper bound there.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# A site update of a learned path (a U-Net evaluation per site) costs far more than a stencil
# one: measured on this project's 2-core CPU machine (while other runs loaded it; the ratio, not
# the speeds, is what is used), the physics stepper does ~6.5e7 site updates/s (256^2 x 4 frames
# x 2000 substeps in 8 s) and reconstruction ~1.5e5/s (32^2, 16 fields, 32 steps in 6.7 s): a
# ratio of ~430.
LEARNED_WORK_WEIGHT = 430


@dataclass(frozen=True)
class Cost:
    site_updates: int  # work: what the engine reports as site_updates for a completed run
    state_bytes: int  # peak bytes of state the call allocates
    weight: int = (
        1  # stencil-equivalent work per site update (LEARNED_WORK_WEIGHT on learned paths)
    )

    def __post_init__(self) -> None:
        if self.site_updates < 0 or self.state_bytes < 0 or self.weight < 1:
            raise ValueError(f"a cost is never negative and weighs at least 1: {self}")

    @property
    def work(self) -> int:
        """Stencil-equivalent site updates: what the per-call work ceiling is checked against."""
        return self.site_updates * self.weight


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def measure_peak(fn: Callable[[], Any]) -> tuple[int, Any]:
    """(peak extra resident bytes while `fn` ran, its result). Linux only; meaningful in a fresh
    process on large shapes (small arrays come from the allocator's already-resident pools)."""
    gc.collect()
    before = _status("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    out = fn()
    return _status("VmHWM:") - before, out


# `python -m idf.engine.cost`: measured peak against estimate for each engine path ------------
_CASES = {
    "langevin": "from idf.engine.sampling import boltzmann as m\n"
    "spec = m.SampleSpec('phi4', {}, (1024, 1024), 'langevin', steps=3, count=16)\n"
    "run, est = (lambda: m.sample(spec)), m.estimate(spec)",
    "mala-3d-float64": "from idf.engine.sampling import boltzmann as m\n"
    "spec = m.SampleSpec('phi4', {}, (128, 128, 128), 'mala', steps=3, count=8, dtype='float64')\n"
    "run, est = (lambda: m.sample(spec)), m.estimate(spec)",
    "replica-exchange": "from idf.engine.sampling import boltzmann as m\n"
    "spec = m.SampleSpec('phi4', {}, (1024, 1024), 'replica-exchange', steps=3, count=16, temperatures=(1, 2, 3, 4))\n"
    "run, est = (lambda: m.sample(spec)), m.estimate(spec)",
    "xy-mala": "from idf.engine.sampling import boltzmann as m\n"
    "spec = m.SampleSpec('xy', {}, (1024, 1024), 'mala', steps=3, count=16)\n"
    "run, est = (lambda: m.sample(spec)), m.estimate(spec)",
    "xy-langevin": "from idf.engine.sampling import boltzmann as m\n"
    "spec = m.SampleSpec('xy', {}, (1024, 1024), 'langevin', steps=3, count=16)\n"
    "run, est = (lambda: m.sample(spec)), m.estimate(spec)",
    "gibbs-field": "from idf.engine.sampling import boltzmann as m\n"
    "spec = m.SampleSpec('ising', {}, (1024, 1024), 'gibbs', steps=3, count=16, external_field=np.full((1024, 1024), 0.1))\n"
    "run, est = (lambda: m.sample(spec)), m.estimate(spec)",
    "physics-forecast": "from idf.engine.forecast import physics as m\n"
    "u = np.random.default_rng(0).random((2048, 2048)).astype(np.float32)\n"
    "spec = m.TransportSpec(diffusivity=0.1, velocity=(0.3, -0.2), substeps=2, boundary='zero-flux')\n"
    "run, est = (lambda: m.physics_forecast([u], 3, spec, source=np.ones_like(u), device='cpu')), m.estimate(u.shape, u.dtype, 3, spec)",
    "nvp": "from idf.engine import models\nfrom idf.engine.forecast import nvp as m\n"
    "f = models.load_forecaster('nvp-kolmogorov-64'); h = np.random.default_rng(0).normal(size=(2, 64, 64)).astype(np.float32)\n"
    "m.forecast(f, h, 1, 60.0, members=2)\n"
    "run, est = (lambda: m.forecast(f, h, 20, 60.0, members=64)), m.estimate(h.shape, 20, 64)",
    "reconstruction": "from idf.engine import models\nfrom idf.engine.reconstruction import posterior as m\n"
    "d = models.load_denoiser('plume-32-edm'); v = np.zeros((32, 32)); k = np.zeros((32, 32), bool); k[3, 3] = True\n"
    "m.reconstruct(d, v, k, count=2, steps=2)\n"
    "run, est = (lambda: m.reconstruct(d, v, k, count=128, steps=4)), m.estimate((32, 32), 128, 4)",
    "compare": "from idf.engine.proofs import metrics as m\n"
    "r = np.random.default_rng(0).random((2048, 2048)) + 1; p = r + 0.01\n"
    "run, est = (lambda: m.compare(p, r)), m.estimate_compare(r.shape)",
}


def _measure_case(name: str) -> dict[str, float]:
    import numpy as np  # noqa: F401 - used by the case's code

    ns: dict[str, Any] = {"np": np}
    exec(_CASES[name], ns)  # noqa: S102 - fixed code above
    peak, _ = measure_peak(ns["run"])
    return {
        "case": name,
        "measured_bytes": peak,
        "estimated_bytes": ns["est"].state_bytes,
        "ratio": round(ns["est"].state_bytes / max(peak, 1), 3),
    }


if __name__ == "__main__":
    import json
    import subprocess
    import sys

    if len(sys.argv) > 1:
        print(json.dumps(_measure_case(sys.argv[1])))
    else:
        for case in _CASES:  # one fresh process per case: nothing resident from another
            subprocess.run([sys.executable, "-m", "idf.engine.cost", case], check=True)
