"""Diffusion engine: samples/s and ESS/s per sampler and size; reconstruction quality and time
against linear interpolation and kriging — all in one run.

    python bench/diffusion.py [--fields 50] [--sizes 16,32] [--out results.json]

Samplers run through `idf.engine.sampling.boltzmann.sample` (the code Sample serves) on this machine's
device; ESS is the Kish/Geyer effective sample size of the kept energy trace summed over chains
(`SampleResult.effective_sample_size`). Reverse diffusion draws independent samples, so its ESS is
its sample count. Reconstruction: held-out plume fields (seeds the training never drew), 3% and
10% of sites observed exactly, the shipped denoiser (16 posterior samples, 32 stochastic steps)
against scipy's linear interpolation and kriging with the family's exact covariance. Prints one
JSON document.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from pathlib import Path

import torch
from report import emit  # noqa: I001 - bench/ is the script's folder

from idf.engine import models
from idf.engine.sampling.boltzmann import SampleSpec, sample
from idf.engine.training import evaluation

SAMPLERS = [
    ("phi4", "langevin", {}),
    ("phi4", "mala", {}),
    ("phi4", "annealed-langevin", {"max_temperature": 4.0}),
    ("phi4", "replica-exchange", {"max_temperature": 4.0}),
    ("ising", "gibbs", {}),
]


def bench_sampler(model: str, kind: str, extra: dict, side: int, chains: int, steps: int) -> dict:
    spec = SampleSpec(
        model=model,
        parameters={},
        shape=(side, side),
        sampler=kind,
        steps=steps,
        burn_in=steps // 2,
        count=chains,
        seed=1,
        temperature=2.27 if model == "ising" else 1.0,
        **extra,
    )
    sample(dataclasses.replace(spec, steps=4, burn_in=0))  # warm-up
    t = time.perf_counter()
    out = sample(spec)
    seconds = time.perf_counter() - t
    return {
        "model": model,
        "sampler": kind,
        "side": side,
        "chains": chains,
        "steps": steps,
        "seconds": seconds,
        "samples_per_s": chains / seconds,
        "site_updates_per_s": out.site_updates / seconds,
        "ess": out.effective_sample_size,
        "ess_per_s": out.effective_sample_size / seconds,
    }


def bench_reverse(count: int) -> dict:
    spec = SampleSpec(
        model="gaussian-free-field",
        parameters={},
        shape=(32, 32),
        sampler="reverse-diffusion",
        steps=32,
        count=count,
        seed=1,
    )
    sample(dataclasses.replace(spec, steps=2, count=1))
    t = time.perf_counter()
    sample(spec)
    seconds = time.perf_counter() - t
    return {
        "model": models.DEFAULT_DENOISER,
        "sampler": "reverse-diffusion",
        "side": 32,
        "chains": count,
        "steps": 32,
        "seconds": seconds,
        "samples_per_s": count / seconds,
        "ess": count,
        "ess_per_s": count / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fields", type=int, default=50, help="held-out fields per observation density"
    )
    parser.add_argument("--sizes", default="16,32,64")
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    samplers = [
        bench_sampler(m, k, e, side, args.chains, args.steps)
        for side in sizes
        for m, k, e in SAMPLERS
    ]
    samplers.append(bench_reverse(args.chains))
    denoiser = models.load_denoiser(models.DEFAULT_DENOISER, "cpu")
    covariance = evaluation.kriging_covariance(
        denoiser.metadata.get("family", "plume"), denoiser.side
    )
    quality = [
        dataclasses.asdict(evaluation.evaluate(denoiser, f, args.fields, covariance=covariance))
        for f in (0.03, 0.10)
    ]
    emit(
        {
            "benchmark": "diffusion",
            "date": time.strftime("%Y-%m-%d"),
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "device": "cpu",
            },
            "denoiser": {
                "name": models.DEFAULT_DENOISER,
                "training_step": denoiser.metadata.get("step"),
                "reproduce": denoiser.metadata.get("command"),
            },
            "samplers": samplers,
            "reconstruction": quality,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
