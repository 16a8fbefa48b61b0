"""2-D Ising model on a periodic L_y x L_x lattice (both even), spins s = +-1 stored as int8:

    E(s) = -J sum_<ij> s_i s_j - sum_i h_i s_i,     M(s) = sum_i s_i

Checkerboard sweeps: the lattice is bipartite (colour (x + y) mod 2), so all sites of one colour
update at once given the other colour. Local field l_i = J sum_nn s_j + h_i; per site one uniform
u (Philox in-kernel, keyed by `step_seed(seed, step, colour)` and the site's flat index):
    heat-bath    s_i <- +1 if u < 1 / (1 + exp(-2 beta l_i)) else -1
    Metropolis   s_i <- -s_i if u < exp(-beta * 2 s_i l_i) else s_i
Both leave exp(-beta E) stationary. The colour-1 pass also reduces E and M of the swept state:
every bond has exactly one colour-1 end, and the colour-0 site left of each colour-1 site pairs
them one to one, so one pass over half the lattice covers every term.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from idf.kernels import _grid
from idf.kernels._grid import neighbours
from idf.kernels._triton import tl, triton, use_triton
from idf.kernels.random import cpu_generator, philox_uniform, step_seed

RULES = {"heat-bath": 0, "metropolis": 1}


@dataclass(frozen=True)
class Ising:
    J: float = 1.0
    h: float | torch.Tensor = 0.0  # a float or an (L_y, L_x) field


@dataclass(frozen=True)
class Sweep:
    spins: torch.Tensor  # int8 (B, L_y, L_x)
    energy: torch.Tensor  # float64 (B,), E of the swept state
    magnetisation: torch.Tensor  # float64 (B,), M of the swept state


def _check(s: torch.Tensor, rule: str) -> None:
    if s.ndim < 2 or s.shape[-1] % 2 or s.shape[-2] % 2:
        raise ValueError(
            f"checkerboard sweeps need an even periodic lattice, got shape {tuple(s.shape)}"
        )
    if s.dtype != torch.int8:
        raise TypeError("spins are int8 (+1/-1)")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {tuple(RULES)}, got {rule!r}")


def ising_energy(s: torch.Tensor, model: Ising) -> tuple[torch.Tensor, torch.Tensor]:
    """(E, M) per chain, float64, exact for integer J and h."""
    sf = s.to(torch.float64)
    bonds = sf * (torch.roll(sf, -1, -1) + torch.roll(sf, -1, -2))
    h = model.h.to(torch.float64) if isinstance(model.h, torch.Tensor) else model.h
    energy = -model.J * bonds.sum((-2, -1)) - (h * sf).sum((-2, -1))
    return energy, sf.sum((-2, -1))


def colour_mask(
    shape: Sequence[int], colour: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    y = torch.arange(shape[0], device=device).view(-1, 1)
    x = torch.arange(shape[1], device=device).view(1, -1)
    return (x + y) % 2 == colour


def update_reference(
    s: torch.Tensor, model: Ising, beta: float, colour: int, uniform: torch.Tensor, rule: str
) -> torch.Tensor:
    """Update the sites of one colour given uniforms for every site (other colours' unused)."""
    sf = s.to(torch.float32)
    nn = (
        torch.roll(sf, 1, -1)
        + torch.roll(sf, -1, -1)
        + torch.roll(sf, 1, -2)
        + torch.roll(sf, -1, -2)
    )
    h = model.h.to(torch.float32) if isinstance(model.h, torch.Tensor) else model.h
    local = model.J * nn + h
    if rule == "heat-bath":
        new = torch.where(uniform < 1 / (1 + torch.exp((-2 * beta) * local)), 1.0, -1.0)
    else:
        flip = uniform < torch.exp(-beta * (2 * sf * local))
        new = torch.where(flip, -sf, sf)
    return torch.where(colour_mask(s.shape[-2:], colour, s.device), new, sf).to(torch.int8)


def sweep_cpu(
    s: torch.Tensor, model: Ising, beta: float, rule: str, uniform: torch.Tensor
) -> Sweep:
    """The CPU path: the reference's arithmetic with fewer passes — neighbour sums in int8, one
    uniform per site per sweep (each site updates once per sweep, so one draw serves both colour
    passes), cached colour masks. Equal to `sweep_reference(..., (uniform, uniform))`."""
    _check(s, rule)
    h = model.h.to(torch.float32) if isinstance(model.h, torch.Tensor) else model.h
    for colour in (0, 1):
        nn = (
            torch.roll(s, 1, -1)
            + torch.roll(s, -1, -1)
            + torch.roll(s, 1, -2)
            + torch.roll(s, -1, -2)
        )
        local = model.J * nn.to(torch.float32) + h
        if rule == "heat-bath":
            new = torch.where(uniform < 1 / (1 + torch.exp((-2 * beta) * local)), 1, -1).to(
                torch.int8
            )
        else:
            flip = uniform < torch.exp(-beta * (2 * s.to(torch.float32) * local))
            new = torch.where(flip, -s, s)
        s = torch.where(_masks(tuple(s.shape[-2:]), s.device)[colour], new, s)
    return Sweep(s, *ising_energy(s, model))


@functools.lru_cache(maxsize=16)
def _masks(shape: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return colour_mask(shape, 0, device), colour_mask(shape, 1, device)


def sweep_reference(
    s: torch.Tensor,
    model: Ising,
    beta: float,
    rule: str,
    uniforms: tuple[torch.Tensor, torch.Tensor],
) -> Sweep:
    _check(s, rule)
    for colour in (0, 1):
        s = update_reference(s, model, beta, colour, uniforms[colour], rule)
    return Sweep(s, *ising_energy(s, model))


@triton.jit
def _ising_kernel(  # type: ignore[no-untyped-def]
    s_ptr,
    h_ptr,
    part_ptr,
    p_ptr,
    seed,
    LX,
    LY,
    NHALF,
    NBLOCKS,
    COLOUR: tl.constexpr,
    RULE: tl.constexpr,
    HAS_H: tl.constexpr,
    REDUCE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """p = [beta, J, h]; part has shape (2, B, NBLOCKS): partial E and M (colour-1 pass)."""
    pid = tl.program_id(0)
    chain = tl.program_id(1).to(tl.int64)
    base = chain * LX * LY
    k = pid * BLOCK + tl.arange(0, BLOCK)
    mask = k < NHALF
    half = LX // 2
    y = k // half
    x = 2 * (k % half) + (y + COLOUR) % 2
    idx = y * LX + x
    chain_ptr = s_ptr + base
    s = tl.load(chain_ptr + idx, mask=mask, other=1).to(tl.float32)
    left, right = neighbours(chain_ptr, idx, x, LX, 1, mask)
    up, down = neighbours(chain_ptr, idx, y, LY, LX, mask)
    left = left.to(tl.float32)
    nn = left + right.to(tl.float32) + up.to(tl.float32) + down.to(tl.float32)
    beta = tl.load(p_ptr)
    J = tl.load(p_ptr + 1)
    if HAS_H:
        h = tl.load(h_ptr + idx, mask=mask, other=0.0)
    else:
        h = tl.load(p_ptr + 2)
    local = J * nn + h
    u = tl.rand(seed, (base + idx).to(tl.int32))
    if RULE == 0:
        new = tl.where(u < 1 / (1 + tl.exp(-2 * beta * local)), 1.0, -1.0)
    else:
        new = tl.where(u < tl.exp(-beta * (2 * s * local)), -s, s)
    tl.store(chain_ptr + idx, new.to(tl.int8), mask=mask)
    if REDUCE:
        left_idx = tl.where(x > 0, idx - 1, idx + LX - 1)
        if HAS_H:
            h_left = tl.load(h_ptr + left_idx, mask=mask, other=0.0)
        else:
            h_left = h
        e = -J * new * nn - h * new - h_left * left
        m = new + left
        slot = chain * NBLOCKS + pid
        tl.store(part_ptr + slot, tl.sum(tl.where(mask, e, 0.0), axis=0))
        tl.store(
            part_ptr + tl.num_programs(1).to(tl.int64) * NBLOCKS + slot,
            tl.sum(tl.where(mask, m, 0.0), axis=0),
        )


def sweep_triton(
    s: torch.Tensor,
    model: Ising,
    beta: float,
    rule: str,
    keys: tuple[int, int],
    *,
    block: int = _grid.BLOCK,
) -> Sweep:
    """One checkerboard sweep in place on a copy of `s`, with in-kernel Philox uniforms."""
    _check(s, rule)
    batch, _, ly, lx = _grid.grid_dims(s.shape, 2)
    if (
        batch * lx * ly >= 2**31
    ):  # refused before the copy: a stride-0 view of 2^31 spins costs nothing
        raise ValueError("at most 2^31 spins per launch (32-bit Philox counters)")
    s = s.contiguous().clone()
    has_h = isinstance(model.h, torch.Tensor)
    p = torch.tensor(
        [beta, model.J, 0.0 if has_h else float(model.h)], dtype=torch.float32, device=s.device
    )
    h = model.h.to(torch.float32).contiguous() if has_h else p  # type: ignore[union-attr]
    nhalf = lx * ly // 2
    grid = _grid.launch_grid(nhalf, batch, block)
    part = torch.empty((2, batch, grid[0]), dtype=torch.float32, device=s.device)
    for colour in (0, 1):
        _ising_kernel[grid](
            s,
            h,
            part,
            p,
            keys[colour],
            lx,
            ly,
            nhalf,
            grid[0],
            COLOUR=colour,
            RULE=RULES[rule],
            HAS_H=has_h,
            REDUCE=colour == 1,
            BLOCK=block,
        )
    energy, magnetisation = part.sum(-1, dtype=torch.float64).reshape(2, *s.shape[:-2])
    return Sweep(s, energy, magnetisation)


def ising_sweep(
    s: torch.Tensor,
    model: Ising,
    *,
    temperature: float,
    rule: str = "heat-bath",
    seed: int,
    step: int,
) -> Sweep:
    """One checkerboard sweep of every chain in `s` (B, L_y, L_x) at temperature T (J, h in units
    of energy; k_B = 1)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    beta = 1.0 / temperature
    keys = (step_seed(seed, step, 0), step_seed(seed, step, 1))
    if use_triton(s):
        return sweep_triton(s, model, beta, rule, keys)
    uniform = torch.rand(s.shape, generator=cpu_generator(seed, step), dtype=torch.float32)
    return sweep_cpu(s, model, beta, rule, uniform)


def philox_uniforms(s: torch.Tensor, keys: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The uniforms `sweep_triton` draws for each colour, as tensors (for the reference)."""
    return tuple(philox_uniform(k, tuple(s.shape), device=s.device) for k in keys)  # type: ignore[return-value]
