"""Sampler kernels: site-updates per second of our phi^4 Langevin step and Ising checkerboard
sweep against the implementations a user would otherwise reach for, all measured in one run.

    python bench/kernels.py [--quick] [--sizes 64 256 1024] [--out results.json]

CPU (always): ours (the public dispatching functions: torch on CPU) versus
  (a) a vectorised numpy implementation,
  (b) torch.compile of our torch reference (for Langevin also with
      torch._inductor.config.fallback_random=True),
  (c) for Ising, thrml's block-Gibbs sampler (JAX) with a checkerboard two-block schedule.
GPU (when CUDA is present): effective bandwidth of each fused Triton step against a
device-to-device copy, and speed against torch eager and torch.compile of the reference.

Every variant does one full update of every site per step (Ising: one sweep = both colours).
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from report import emit  # noqa: I001 - bench/ is the script's folder

from idf.kernels.ising import Ising, ising_sweep, sweep_reference
from idf.kernels.langevin import langevin_step, langevin_step_reference
from idf.kernels.phi4 import Phi4

MODEL = Phi4(kappa=1.0, a=-1.0, b=1.0, h=0.0)
ETA, TEMPERATURE = 0.05, 1.0
ISING_T = 2.5


def _rate(step: Callable[[int], object], sites: int, seconds: float) -> dict[str, float]:
    """Warm up (compilation included), then time whole steps for about `seconds`."""
    step(0)
    step(1)
    t0 = time.perf_counter()
    step(2)
    one = max(time.perf_counter() - t0, 1e-6)
    n = max(3, int(seconds / one))
    t0 = time.perf_counter()
    for k in range(n):
        step(3 + k)
    elapsed = time.perf_counter() - t0
    return {"steps": n, "seconds_per_step": elapsed / n, "site_updates_per_s": sites * n / elapsed}


# ---- phi^4 Langevin -------------------------------------------------------------------------


def langevin_ours(size: int) -> Callable[[int], object]:
    state = {"phi": torch.zeros(1, size, size)}

    def step(k: int) -> None:
        state["phi"], _ = langevin_step(
            state["phi"], MODEL, step_size=ETA, temperature=TEMPERATURE, seed=1, step=k
        )

    return step


def langevin_numpy(size: int) -> Callable[[int], object]:
    rng = np.random.default_rng(1)
    state = {"phi": np.zeros((size, size), np.float32)}
    sigma = np.float32(math.sqrt(2 * ETA * TEMPERATURE))
    k_, a, b = np.float32(MODEL.kappa), np.float32(MODEL.a), np.float32(MODEL.b)

    def step(_: int) -> None:
        phi = state["phi"]
        right, down = np.roll(phi, -1, 1), np.roll(phi, -1, 0)
        dx, dy = right - phi, down - phi
        p2 = phi * phi
        energy = np.sum(
            0.5 * k_ * (dx * dx + dy * dy) + 0.5 * a * p2 + 0.25 * b * p2 * p2, dtype=np.float64
        )
        lap = 4 * phi - right - down - np.roll(phi, 1, 1) - np.roll(phi, 1, 0)
        grad = k_ * lap + a * phi + b * p2 * phi
        state["phi"] = (
            phi - np.float32(ETA) * grad + sigma * rng.standard_normal(phi.shape, dtype=np.float32)
        )
        state["energy"] = energy

    return step


def _compiled_langevin(
    fallback_random: bool,
) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    import torch._inductor.config as inductor

    # Dynamo caches compiled code per code object: without a reset the second variant would
    # silently reuse the first one's compilation (and its random-number lowering).
    torch._dynamo.reset()
    inductor.fallback_random = fallback_random

    def step(phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn_like(phi)
        return langevin_step_reference(
            phi, MODEL, step_size=ETA, temperature=TEMPERATURE, noise=noise
        )

    return torch.compile(step, dynamic=False)


def langevin_compiled(size: int, fallback_random: bool) -> Callable[[int], object]:
    fn = _compiled_langevin(fallback_random)
    state = {"phi": torch.zeros(1, size, size)}

    def step(_: int) -> None:
        import torch._inductor.config as inductor

        inductor.fallback_random = fallback_random  # the setting is read when compiling
        state["phi"], _e = fn(state["phi"])

    return step


# ---- Ising ----------------------------------------------------------------------------------


def ising_ours(size: int) -> Callable[[int], object]:
    state = {"s": torch.ones(1, size, size, dtype=torch.int8)}

    def step(k: int) -> None:
        state["s"] = ising_sweep(state["s"], Ising(), temperature=ISING_T, seed=1, step=k).spins

    return step


def ising_numpy(size: int) -> Callable[[int], object]:
    rng = np.random.default_rng(1)
    yy, xx = np.indices((size, size))
    masks = [(xx + yy) % 2 == c for c in (0, 1)]
    state = {"s": np.ones((size, size), np.int8)}
    two_beta = np.float32(2.0 / ISING_T)

    def step(_: int) -> None:
        s = state["s"]
        for mask in masks:
            sf = s.astype(np.float32)
            nn = np.roll(sf, 1, 0) + np.roll(sf, -1, 0) + np.roll(sf, 1, 1) + np.roll(sf, -1, 1)
            up = rng.random(s.shape, dtype=np.float32) < 1 / (1 + np.exp(-two_beta * nn))
            s = np.where(mask, np.where(up, 1, -1).astype(np.int8), s)
        sf = s.astype(np.float32)
        state["energy"] = -np.sum(sf * (np.roll(sf, -1, 0) + np.roll(sf, -1, 1)), dtype=np.float64)
        state["m"] = np.sum(sf, dtype=np.float64)
        state["s"] = s

    return step


def ising_compiled(size: int) -> Callable[[int], object]:
    def sweep(s: torch.Tensor) -> torch.Tensor:
        uniforms = (torch.rand(s.shape), torch.rand(s.shape))
        return sweep_reference(s, Ising(), 1.0 / ISING_T, "heat-bath", uniforms).spins

    fn = torch.compile(sweep, dynamic=False)
    state = {"s": torch.ones(1, size, size, dtype=torch.int8)}

    def step(_: int) -> None:
        state["s"] = fn(state["s"])

    return step


def ising_thrml(size: int, sweeps: int) -> Callable[[int], object] | None:
    """thrml's Ising block Gibbs on the periodic L x L grid; one call runs `sweeps` sweeps
    (thrml runs its schedule as one jitted loop, so per-call overhead is amortised)."""
    import jax
    import jax.numpy as jnp
    from thrml.block_sampling import Block, SamplingSchedule, sample_states
    from thrml.models.ising import IsingEBM, IsingSamplingProgram, hinton_init
    from thrml.pgm import SpinNode

    nodes = [SpinNode() for _ in range(size * size)]
    edges = []
    for y in range(size):
        for x in range(size):
            i = y * size + x
            edges.append((nodes[i], nodes[y * size + (x + 1) % size]))
            edges.append((nodes[i], nodes[((y + 1) % size) * size + x]))
    even = Block(
        [nodes[y * size + x] for y in range(size) for x in range(size) if (x + y) % 2 == 0]
    )
    odd = Block([nodes[y * size + x] for y in range(size) for x in range(size) if (x + y) % 2 == 1])
    ebm = IsingEBM(
        nodes, edges, jnp.zeros(len(nodes)), jnp.ones(len(edges)), jnp.array(1.0 / ISING_T)
    )
    program = IsingSamplingProgram(ebm, [even, odd], [])
    key = jax.random.key(1)
    state = {"init": hinton_init(key, ebm, [even, odd], ())}
    schedule = SamplingSchedule(n_warmup=sweeps, n_samples=1, steps_per_sample=1)

    def step(k: int) -> None:
        out = sample_states(jax.random.key(k), program, schedule, state["init"], [], [even])
        jax.block_until_ready(out)

    return step


# ---- GPU ------------------------------------------------------------------------------------


def gpu_section(sizes: list[int]) -> dict[str, object]:
    if not torch.cuda.is_available():
        return {"available": False, "note": "no CUDA device on this machine: nothing measured"}
    import triton.testing

    from idf.kernels.ising import sweep_triton
    from idf.kernels.langevin import langevin_step_triton
    from idf.kernels.transport import transport_step_reference, transport_step_triton

    out: dict[str, object] = {"available": True, "device": torch.cuda.get_device_name(), "rows": []}
    for size in sizes:
        phi = torch.randn(1, size, size, device="cuda")
        copy_dst = torch.empty_like(phi)
        t_copy = triton.testing.do_bench(lambda: copy_dst.copy_(phi), return_mode="median")
        bytes_rw = 2 * phi.numel() * 4
        rows = {"size": size, "copy_ms": t_copy, "copy_GBps": bytes_rw / t_copy / 1e6}
        t = triton.testing.do_bench(
            lambda: langevin_step_triton(phi, MODEL, step_size=ETA, temperature=TEMPERATURE, key=7),
            return_mode="median",
        )
        noise = torch.randn_like(phi)
        eager = triton.testing.do_bench(
            lambda: langevin_step_reference(
                phi, MODEL, step_size=ETA, temperature=TEMPERATURE, noise=torch.randn_like(phi)
            ),
            return_mode="median",
        )
        comp_fn = torch.compile(
            lambda p: langevin_step_reference(
                p, MODEL, step_size=ETA, temperature=TEMPERATURE, noise=torch.randn_like(p)
            )
        )
        comp = triton.testing.do_bench(lambda: comp_fn(phi), return_mode="median")
        rows["langevin"] = {
            "ms": t,
            "GBps": bytes_rw / t / 1e6,
            "eager_ms": eager,
            "compile_ms": comp,
        }
        s = torch.ones(1, size, size, dtype=torch.int8, device="cuda")
        t = triton.testing.do_bench(
            lambda: sweep_triton(s, Ising(), 1 / ISING_T, "heat-bath", (1, 2)), return_mode="median"
        )
        rows["ising"] = {"ms": t, "GBps": 2 * s.numel() / t / 1e6}
        u = torch.rand(1, size, size, device="cuda")
        kw = dict(dt=0.1, spacing=(1.0, 1.0), diffusivity=0.3, velocity=(0.2, -0.1))
        t = triton.testing.do_bench(lambda: transport_step_triton(u, **kw), return_mode="median")
        eager = triton.testing.do_bench(
            lambda: transport_step_reference(u, **kw), return_mode="median"
        )
        rows["transport"] = {"ms": t, "GBps": bytes_rw / t / 1e6, "eager_ms": eager}
        del noise
        out["rows"].append(rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--no-thrml", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    seconds = 0.3 if args.quick else 2.0
    results: dict[str, object] = {
        "benchmark": "kernels",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "unit": "site updates per second (one step updates every site once)",
        "langevin_phi4_float32": [],
        "ising_heat_bath": [],
    }
    for size in args.sizes:
        sites = size * size
        row: dict[str, object] = {"L": size}
        row["ours"] = _rate(langevin_ours(size), sites, seconds)
        row["numpy"] = _rate(langevin_numpy(size), sites, seconds)
        row["torch_compile"] = _rate(langevin_compiled(size, False), sites, seconds)
        row["torch_compile_fallback_random"] = _rate(langevin_compiled(size, True), sites, seconds)
        results["langevin_phi4_float32"].append(row)
        print(json.dumps(row), flush=True)
    for size in args.sizes:
        sites = size * size
        row = {"L": size}
        row["ours"] = _rate(ising_ours(size), sites, seconds)
        row["numpy"] = _rate(ising_numpy(size), sites, seconds)
        row["torch_compile"] = _rate(ising_compiled(size), sites, seconds)
        if not args.no_thrml:
            sweeps = max(4, int(2e6 / sites))
            try:
                t0 = time.perf_counter()
                thrml_step = ising_thrml(size, sweeps)
                build = time.perf_counter() - t0
                rate = _rate(thrml_step, sites * sweeps, seconds)
                rate["graph_build_seconds"] = build
                rate["sweeps_per_call"] = sweeps
                row["thrml"] = rate
            except Exception as e:  # noqa: BLE001 - report, do not hide
                row["thrml"] = {"error": f"{type(e).__name__}: {e}"}
        results["ising_heat_bath"].append(row)
        print(json.dumps(row), flush=True)
    results["gpu"] = gpu_section(args.sizes)
    emit(results, args.out)


if __name__ == "__main__":
    main()
