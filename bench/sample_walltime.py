"""Wall time of `sample` (the code Sample serves) in this checkout against another commit, in one
run, as ratios — the check that a refactor of the sampling code left its speed alone.

    python bench/sample_walltime.py --base 227ed8d [--rounds 2] [--out results.json]

The base commit is checked out into a temporary git worktree; each round times every case in the
base tree and in this one, alternately, each in its own process with one torch thread (best of
3 after a warm-up run). Prints one JSON document: per case and round the two times and new/base.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import emit  # noqa: I001 - bench/ is the script's folder

ROOT = Path(__file__).resolve().parents[1]
PORTIONS = ("server", "kernels", "cli", "clients/python")
CASES = {  # name: SampleSpec arguments
    "phi4-mala-64x64-16chains-300steps": ("phi4", (64, 64), "mala", 300, 16),
    "phi4-langevin-32x32-64chains-300steps": ("phi4", (32, 32), "langevin", 300, 64),
    "ising-gibbs-32x32-16chains-300steps": ("ising", (32, 32), "gibbs", 300, 16),
}
TIMER = """
import json, sys, time, torch
try:
    from idf.engine.sampling import boltzmann as m  # after the move into packages
except ImportError:
    from idf.engine import sampling as m  # before it
torch.set_num_threads(1)
model, shape, kind, steps, count = json.loads(sys.argv[1])
spec = m.SampleSpec(model, {}, tuple(shape), kind, steps=steps, count=count)
m.sample(spec)
best = float("inf")
for _ in range(3):
    t0 = time.perf_counter(); m.sample(spec); best = min(best, time.perf_counter() - t0)
print(best)
"""


def seconds(tree: Path, case: tuple) -> float:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(tree / p) for p in PORTIONS))
    out = subprocess.run(
        [sys.executable, "-c", TIMER, json.dumps(case)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "-q", "--detach", str(base), args.base], cwd=ROOT, check=True
        )
        try:
            rows = []
            for r in range(args.rounds):
                for name, case in CASES.items():
                    old, new = seconds(base, case), seconds(ROOT, case)
                    rows.append(
                        {
                            "case": name,
                            "round": r,
                            "base_s": round(old, 4),
                            "head_s": round(new, 4),
                            "head_over_base": round(new / old, 3),
                        }
                    )
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False
            )
    emit(
        {
            "benchmark": "sample_walltime",
            "date": time.strftime("%Y-%m-%d"),
            "base": args.base,
            "head": head,
            "cpus": os.cpu_count(),
            "results": rows,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
