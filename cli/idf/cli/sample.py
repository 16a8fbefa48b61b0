"""`idf sample`: draw Boltzmann samples of an energy model, with a live progress bar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from idf.cli.output import console, emit, fail
from idf.cli.shared import JsonOpt, ServerOpt, TimeoutOpt, connected
from idf.client import sample_request
from idf.client.formats import FormatError, load_energy_map
from idf.client.results import SampleProgress

KINDS = (
    "langevin",
    "mala",
    "annealed-langevin",
    "replica-exchange",
    "gibbs",
    "reverse-diffusion",
    "default",
)


def sample(
    model: Annotated[
        str,
        typer.Option(
            help="Energy model: gaussian-free-field, phi4, ising, xy (ListEnergyModels lists them)."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="Where to write the samples (.npy, shape (count, ...)).")
    ],
    shape: Annotated[str, typer.Option(help="Lattice shape, e.g. 64,64.")] = "64,64",
    param: Annotated[
        Optional[list[str]], typer.Option(help="Model parameter NAME=VALUE (repeatable).")
    ] = None,
    sampler: Annotated[str, typer.Option(help=f"One of {', '.join(KINDS)}.")] = "default",
    temperature: Annotated[float, typer.Option(help="Target temperature T > 0.")] = 1.0,
    steps: Annotated[
        int,
        typer.Option(
            min=0, help="Sampler steps (sweeps for Gibbs); 0: 1000, or 32 for reverse-diffusion."
        ),
    ] = 0,
    burn_in: Annotated[
        int, typer.Option(min=0, help="Steps before diagnostics are collected.")
    ] = 0,
    step_size: Annotated[
        float, typer.Option(min=0, help="Langevin step size; 0 picks the default.")
    ] = 0.0,
    max_temperature: Annotated[
        float, typer.Option(help="Top of the annealing / tempering ladder.")
    ] = 0.0,
    count: Annotated[int, typer.Option(min=1, help="Independent chains / samples.")] = 1,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (same seed, same samples).")] = 0,
    external_field: Annotated[
        Optional[Path],
        typer.Option(
            "--energy-map", help="External field h(x) (.npy/.npz) of the lattice's shape."
        ),
    ] = None,
    denoiser: Annotated[
        str, typer.Option(help="reverse-diffusion: the learned model (default: the shipped one).")
    ] = "",
    guidance_scale: Annotated[
        float, typer.Option(min=0, help="reverse-diffusion: weight of the energy's gradient.")
    ] = 0.0,
    png: Annotated[
        Optional[Path], typer.Option(help="Also write a PNG picture of the (2-D) samples.")
    ] = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
    timeout: TimeoutOpt = 3600.0,
) -> None:
    """Sample fields from exp(-E/T) of an energy model."""
    if sampler not in KINDS:
        fail(f"--sampler must be one of {list(KINDS)}", as_json=json_out)
    try:
        dims = [int(n) for n in shape.split(",")]
        params = {k: float(v) for k, v in (p.split("=", 1) for p in param or [])}
    except ValueError:
        fail("--shape takes integers like 64,64 and --param NAME=VALUE numbers", as_json=json_out)
    field = None
    if external_field is not None:
        try:
            field = load_energy_map(external_field)[0]
        except FormatError as e:
            fail(str(e), as_json=json_out)
    request = sample_request(
        model,
        dims,
        parameters=params,
        sampler="" if sampler == "default" else sampler,
        temperature=temperature,
        steps=steps,
        burn_in=burn_in,
        step_size=step_size,
        max_temperature=max_temperature,
        count=count,
        seed=seed,
        external_field=field,
        denoiser=denoiser,
        guidance_scale=guidance_scale,
    )
    result = None
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("sampling"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} E={task.fields[energy]:.4g}"),
        TimeRemainingColumn(),
    )
    with (
        connected(server, timeout, json_out) as c,
        Progress(*columns, console=console, transient=True, disable=json_out) as bar,
    ):
        task = bar.add_task("sample", total=steps or None, energy=float("nan"))
        for event in c.sample(request):
            if isinstance(event, SampleProgress):
                bar.update(
                    task,
                    completed=event.step,
                    total=event.total_steps,
                    energy=event.mean_energy,
                )
            else:
                result = event
    assert result is not None
    fields = result.samples
    np.save(out, fields)
    if png is not None and fields.ndim == 3:
        from idf.cli.picture import write_png

        write_png(png, fields)
    summary = {
        "out": str(out),
        "png": str(png) if png else None,
        "samples": len(fields),
        "energy_per_site_mean": float(np.mean(result.energy_per_site)),
        "acceptance_rate": float(np.nanmean(result.acceptance_rate))
        if sampler in ("mala", "replica-exchange", "default") and model != "ising"
        else None,
        "effective_sample_size": result.effective_sample_size,
        "site_updates": result.usage.site_updates,
        "seconds": result.usage.compute_seconds,
    }
    if json_out:
        print(json.dumps(summary))
    else:
        emit(summary, False, "samples")
