"""A compact U-Net for 2-D periodic fields, after NVlabs/edm's SongUNet/DhariwalUNet shape:
residual blocks with GroupNorm and SiLU, the noise level injected into every block, skip
connections between the levels. Convolutions pad circularly because the fields are periodic.

It is small on purpose (a few hundred thousand parameters): it trains on two CPU cores in minutes
on 32² fields. Width and depth are constructor arguments recorded in the checkpoint.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, padding_mode="circular")


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c // 4), c)


class NoiseEmbedding(nn.Module):
    """Sinusoidal embedding of c_noise (EDM: ln(σ)/4), then a two-layer MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(
            -math.log(10000.0)
            * torch.arange(half, dtype=c_noise.dtype, device=c_noise.device)
            / half
        )
        arg = c_noise[:, None] * freqs[None, :] * 100.0  # c_noise is O(1): spread it over the band
        return self.mlp(torch.cat([arg.cos(), arg.sin()], dim=1))


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), _conv(cin, cout)
        self.affine = nn.Linear(emb, 2 * cout)
        self.norm2, self.conv2 = _norm(cout), _conv(cout, cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(cast(torch.Tensor, self.conv2.bias))  # _conv has a bias

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm2(h) * (1 + scale) + shift)
        return self.skip(x) + self.conv2(h)


class UNet(nn.Module):
    """F(x_in, c_noise) for inputs of `in_channels` planes; side divisible by 2**(levels-1)."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        width: int = 32,
        multipliers: tuple[int, ...] = (1, 2, 2),
        emb: int = 128,
    ) -> None:
        super().__init__()
        multipliers = tuple(multipliers)  # a checkpoint's JSON gives a list
        self.config = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "width": width,
            "multipliers": list(multipliers),
            "emb": emb,
        }
        self.embed = NoiseEmbedding(emb)
        self.stem = _conv(in_channels, width)
        chans = [width * m for m in multipliers]
        self.down_blocks = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = width
        for i, ch in enumerate(chans):
            self.down_blocks.append(ResBlock(c, ch, emb))
            c = ch
            if i < len(chans) - 1:
                self.downsample.append(_conv(c, c, stride=2))
        self.middle = nn.ModuleList([ResBlock(c, c, emb), ResBlock(c, c, emb)])
        self.up_blocks = nn.ModuleList()
        for i, ch in reversed(list(enumerate(chans))):
            self.up_blocks.append(ResBlock(c + ch, ch, emb))
            c = ch
        self.head = nn.Sequential(_norm(c), nn.SiLU(), _conv(c, out_channels))
        out = cast(nn.Conv2d, self.head[-1])
        nn.init.zeros_(out.weight)
        nn.init.zeros_(cast(torch.Tensor, out.bias))

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        emb = self.embed(c_noise)
        h = self.stem(x)
        skips = []
        for i, block in enumerate(self.down_blocks):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        for block in self.middle:
            h = block(h, emb)
        for block in self.up_blocks:
            skip = skips.pop()
            if h.shape[-1] != skip.shape[-1]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), emb)
        return self.head(h)
