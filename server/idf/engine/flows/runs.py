"""Generated flow runs on disk (`idf data generate`): HDF5 in the reference-data layout of
docs/formats.md, so `idf validate` and `load_reference_h5` read them directly.

    field            (T, n, n) float32  vorticity frames, attrs spacing (2π/n), boundary periodic, units "1/time"
    kinetic_energy   (T, n, n) float32  ½|u|² per cell, same attrs
    time             (T,)      float64
    root attrs       flow, reynolds, viscosity, drag, forcing_wavenumber, forcing_amplitude, dt,
                     frame_interval, seed, resolution, spin_up, generator
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from idf.engine.errors import ParameterError
from idf.engine.flows.navier_stokes import FlowSpec, Solver, random_vorticity

FLOWS = ("kolmogorov",)
GENERATOR = "idf.engine.flows.navier_stokes/1 (pseudo-spectral, 2/3 dealiasing, CN/AB2)"


def generate(
    spec: FlowSpec,
    seed: int,
    out: Path,
    *,
    duration: float = 100.0,
    frame_interval: float = 0.5,
    spin_up: float = 100.0,
    device: str = "cpu",
    progress: Callable[[float, float], None] = lambda t, n: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Path:
    import h5py

    if not (math.isfinite(duration) and duration > 0):
        raise ParameterError("duration", f"must be > 0, got {duration}")
    if not (math.isfinite(frame_interval) and frame_interval > 0):
        raise ParameterError("frame_interval", f"must be > 0, got {frame_interval}")
    if not (math.isfinite(spin_up) and spin_up >= 0):
        raise ParameterError("spin_up", f"must be >= 0, got {spin_up}")
    solver = Solver(spec, device=device)
    every = max(1, round(frame_interval / solver.dt))
    interval = every * solver.dt
    w = random_vorticity(spec.resolution, seed).to(solver.device)
    if spin_up:
        w = solver.evolve(w, spin_up, should_stop=should_stop)
    count = max(1, round(duration / interval))
    frames, energy = [], []
    chunk = max(1, min(count, 50))
    done = 0
    while done < count:
        k = min(chunk, count - done)
        part = solver.advance(w, k * every, frame_every=every, should_stop=should_stop)
        w = part[-1]
        frames.append(part.float().cpu().numpy())
        energy.append(solver.kinetic_energy_density(part).float().cpu().numpy())
        done += k
        progress(done * interval, count * interval)
    tmp = Path(str(out) + ".tmp")
    with h5py.File(tmp, "w") as f:
        for name, data, units in (
            ("field", np.concatenate(frames), "1/time"),
            ("kinetic_energy", np.concatenate(energy), "length^2/time^2"),
        ):
            node = f.create_dataset(name, data=data, compression="gzip", compression_opts=4)
            node.attrs["spacing"] = np.full(2, 2 * math.pi / spec.resolution)
            node.attrs["boundary"] = "periodic"
            node.attrs["boundary_value"] = 0.0
            node.attrs["units"] = units
        f.create_dataset(
            "time", data=spin_up + interval * np.arange(1, count + 1, dtype=np.float64)
        )
        f.attrs.update(
            {
                "flow": "kolmogorov",
                "reynolds": spec.reynolds,
                "viscosity": spec.viscosity,
                "drag": spec.drag,
                "forcing_wavenumber": spec.forcing_wavenumber,
                "forcing_amplitude": spec.forcing_amplitude,
                "dt": solver.dt,
                "frame_interval": interval,
                "seed": seed,
                "resolution": spec.resolution,
                "spin_up": spin_up,
                "generator": GENERATOR,
            }
        )
    tmp.replace(out)
    return out


def read(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """(vorticity frames, root attributes) of a generated run."""
    import h5py

    with h5py.File(path, "r") as f:
        return np.asarray(f["field"][()]), {
            k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()
        }
