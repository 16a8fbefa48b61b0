"""Seeded, reproducible randomness for the kernels.

On the GPU every random number comes from Philox-4x32-10 inside the kernel (`tl.randn` /
`tl.rand`), keyed by a per-step seed and counted by the global site index (chain * sites +
site): nothing is materialised, and the same (seed, step) gives the same numbers on every run.
`philox_normal` / `philox_uniform` write those very numbers into a tensor, so a torch reference
can be fed exactly what a kernel drew (the kernel tests do this).

On the CPU, the torch paths draw from torch's CPU generator seeded with the same per-step seed:
reproducible run to run, but not the same stream as the GPU.
"""

from __future__ import annotations

import math

import torch

from idf.kernels._triton import tl, triton

_MASK64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    """One SplitMix64 output (Steele, Lea & Flood 2014): a well-mixed 64-bit hash of x."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def step_seed(seed: int, *counters: int) -> int:
    """A per-step key derived from the user's seed and counters (step, colour, ...), below 2^63
    so Triton can take it as an int64."""
    x = splitmix64(seed & _MASK64)
    for c in counters:
        x = splitmix64(x ^ (c & _MASK64))
    return x & ((1 << 63) - 1)


def cpu_generator(seed: int, *counters: int) -> torch.Generator:
    return torch.Generator().manual_seed(step_seed(seed, *counters))


@triton.jit
def _philox_kernel(out_ptr, seed, n, NORMAL: tl.constexpr, BLOCK: tl.constexpr):  # type: ignore[no-untyped-def]
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    if NORMAL:
        tl.store(out_ptr + offs, tl.randn(seed, offs), mask=mask)
    else:
        tl.store(out_ptr + offs, tl.rand(seed, offs), mask=mask)


def _philox(
    seed: int, shape: tuple[int, ...], normal: bool, device: torch.device | str, block: int
) -> torch.Tensor:
    n = math.prod(shape)
    if n >= 2**31:  # refused before the output is allocated
        raise ValueError("Philox offsets are 32-bit: at most 2^31 numbers per step")
    out = torch.empty(shape, dtype=torch.float32, device=device)
    _philox_kernel[(triton.cdiv(n, block),)](out, seed, n, NORMAL=normal, BLOCK=block)
    return out


def philox_normal(
    seed: int, shape: tuple[int, ...], device: torch.device | str = "cuda", block: int = 1024
) -> torch.Tensor:
    """Standard normals exactly as kernels draw them: element i is tl.randn(seed, i)."""
    return _philox(seed, shape, True, device, block)


def philox_uniform(
    seed: int, shape: tuple[int, ...], device: torch.device | str = "cuda", block: int = 1024
) -> torch.Tensor:
    """Uniforms in [0, 1) exactly as kernels draw them: element i is tl.rand(seed, i)."""
    return _philox(seed, shape, False, device, block)
