"""`idf diffuse`: learned reverse diffusion over gRPC. The energy map is either the observations
(NaN marks unobserved sites, or give --mask) — the answer is the reconstruction's mean and
standard deviation — or an external field h(x) that guides generation (--as external-field)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from idf.cli.output import emit, fail
from idf.cli.shared import JsonOpt, ServerOpt, TimeoutOpt, connected
from idf.client import sample_request
from idf.client.formats import FormatError, load_energy_map
from idf.client.results import SampleResult

MODES = ("auto", "observations", "external-field")


def diffuse(
    energy_map: Annotated[
        Path,
        typer.Option(
            "--energy-map", help="Observations (NaN = unobserved) or external field (.npy/.npz)."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="Where to write the result (.npy): the mean, or the samples.")
    ],
    as_: Annotated[
        str,
        typer.Option(
            "--as",
            help="auto (observations when the map has NaN or --mask is given), observations, external-field.",
        ),
    ] = "auto",
    mask: Annotated[
        Optional[Path], typer.Option(help="Observation mask (.npy, non-zero = observed).")
    ] = None,
    noise_std: Annotated[
        float, typer.Option(min=0, help="Observation noise standard deviation.")
    ] = 0.0,
    samples: Annotated[
        int, typer.Option(min=0, help="Posterior samples / generated fields; 0: server default.")
    ] = 0,
    energy_model: Annotated[
        str, typer.Option(help="external-field: the energy model whose gradient guides.")
    ] = "gaussian-free-field",
    guidance_scale: Annotated[
        float, typer.Option(min=0, help="external-field: weight of the energy's gradient.")
    ] = 1.0,
    model: Annotated[
        str, typer.Option(help="Denoiser name (idf models); default: the shipped one.")
    ] = "",
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    png: Annotated[
        Optional[Path], typer.Option(help="Also write a PNG: mean | stddev, or the samples.")
    ] = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
    timeout: TimeoutOpt = 600.0,
) -> None:
    """Reconstruct a field from sparse observations, or generate fields guided by an external field."""
    if as_ not in MODES:
        fail(f"--as must be one of {list(MODES)}", as_json=json_out)
    if out.suffix != ".npy":
        fail(f"--out must end in .npy, got {out}", as_json=json_out)
    try:
        field, _ = load_energy_map(energy_map)
        observed_mask = np.load(mask) != 0 if mask is not None else np.isfinite(field)
    except (FormatError, OSError, ValueError) as e:
        fail(str(e), as_json=json_out)
    mode = (
        as_
        if as_ != "auto"
        else (
            "observations" if mask is not None or not np.isfinite(field).all() else "external-field"
        )
    )
    if observed_mask.shape != field.shape:
        fail(
            f"--mask shape {observed_mask.shape} differs from the map's {field.shape}",
            as_json=json_out,
        )
    from idf.cli.picture import write_png

    with connected(server, timeout, json_out) as c:
        if mode == "observations":
            answer = c.reconstruct(
                np.nan_to_num(field),
                observed_mask,
                noise_std=noise_std,
                sample_count=samples,
                seed=seed,
                model=model,
            )
            mean, std = answer.mean, answer.stddev
            np.save(out, mean)
            std_path = out.with_suffix(".stddev.npy")
            np.save(std_path, std)
            if png is not None:
                write_png(png, [mean, std], shared_scale=False)
            summary = {
                "mode": mode,
                "out": str(out),
                "stddev": str(std_path),
                "observed_sites": int(observed_mask.sum()),
                "mean_stddev": float(std[~observed_mask].mean()) if (~observed_mask).any() else 0.0,
                "site_updates": answer.usage.site_updates,
                "seconds": answer.usage.compute_seconds,
            }
        else:
            request = sample_request(
                energy_model,
                field.shape,
                sampler="reverse-diffusion",
                count=samples or 1,
                seed=seed,
                external_field=field.astype(np.float32),
                denoiser=model,
                guidance_scale=guidance_scale,
            )
            result = [e for e in c.sample(request) if isinstance(e, SampleResult)][0]
            fields = result.samples
            np.save(out, fields)
            if png is not None:
                write_png(png, fields)
            summary = {
                "mode": mode,
                "out": str(out),
                "samples": len(fields),
                "energy_per_site_mean": float(np.mean(result.energy_per_site)),
                "site_updates": result.usage.site_updates,
                "seconds": result.usage.compute_seconds,
            }
    summary["png"] = str(png) if png else None
    if json_out:
        print(json.dumps(summary))
    else:
        emit(summary, False, "diffuse")
