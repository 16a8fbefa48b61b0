"""The learned NVP forecaster for 2-D Kolmogorov flow: a coarse solver with a learned correction
("solver in the loop", Um et al. 2020; Kochkov et al. 2021), run as a stochastic ensemble.

One forecast step (one frame, INTERVAL time units) from the last two frames ω₋₁, ω₀ at 64²:

    ω̃₁ = up(S_coarse(down(ω₀)))                          the product's solver at 32², INTERVAL time units
    ω₁ = ω̃₁ + s·U([ω₀, ω₋₁, ω̃₁]/s, ln(Re/60))            U: the compact U-Net of idf.engine.unet

with s the vorticity scale of the training data and down/up spectral resampling. The U-Net learns
what the half-resolution solver misses (the sub-grid scales and their effect on the resolved ones);
it is trained through multi-step rollouts with gradients through the coarse solver
(`idf.engine.training.nvp`).

Uncertainty: an ensemble of `members` runs, each adding band-limited Gaussian noise of rms
noise·s to the present state and after every step (a stochastic model-error term). The spread
grows with the flow's own instability; `noise` is calibrated on validation trajectories so that
spread matches the ensemble mean's error (spread-skill ratio 1), and stored in the checkpoint.
The forecast is the ensemble mean, its uncertainty the ensemble standard deviation per pixel.

The model knows one flow family: Kolmogorov forcing sin(4y), amplitude 1, drag 0.1, on [0, 2π)²
sampled at 64², frames INTERVAL = 0.5 time units apart, Reynolds numbers in RE_RANGE.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from idf.engine import checkpoints
from idf.engine.cost import LEARNED_WORK_WEIGHT, Cost
from idf.engine.errors import Cancelled, Diverged, ParameterError
from idf.engine.flows.navier_stokes import FlowSpec, Solver
from idf.engine.forecast.base import Forecast, ForecastRequest, spatial_total
from idf.engine.unet import UNet

FORMAT = "idf-nvp-forecaster/1"
SIDE = 64
INTERVAL = 0.5
HISTORY = 2
RE_RANGE = (35.0, 100.0)
COARSE_STEPS = 40  # coarse solver steps per frame: dt = 0.0125, CFL-safe over RE_RANGE
DEFAULT_MEMBERS = 16
# Members per uninterruptible U-Net pass: larger ensembles run in chunks with a stop check between
# them (64 members in one pass took 2.5 s on a loaded 2-core machine). Ensembles up to this size,
# the default included, run in one pass, so their results are unchanged.
NET_CHUNK = 16


def resample(w: torch.Tensor, side: int) -> torch.Tensor:
    """Spectral resampling of periodic fields (…, n, n) to (…, side, side); differentiable.
    Keeps the modes |k| < min(n, side)/2 (the smaller grid's Nyquist mode, ambiguous in sign,
    is dropped; the solver's 2/3 rule zeroes it anyway) and pads the rest with zeros."""
    n = w.shape[-1]
    if n == side:
        return w
    f = torch.fft.rfft2(w)
    h = min(n, side) // 2
    out = f.new_zeros((*w.shape[:-2], side, side // 2 + 1))
    out[..., :h, :h] = f[..., :h, :h]
    out[..., -(h - 1) :, :h] = f[..., -(h - 1) :, :h]
    return torch.fft.irfft2(out, s=(side, side)) * (side * side) / (n * n)


class NvpForecaster(torch.nn.Module):
    def __init__(
        self, net: UNet, scale: float, noise: float = 0.0, metadata: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.net, self.scale, self.noise = net, float(scale), float(noise)
        self.metadata = dict(metadata or {})
        spec = FlowSpec(resolution=SIDE // 2, reynolds=60.0, dt=INTERVAL / COARSE_STEPS)
        self.coarse = Solver(spec, dtype=torch.float32)

    def to(self, *args: Any, **kwargs: Any) -> NvpForecaster:  # the solver's operators move too
        out = super().to(*args, **kwargs)
        device = next(self.net.parameters()).device
        if device != self.coarse.device:
            self.coarse = Solver(self.coarse.spec, device=device, dtype=torch.float32)
        return out

    def forward(
        self,
        previous: torch.Tensor,
        present: torch.Tensor,
        reynolds: torch.Tensor,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> torch.Tensor:
        """The next frame (B, SIDE, SIDE) from two frames (B, SIDE, SIDE) and Reynolds numbers (B,).
        `should_stop` is checked at every coarse solver step (the solver raises Cancelled)."""
        coarse = self.coarse.advance(
            resample(present, SIDE // 2),
            COARSE_STEPS,
            frame_every=COARSE_STEPS,
            reynolds=reynolds,
            should_stop=should_stop,
        )[-1]
        guess = resample(coarse, SIDE)
        x = torch.stack([present, previous, guess], dim=1) / self.scale
        condition = torch.log(reynolds / 60.0)
        if x.shape[0] <= NET_CHUNK:
            return guess + self.scale * self.net(x, condition)[:, 0]
        parts = []
        for start in range(0, x.shape[0], NET_CHUNK):  # a stop is honoured between chunks
            if should_stop():
                raise Cancelled()
            parts.append(
                self.net(x[start : start + NET_CHUNK], condition[start : start + NET_CHUNK])[:, 0]
            )
        return guess + self.scale * torch.cat(parts)


def band_noise(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Gaussian fields of unit rms with the modes |k| < n/3 (what the solver keeps) equally weighted."""
    n = shape[-1]
    f = torch.fft.rfft2(torch.randn(shape, generator=generator))
    k = torch.fft.fftfreq(n, d=1.0 / n).abs()[:, None]
    kr = torch.fft.rfftfreq(n, d=1.0 / n)[None, :]
    keep = ((k < n / 3) & (kr < n / 3) & ((k + kr) > 0)).to(f.real.dtype)
    x = torch.fft.irfft2(f * keep, s=(n, n))
    return x / x.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt().clamp(min=1e-12)


NvpResult = Forecast  # the name this module's callers knew
MAX_MEMBERS = 64  # ensemble members per request: bounds one call's work and memory (estimate)


def check_request(history: np.ndarray, reynolds: float) -> None:
    """The model's own rules on top of the service's generic ones (finite, same shapes)."""
    if history.ndim != 3 or history.shape[0] < HISTORY:
        got = history.shape[0] if history.ndim == 3 else f"an array of {history.ndim} axes"
        raise ParameterError(
            "history", f"needs at least {HISTORY} frames {INTERVAL} time units apart, got {got}"
        )
    if history.shape[1:] != (SIDE, SIDE):
        raise ParameterError(
            "shape",
            f"the forecaster takes {SIDE}x{SIDE} vorticity frames, got {list(history.shape[1:])}",
        )
    if not (math.isfinite(reynolds) and RE_RANGE[0] <= reynolds <= RE_RANGE[1]):
        raise ParameterError(
            "reynolds",
            f"must be in [{RE_RANGE[0]:g}, {RE_RANGE[1]:g}] (the trained range), got {reynolds}",
        )
    if history.dtype.kind not in "biuf" or not np.all(np.isfinite(history[-HISTORY:])):
        raise ParameterError("history", "the last frames must be real and finite")


# Peak bytes of a forecast on the CPU path, measured by `python -m idf.engine.cost` (16 and 64
# members, 2 to 60 steps): the U-Net's activations and the coarse solver's spectra per member
# (about 5.4 MB a member at 64x64, float32), the per-step means and spreads (kept in lists, then
# stacked: four frame-sized float32 copies per step), and the allocator's growth (~30 MB).
BYTES_PER_MEMBER_SITE = 1536
BYTES_PER_STEP_SITE = 16
FIXED_BYTES = 48 << 20


def estimate(frames_shape: Sequence[int], steps: int, members: int = DEFAULT_MEMBERS) -> Cost:
    """The cost of `forecast` of `steps` frames by `members` members from history frames of
    `frames_shape` ((T, SIDE, SIDE); see idf.engine.cost). Work: steps x members x SIDE², what
    the forecast reports. Pure arithmetic that never raises."""
    sites = SIDE * SIDE  # the model's grid (check_request refuses any other)
    steps, members = max(0, int(steps)), max(1, int(members))
    return Cost(
        site_updates=steps * members * sites,
        state_bytes=sites * (members * BYTES_PER_MEMBER_SITE + steps * BYTES_PER_STEP_SITE)
        + FIXED_BYTES,
        weight=LEARNED_WORK_WEIGHT,
    )


@torch.no_grad()
def forecast(
    model: NvpForecaster,
    history: np.ndarray,
    steps: int,
    reynolds: float,
    *,
    members: int = DEFAULT_MEMBERS,
    seed: int = 0,
    noise: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Forecast:
    """Ensemble forecast of `steps` frames from the last HISTORY frames of `history` (T, SIDE, SIDE)."""
    check_request(history, reynolds)
    if steps < 1:
        raise ParameterError("steps", f"must be >= 1, got {steps}")
    if members < 1:
        raise ParameterError("ensemble_members", f"must be >= 1, got {members}")
    if noise is not None and not (math.isfinite(noise) and 0 <= noise <= 10):
        raise ParameterError("noise", f"must be finite and in [0, 10], got {noise}")
    if not 0 <= seed < 2**64:
        seed %= 2**64  # torch seeds are 64-bit; every seed in range keeps its stream
    t0 = time.perf_counter()
    eps = model.noise if noise is None else noise
    gen = torch.Generator().manual_seed(seed)
    dev = next(model.parameters()).device
    x = torch.as_tensor(history[-HISTORY:].astype(np.float32))
    previous, present = (
        x[0].expand(members, SIDE, SIDE).to(dev),
        x[1].expand(members, SIDE, SIDE).to(dev),
    )
    shape = (members, SIDE, SIDE)
    present = present + eps * model.scale * band_noise(shape, gen).to(dev)
    re = torch.full((members,), float(reynolds), device=dev)
    means, sds = [], []
    per_step = members * SIDE * SIDE
    for k in range(steps):
        if should_stop():
            raise Cancelled(k * per_step)
        try:
            nxt = model(previous, present, re, should_stop) + eps * model.scale * band_noise(
                shape, gen
            ).to(dev)
        except Cancelled:
            raise Cancelled(k * per_step) from None  # the step in progress is not counted
        except ParameterError as e:  # the coarse solver's CFL check: the flow is beyond the model
            raise Diverged(
                "history",
                f"the forecast left the model's range at step {k} ({e.reason}): the history's "
                f"vorticity is too strong for this model",
                step=k,
                site_updates=k * per_step,
            ) from None
        if not bool(torch.isfinite(nxt).all()):
            raise Diverged(
                "history",
                f"the forecast stopped being finite at step {k}: the history's vorticity is too "
                f"strong for this model",
                step=k,
                site_updates=k * per_step,
            )
        previous, present = present, nxt
        means.append(nxt.mean(0))
        sds.append(nxt.std(0) if members > 1 else torch.zeros_like(nxt[0]))
    frames = torch.stack(means).cpu().numpy().astype(history.dtype, copy=False)
    stddev = torch.stack(sds).cpu().numpy().astype(history.dtype, copy=False)
    totals = np.array([spatial_total(f, (2 * math.pi / SIDE,) * 2) for f in frames])
    return Forecast(
        frames=frames,
        stddev=stddev,
        frame_interval=INTERVAL,
        totals=totals,
        cfl=model.coarse.cfl(torch.fft.rfft2(resample(present, SIDE // 2))),
        site_updates=int(steps * members * SIDE * SIDE),
        compute_seconds=time.perf_counter() - t0,
    )


# checkpoints ------------------------------------------------------------------------------------
def save(
    model: NvpForecaster,
    path: Path,
    extra: dict[str, Any] | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
) -> None:
    meta = {
        "architecture": json.dumps(model.net.config),
        "scale": repr(model.scale),
        "noise": repr(model.noise),
        "info": json.dumps({**model.metadata, **(extra or {})}),
    }
    checkpoints.write(path, FORMAT, meta, model, tensors)


def load(
    path: Path, device: str | torch.device = "cpu"
) -> tuple[NvpForecaster, dict[str, torch.Tensor]]:
    meta = checkpoints.read_metadata(path, FORMAT)
    model = NvpForecaster(
        UNet(**json.loads(meta["architecture"])),
        float(meta["scale"]),
        float(meta["noise"]),
        json.loads(meta["info"]),
    )
    return model, checkpoints.load_into(path, model, device)


class Learned:
    """A shipped NVP checkpoint (idf.engine.models) behind the `Forecaster` protocol: the
    request's rules checked here, the model loaded (once per device) only to run."""

    learned = True
    outputs_per_step = 2  # the ensemble mean and its spread

    def __init__(self, name: str, load: Callable[[str, str], NvpForecaster]) -> None:
        self.name, self.load = (
            name,
            load,
        )  # load(name, device): the checkpoint, loaded once per device

    def _members(self, request: ForecastRequest) -> int:
        return request.members or DEFAULT_MEMBERS

    def check(self, request: ForecastRequest) -> None:
        members = self._members(request)
        if not 1 <= members <= MAX_MEMBERS:
            raise ParameterError(
                "ensemble_members",
                f"must be in 0..{MAX_MEMBERS} (0: {DEFAULT_MEMBERS}), got {members}",
            )
        if request.boundary != "periodic":
            raise ParameterError("boundary", f"{self.name} forecasts periodic flows")
        if request.reynolds is None:
            raise ParameterError(
                "reynolds",
                f"{self.name} needs the flow's Reynolds number ({RE_RANGE[0]:g} to {RE_RANGE[1]:g})",
            )
        if len({f.shape for f in request.history}) > 1:
            raise ParameterError("history", "every frame must have the same shape")
        check_request(
            np.stack(request.history) if request.history else np.zeros((0, SIDE, SIDE)),
            request.reynolds,
        )
        if request.steps < 1:
            raise ParameterError("steps", f"must be >= 1, got {request.steps}")

    def estimate(self, request: ForecastRequest) -> Cost:
        return estimate((len(request.history), SIDE, SIDE), request.steps, self._members(request))

    def run(
        self,
        request: ForecastRequest,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        device: str | torch.device | None = None,
    ) -> Forecast:
        self.check(request)
        model = self.load(self.name, str(torch.device(device or "cpu")))
        assert request.reynolds is not None  # checked
        return forecast(
            model,
            np.stack(request.history),
            request.steps,
            request.reynolds,
            members=self._members(request),
            seed=request.seed,
            should_stop=should_stop,
        )
