"""PNG pictures of fields (Pillow): a perceptual colour map, one tile per field, a shared scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# anchor colours of matplotlib's viridis at 0, 0.25, 0.5, 0.75, 1 (linear in between)
_ANCHORS = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64
)


def colour(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """uint8 RGB image of a 2-D array on the scale [low, high] (NaN shows grey)."""
    t = np.clip((values - low) / (high - low if high > low else 1.0), 0, 1)
    pos = np.nan_to_num(t) * (len(_ANCHORS) - 1)
    i = np.minimum(pos.astype(int), len(_ANCHORS) - 2)
    f = (pos - i)[..., None]
    rgb = _ANCHORS[i] * (1 - f) + _ANCHORS[i + 1] * f
    rgb[np.isnan(values)] = 128
    return rgb.astype(np.uint8)


def write_png(
    path: Path,
    fields: np.ndarray | list[np.ndarray],
    *,
    scale: int = 0,
    per_row: int = 8,
    shared_scale: bool = True,
) -> Path:
    """Tile 2-D fields (a 2-D array, or a stack) into one PNG, each enlarged to about 256 pixels."""
    stack = [
        np.asarray(f, dtype=np.float64)
        for f in (
            fields
            if isinstance(fields, list)
            else np.asarray(fields).reshape(-1, *np.asarray(fields).shape[-2:])
        )
    ]
    if any(f.ndim != 2 for f in stack):
        raise ValueError("pictures are of 2-D fields")
    h, w = stack[0].shape
    scale = scale or max(1, 256 // max(h, w))
    finite = np.concatenate([f[np.isfinite(f)] for f in stack]) if shared_scale else None
    tiles = []
    for f in stack:
        vals = finite if finite is not None else f[np.isfinite(f)]
        low, high = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
        tiles.append(np.kron(colour(f, low, high), np.ones((scale, scale, 1), dtype=np.uint8)))
    rows = [tiles[i : i + per_row] for i in range(0, len(tiles), per_row)]
    pad = 4
    canvas = np.full(
        (
            len(rows) * (h * scale + pad) - pad,
            min(len(tiles), per_row) * (w * scale + pad) - pad,
            3,
        ),
        255,
        np.uint8,
    )
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            y, x = r * (h * scale + pad), c * (w * scale + pad)
            canvas[y : y + h * scale, x : x + w * scale] = tile
    Image.fromarray(canvas).save(path, format="PNG")
    return path
