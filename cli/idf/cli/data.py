"""`idf data generate`: simulate a flow locally and write it as HDF5 (docs/formats.md).
`idf regime`: ask the server which regime a run's frames are in; `idf forecast`: forecast its next frames."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from idf.cli.output import console, emit, fail
from idf.cli.shared import (
    JsonOpt,
    ServerOpt,
    TimeoutOpt,
    connected,
    needs_server_extra,
    writable_output,
)

data_app = typer.Typer(help="Generate simulated data.", no_args_is_help=True)


@data_app.command()
def generate(
    out: Annotated[Path, typer.Option(help="HDF5 file to write (.h5).")],
    flow: Annotated[str, typer.Option(help="Flow: kolmogorov.")] = "kolmogorov",
    re: Annotated[float, typer.Option("--re", help="Reynolds number sqrt(A)/nu.")] = 40.0,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the random initial vorticity.")] = 0,
    resolution: Annotated[int, typer.Option(min=8, help="Grid points per side.")] = 64,
    duration: Annotated[float, typer.Option(help="Time span of the frames written.")] = 100.0,
    frame_interval: Annotated[float, typer.Option(help="Time between frames.")] = 0.5,
    spin_up: Annotated[float, typer.Option(help="Time simulated before the first frame.")] = 100.0,
    drag: Annotated[float, typer.Option(help="Linear drag alpha.")] = 0.1,
    forcing_wavenumber: Annotated[int, typer.Option(help="n of the forcing sin(n y).")] = 4,
    dt: Annotated[
        float, typer.Option(help="Solver step; 0 picks one from the laminar velocity.")
    ] = 0.0,
    json_out: JsonOpt = False,
) -> None:
    """Simulate 2-D Kolmogorov flow (pseudo-spectral Navier-Stokes) and write vorticity and kinetic energy frames."""
    if flow != "kolmogorov":
        fail(f"--flow must be kolmogorov, got {flow!r}", as_json=json_out)
    writable_output(out, (".h5", ".hdf5"), json_out)
    try:
        from idf.engine.errors import ParameterError
        from idf.engine.flows import runs as flow_runs
        from idf.engine.flows.navier_stokes import FlowSpec
    except ImportError as e:
        needs_server_extra(e, "simulation", json_out)
    spec = FlowSpec(
        resolution=resolution, reynolds=re, drag=drag, forcing_wavenumber=forcing_wavenumber, dt=dt
    )
    from rich.progress import Progress

    try:
        with Progress(console=console, transient=True, disable=json_out) as bar:
            task = bar.add_task("simulating", total=duration)
            flow_runs.generate(
                spec,
                seed,
                out,
                duration=duration,
                frame_interval=frame_interval,
                spin_up=spin_up,
                progress=lambda t, n: bar.update(task, completed=t, total=n),
            )
    except ParameterError as e:
        fail(f"--{e.parameter.replace('_', '-')}: {e.reason}", as_json=json_out)
    frames, attrs = flow_runs.read(out)
    emit(
        {
            "out": str(out),
            "frames": len(frames),
            "resolution": resolution,
            "reynolds": re,
            "viscosity": attrs["viscosity"],
            "frame_interval": attrs["frame_interval"],
            "dt": attrs["dt"],
        },
        json_out,
        "generated",
    )


def regime(
    data: Annotated[
        Path,
        typer.Option(help="A run written by idf data generate (or any HDF5 'field' (T, n, n))."),
    ],
    frame_interval: Annotated[
        float, typer.Option(help="Time between frames; 0 reads the file's.")
    ] = 0.0,
    last: Annotated[int, typer.Option(min=0, help="Use the last N frames (0: all).")] = 0,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
    timeout: TimeoutOpt = 120.0,
) -> None:
    """Detect the flow regime (steady, periodic, chaotic) of a window of vorticity frames."""
    frames, _, times = _load_run(data, json_out)
    interval = frame_interval or (
        float(np.mean(np.diff(times))) if times is not None and len(times) > 1 else 0.0
    )
    if interval <= 0:
        fail("the file has no time axis: give --frame-interval", as_json=json_out)
    window = frames[-last:] if last else frames
    with connected(server, timeout, json_out) as c:
        answer = c.detect_regime(list(window), interval)
    emit(
        {
            "regime": answer.regime,
            **{f"p_{name}": p for name, p in answer.probabilities.items()},
            "frames_needed": answer.frames_needed,
            "model": answer.model,
            **answer.features,
        },
        json_out,
        "regime",
    )


def forecast(
    data: Annotated[
        Path,
        typer.Option(
            help="A 64x64 run written by idf data generate (or any HDF5 'field' (T, n, n))."
        ),
    ],
    steps: Annotated[int, typer.Option(min=1, help="Frames to forecast (0.5 time units apart).")],
    out: Annotated[
        Path, typer.Option(help="Where to write mean, stddev and frame_interval (.npz).")
    ],
    reynolds: Annotated[
        float, typer.Option(help="Reynolds number; 0 reads the file's 'reynolds' attribute.")
    ] = 0.0,
    model: Annotated[str, typer.Option(help="Learned flow forecaster.")] = "nvp-kolmogorov-64",
    members: Annotated[
        int, typer.Option(min=0, help="Ensemble members (0: the model's default).")
    ] = 0,
    seed: Annotated[int, typer.Option(min=0, help="Ensemble seed.")] = 0,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
    timeout: TimeoutOpt = 300.0,
) -> None:
    """Forecast a flow's next frames from its last ones with the learned NVP forecaster (mean and per-pixel stddev)."""
    writable_output(out, (".npz",), json_out)
    frames, meta, _ = _load_run(data, json_out)
    if not reynolds:
        import h5py

        with h5py.File(data, "r") as f:
            reynolds = float(f.attrs.get("reynolds", 0.0))
        if not reynolds:
            fail(f"{data} has no 'reynolds' attribute: give --reynolds", as_json=json_out)
    with connected(server, timeout, json_out) as c:
        answer = c.predict(
            list(frames[-2:]),
            steps,
            model=model,
            reynolds=reynolds,
            ensemble_members=members,
            seed=seed,
            spacing=meta.spacing,
        )
    np.savez(out, mean=answer.frames, stddev=answer.stddev, frame_interval=answer.frame_interval)
    emit(
        {
            "out": str(out),
            "frames": steps,
            "model": answer.model,
            "reynolds": reynolds,
            "frame_interval": answer.frame_interval,
            "mean_stddev_last": float(np.mean(answer.stddev[-1])),
            "charged_ceu": answer.usage.charged_ceu,
        },
        json_out,
        "forecast",
    )


def _load_run(data: Path, json_out: bool) -> tuple:
    """(frames (T, n, n), metadata, times or None) of an HDF5 run, or a CLI failure."""
    from idf.client.formats import FormatError, load_reference_h5

    try:
        frames, meta, times = load_reference_h5(data)
    except FormatError as e:
        fail(str(e), as_json=json_out)
    if frames.ndim != 3:
        fail(f"{data}: 'field' must be (time, n, n), got shape {frames.shape}", as_json=json_out)
    return frames, meta, times
