"""Denoisers D(x; σ | observations): the learned one (EDM preconditioning around the U-Net) and
the exact one of a Gaussian field, which the tests use to check the samplers against closed forms.

Learned (Karras et al. 2022, "Elucidating the design space…", table 1):
  D(x; σ) = c_skip(σ)·x + c_out(σ)·F([c_in(σ)·x, y·m/σ_data, m], c_noise(σ))
  c_skip = σ_d²/(σ² + σ_d²), c_out = σ·σ_d/√(σ² + σ_d²), c_in = 1/√(σ² + σ_d²), c_noise = ln(σ)/4
with y the observed values and m the observation mask (both zero when unconditioned): one network
is the unconditional prior and the sensor-conditioned posterior denoiser.

Checkpoints are safetensors files: the weights (EMA) plus metadata (architecture, σ_data, field
family, training command and step) as JSON strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from idf.engine import checkpoints
from idf.engine.unet import UNet

FORMAT = "idf-edm-denoiser/1"


class Denoiser(Protocol):
    sigma_data: float
    side: int

    def __call__(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor,
        values: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """E[x0 | x, σ (, observations)] for x of shape (B, 1, H, W) and σ of shape (B,)."""
        ...


class LearnedDenoiser(torch.nn.Module):
    def __init__(
        self, net: UNet, sigma_data: float, side: int, metadata: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.net = net
        self.sigma_data = float(sigma_data)
        self.side = int(side)
        self.metadata = dict(metadata or {})

    def forward(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor,
        values: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        sd = self.sigma_data
        s = sigma.to(x.dtype).reshape(-1, 1, 1, 1)
        c_skip = sd**2 / (s**2 + sd**2)
        c_out = s * sd / (s**2 + sd**2).sqrt()
        c_in = 1 / (s**2 + sd**2).sqrt()
        if mask is None:
            mask = torch.zeros_like(x)
            values = torch.zeros_like(x)
        elif values is None:
            raise ValueError("a mask needs the observed values")
        inputs = torch.cat([c_in * x, values * mask / sd, mask], dim=1)
        return c_skip * x + c_out * self.net(inputs, sigma.to(x.dtype).log() / 4)


def save(
    model: LearnedDenoiser,
    path: Path,
    extra: dict[str, Any] | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write the weights (and any `tensors`, such as optimizer state) with JSON metadata."""
    meta = {
        "architecture": json.dumps(model.net.config),
        "sigma_data": repr(model.sigma_data),
        "side": str(model.side),
        "info": json.dumps({**model.metadata, **(extra or {})}),
    }
    checkpoints.write(path, FORMAT, meta, model, tensors)


def read_metadata(path: Path) -> dict[str, Any]:
    return checkpoints.read_metadata(path, FORMAT)


def load(
    path: Path, device: str | torch.device = "cpu"
) -> tuple[LearnedDenoiser, dict[str, torch.Tensor]]:
    """The denoiser (eval mode) and the checkpoint's other tensors (optimizer state, RNG)."""
    meta = read_metadata(path)
    model = LearnedDenoiser(
        UNet(**json.loads(meta["architecture"])),
        float(meta["sigma_data"]),
        int(meta["side"]),
        json.loads(meta["info"]),
    )
    return model, checkpoints.load_into(path, model, device)


@dataclass
class GaussianDenoiser:
    """The exact posterior-mean denoiser of a stationary Gaussian field on a periodic grid with
    power spectrum `power[k]` (= ⟨|x̂_k|²⟩/N): D = F⁻¹[P_k/(P_k + σ²) · F x]. Unconditional only
    (observations enter through guidance)."""

    power: np.ndarray  # (H, W) spectrum
    sigma_data: float = 1.0

    @property
    def side(self) -> int:
        return int(self.power.shape[-1])

    def __call__(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor,
        values: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        p = torch.as_tensor(self.power, dtype=x.dtype, device=x.device)
        s2 = sigma.to(x.dtype).reshape(-1, 1, 1, 1) ** 2
        return torch.fft.ifft2(torch.fft.fft2(x) * (p / (p + s2))).real


def gff_power(side: int, kappa: float, mass2: float, temperature: float = 1.0) -> np.ndarray:
    """Spectrum of the lattice Gaussian free field E = Σ κ/2 |∇φ|² + m²/2 φ²: T / A_k with
    A_k = m² + κ Σ_a 2(1 − cos(2π k_a / L))."""
    k = 2 * np.pi * np.fft.fftfreq(side)
    lap = 2 * (1 - np.cos(k))[:, None] + 2 * (1 - np.cos(k))[None, :]
    return temperature / (mass2 + kappa * lap)
