"""Denoising score matching for the learned denoiser (`idf train diffusion`).

EDM's objective (Karras et al. 2022): ln σ ~ N(P_mean, P_std²), loss weight
λ(σ) = (σ² + σ_d²)/(σ·σ_d)², loss λ·|D(x0 + σn; σ | y, m) − x0|². EDM tuned P_mean = −1.2 for data
of scale σ_d = 0.5; we keep the same σ/σ_d distribution: P_mean = −1.2 + ln(σ_d / 0.5).

Conditioning: with probability `unconditional_fraction` an example has no observations; otherwise
a uniformly random fraction in [min_observed, max_observed] of its sites is observed (exactly), so
one network serves unconditional generation and reconstruction from sparse sensors.

Deterministic given the seed: the weights start from `torch.manual_seed(seed)`, and step k's batch
(field seeds, masks, σ, noise) comes from generators seeded by (seed, k) alone, so a run resumed
from a checkpoint at step k continues exactly as the uninterrupted run would (a test checks it
bit for bit). Checkpoints are written atomically every `checkpoint_every` steps and at the end.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from idf.engine.checkpoints import deterministic, optimizer_step, optimizer_tensors, resume
from idf.engine.errors import Cancelled, ParameterError
from idf.engine.flows import fieldsets
from idf.engine.sampling import denoiser as dn
from idf.engine.unet import UNet

P_STD = 1.2


@dataclass(frozen=True)
class TrainConfig:
    family: str = fieldsets.PLUME
    side: int = 32
    steps: int = 5000
    batch: int = 32
    learning_rate: float = 2e-3
    warmup: int = 200
    ema_halflife: int = 500  # steps
    width: int = 16
    multipliers: tuple[int, ...] = (1, 2, 4)
    seed: int = 0
    min_observed: float = 0.01
    max_observed: float = 0.2
    unconditional_fraction: float = 0.2
    checkpoint_every: int = 500
    threads: int = 0  # 0: torch's default


@dataclass(frozen=True)
class TrainProgress:
    step: int
    total: int
    loss: float  # mean weighted loss since the previous report
    seconds: float


def sigma_data(family: str, side: int, seed: int) -> float:
    """RMS of 2048 training fields (what EDM's σ_data means), from the first training seeds."""
    rng = np.random.default_rng([seed, 2**32 - 1])
    x = fieldsets.generate(family, rng.integers(*fieldsets.TRAIN_SEEDS, size=2048), side)
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def batch(config: TrainConfig, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(fields, masks) of step `step`, shapes (B, 1, side, side), from (seed, step) alone."""
    rng = np.random.default_rng([config.seed, step])
    x = fieldsets.generate(
        config.family, rng.integers(*fieldsets.TRAIN_SEEDS, size=config.batch), config.side
    )
    masks = np.zeros_like(x, dtype=np.float32)
    for i in range(config.batch):
        if rng.random() >= config.unconditional_fraction:
            frac = rng.uniform(config.min_observed, config.max_observed)
            masks[i] = fieldsets.random_mask(rng, config.side, frac)
    return torch.from_numpy(x)[:, None], torch.from_numpy(masks)[:, None]


def _check(config: TrainConfig) -> None:
    if config.family not in fieldsets.FAMILIES:
        raise ParameterError(
            "family", f"unknown field family {config.family!r}; known: {fieldsets.FAMILIES}"
        )
    if config.side < 8 or config.side % 4:
        raise ParameterError("side", f"must be a multiple of 4 and >= 8, got {config.side}")
    for name in ("steps", "batch", "checkpoint_every", "width"):
        if getattr(config, name) < 1:
            raise ParameterError(name, f"must be >= 1, got {getattr(config, name)}")
    if not 0 <= config.min_observed <= config.max_observed <= 1:
        raise ParameterError("max_observed", "needs 0 <= min_observed <= max_observed <= 1")


def train(
    config: TrainConfig,
    out: Path,
    *,
    resume: bool = True,
    command: str = "",
    progress: Callable[[TrainProgress], None] = lambda p: None,
    should_stop: Callable[[], bool] = lambda: False,
    report_every: int = 50,
) -> Path:
    """Train (or resume) into `out`; returns `out`. Raises Cancelled after saving when stopped."""
    _check(config)
    deterministic(config.threads)
    out = Path(out)
    torch.manual_seed(config.seed)
    sd = sigma_data(config.family, config.side, config.seed)
    net = UNet(in_channels=3, out_channels=1, width=config.width, multipliers=config.multipliers)
    info = {"family": config.family, "config": asdict(config), "command": command}
    model = dn.LearnedDenoiser(net, sd, config.side, info)
    ema = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    start = 0
    if resume and out.exists():
        start = _restore(out, config, model, ema, opt)
    p_mean = -1.2 + math.log(sd / 0.5)
    decay = 0.5 ** (1 / config.ema_halflife)
    t0, losses = time.perf_counter(), []
    model.train()
    for step in range(start, config.steps):
        if should_stop():
            _save(out, ema, model, opt, step, config)
            raise Cancelled(
                message=f"training stopped at step {step}; resume with the same command"
            )
        x0, mask = batch(config, step)
        gen = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        sigma = (torch.randn(config.batch, generator=gen) * P_STD + p_mean).exp()
        noise = torch.randn(x0.shape, generator=gen)
        weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
        d = model(x0 + sigma.reshape(-1, 1, 1, 1) * noise, sigma, x0, mask)
        loss = (weight.reshape(-1, 1, 1, 1) * (d - x0) ** 2).mean()
        lr = config.learning_rate * min(1.0, (step + 1) / config.warmup)
        losses.append(optimizer_step(opt, loss, model, ema, lr, decay))
        done = step + 1
        if done % report_every == 0 or done == config.steps:
            progress(
                TrainProgress(done, config.steps, float(np.mean(losses)), time.perf_counter() - t0)
            )
            losses = []
        if done % config.checkpoint_every == 0 or done == config.steps:
            _save(out, ema, model, opt, done, config)
    if start >= config.steps:
        progress(TrainProgress(start, config.steps, float("nan"), 0.0))
    return out


def _save(
    out: Path,
    ema: dn.LearnedDenoiser,
    model: dn.LearnedDenoiser,
    opt: torch.optim.Adam,
    step: int,
    config: TrainConfig,
) -> None:
    dn.save(
        ema,
        out,
        extra={"step": step, "steps": config.steps},
        tensors=optimizer_tensors(opt, model, step),
    )


def _restore(
    out: Path,
    config: TrainConfig,
    model: dn.LearnedDenoiser,
    ema: dn.LearnedDenoiser,
    opt: torch.optim.Adam,
) -> int:
    return resume(out, config, *dn.load(out), model, ema, opt)
