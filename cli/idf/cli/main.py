"""The `idf` command. Client commands talk gRPC to `--server` (default: IDF_SERVER, else
localhost:50051); `idf serve` runs the server itself."""

from __future__ import annotations

import math
import os
import secrets
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from idf.cli.data import data_app, forecast, regime
from idf.cli.diffuse import diffuse
from idf.cli.keys import keys_app
from idf.cli.market import market_app
from idf.cli.output import INPUT_ERROR, console, emit, fail
from idf.cli.proof import proof_app, validate
from idf.cli.sample import sample
from idf.cli.shared import CREDENTIALS, JsonOpt, ServerOpt, TimeoutOpt, connected
from idf.cli.telemetry import telemetry_app
from idf.cli.train import train_app
from idf.client.formats import FormatError, load_energy_map

app = typer.Typer(
    help="Industriverse IDF: energy-based computation on physical fields, over gRPC.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _credentials(
    api_key: Annotated[
        Optional[str],
        typer.Option(
            "--api-key",
            help="API key (idf_...) sent with every call [default: IDF_API_KEY].",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        Optional[str],
        typer.Option(
            "--token", help="Bearer token (a JWT) [default: IDF_TOKEN].", show_default=False
        ),
    ] = None,
    config: Annotated[
        Optional[str],
        typer.Option(
            "--config",
            help="The project's config, for its [client] server and api_key "
            "[default: IDF_CONFIG, else ./idf.toml].",
            show_default=False,
        ),
    ] = None,
    tls_ca: Annotated[
        Optional[str],
        typer.Option(
            "--tls-ca",
            help="CA certificate (PEM) to trust: TLS [default: IDF_TLS_CA].",
            show_default=False,
        ),
    ] = None,
    tls_cert: Annotated[
        Optional[str],
        typer.Option(
            "--tls-cert",
            help="Client certificate (PEM) for mTLS [default: IDF_TLS_CERT].",
            show_default=False,
        ),
    ] = None,
    tls_key: Annotated[
        Optional[str],
        typer.Option(
            "--tls-key", help="Its private key (PEM) [default: IDF_TLS_KEY].", show_default=False
        ),
    ] = None,
) -> None:
    CREDENTIALS.clear()  # one invocation's options only (the CLI also runs in-process in tests)
    given = {
        "config": config,
        "api_key": api_key,
        "token": token,
        "tls_ca": tls_ca,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
    }
    CREDENTIALS.update({k: v for k, v in given.items() if v})


app.command()(validate)
app.command()(sample)
app.command()(diffuse)
app.add_typer(train_app, name="train")
app.add_typer(data_app, name="data")
app.command()(regime)
app.command()(forecast)
app.add_typer(proof_app, name="proof")
app.add_typer(market_app, name="market")
app.add_typer(keys_app, name="keys")
app.add_typer(telemetry_app, name="telemetry")


@app.command()
def serve(
    host: Annotated[
        Optional[str], typer.Option(help="Interface to listen on [default: 127.0.0.1].")
    ] = None,
    port: Annotated[
        Optional[int], typer.Option(help="TCP port; 0 picks a free one [default: 50051].")
    ] = None,
    rest_port: Annotated[
        Optional[int], typer.Option(help="Also serve REST/JSON on this port [default: off].")
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option(help="TOML config file (else IDF_CONFIG).")
    ] = None,
    log_format: Annotated[Optional[str], typer.Option(help="json or text.")] = None,
) -> None:
    """Run the gRPC server until SIGTERM/SIGINT (then shut down gracefully)."""
    try:
        import asyncio

        from idf.server.app import serve as run
        from idf.server.config import Settings
        from idf.server.logs import configure
    except ImportError as e:
        fail(
            f"the server needs the 'server' extra ({e.name} is missing): "
            "pip install 'industriverse-sdk[server]'"
        )
    try:
        settings = Settings.load(
            config, host=host, port=port, rest_port=rest_port, log_format=log_format
        )
    except (FileNotFoundError, ValueError) as e:
        fail(f"bad configuration: {e}")
    configure(settings.log_level, settings.log_format)
    try:
        asyncio.run(run(settings))
    except OSError as e:
        fail(f"cannot serve on {settings.host}:{settings.port}: {e}")


@app.command()
def health(server: ServerOpt = None, json_out: JsonOpt = False, timeout: TimeoutOpt = 5.0) -> None:
    """Ask the server whether it is serving (exit 0 only when SERVING)."""
    with connected(server, timeout, json_out) as client:
        status = client.health()
    emit({"server": client.target, "status": status}, json_out)
    if status != "SERVING":
        raise typer.Exit(1)


CONFIG_TEMPLATE = """\
# Industriverse IDF settings for this project: the server's (`idf serve --config idf.toml`) and,
# under [client], the `idf` CLI's (read from ./idf.toml, or the file --config or IDF_CONFIG names).
# Every server setting can also be given as an environment variable IDF_<NAME>; see docs/formats.md.
# This file holds the project's administrator credential: it is created readable by you only.
host = "127.0.0.1"
port = 50051
data_dir = ".idf"
log_format = "json"
max_message_bytes = 67108864
grace_period = 10.0
auth = "api-key"
admin_token = "{token}"

# A telemetry site: sensors stream readings into its live energy map (`idf telemetry publish`,
# `idf telemetry watch floor-1`; docs/streaming.md). With a site configured the server starts a
# private NATS server in data_dir, or uses nats_url = "nats://..." when set.
[[sites]]
id = "floor-1"
shape = [128, 128]
units = "J/m3"

[client]
server = "127.0.0.1:50051"
api_key = "{token}"
"""


def sample_energy_map(n: int = 128) -> np.ndarray:
    """A plant floor's thermal energy density (J/m3): two hot spots on a warm background."""
    y, x = np.mgrid[0:n, 0:n] / n
    hot = np.exp(-((x - 0.3) ** 2 + (y - 0.4) ** 2) / 0.005) + 0.6 * np.exp(
        -((x - 0.7) ** 2 + (y - 0.65) ** 2) / 0.01
    )
    return (1.0 + 4.0 * hot).astype(np.float32)


@app.command()
def init(
    name: Annotated[Path, typer.Argument(help="Folder to create.")],
    json_out: JsonOpt = False,
) -> None:
    """Create a project folder with a config file and a sample energy map."""
    if name.exists() and (not name.is_dir() or any(name.iterdir())):
        fail(f"{name} already exists and is not an empty folder", as_json=json_out)
    (name / "maps").mkdir(parents=True, exist_ok=True)
    config = name / "idf.toml"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it holds a credential
    with os.fdopen(fd, "w") as f:
        f.write(CONFIG_TEMPLATE.format(token=secrets.token_urlsafe(32)))
    np.save(name / "maps" / "energy_map.npy", sample_energy_map())
    emit(
        {
            "project": str(name),
            "config": str(name / "idf.toml"),
            "energy_map": str(name / "maps" / "energy_map.npy"),
            "next": f"idf predict --energy-map {name}/maps/energy_map.npy --steps 50 --out forecast.npy",
        },
        json_out,
        title="created",
    )


def _floats(text: str | None, option: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        fail(f"{option} takes comma-separated numbers, got {text!r}")


@app.command()
def predict(
    energy_map: Annotated[
        Path, typer.Option("--energy-map", help="Field to advance (.npy or .npz).")
    ],
    steps: Annotated[int, typer.Option(min=1, help="Number of future frames.")],
    out: Annotated[
        Path, typer.Option(help="Where to write the frames (.npy, shape (steps, ...)).")
    ],
    diffusivity: Annotated[
        float, typer.Option(min=0, help="kappa, spacing^2 per unit time.")
    ] = 0.1,
    velocity: Annotated[
        Optional[str], typer.Option(help="Advecting velocity, one value per axis: 'vy,vx'.")
    ] = None,
    dt: Annotated[float, typer.Option(min=0, help="Solver time step; 0 = largest stable.")] = 0.0,
    substeps: Annotated[int, typer.Option(min=1, help="Solver steps per returned frame.")] = 1,
    boundary: Annotated[
        Optional[str],
        typer.Option(
            help="periodic, zero-flux or fixed-value [default: from the file, else periodic]."
        ),
    ] = None,
    boundary_value: Annotated[
        Optional[float], typer.Option(help="Value outside the grid for fixed-value.")
    ] = None,
    spacing: Annotated[
        Optional[str],
        typer.Option(help="Grid spacing per axis: 'dy,dx' [default: from the file, else 1]."),
    ] = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
    timeout: TimeoutOpt = 300.0,
) -> None:
    """Forecast a field with the physics forecaster (conservative advection-diffusion)."""
    try:
        field, meta = load_energy_map(energy_map)
    except FormatError as e:
        fail(str(e), INPUT_ERROR, as_json=json_out)
    if out.suffix != ".npy":
        fail(f"--out must end in .npy, got {out}", as_json=json_out)
    if not out.parent.is_dir():
        fail(f"--out folder {out.parent} does not exist", as_json=json_out)
    parameters = dict(
        diffusivity=diffusivity,
        velocity=_floats(velocity, "--velocity"),
        dt=dt,
        substeps=substeps,
        spacing=_floats(spacing, "--spacing") or meta.spacing,
        boundary=boundary or meta.boundary,
        boundary_value=meta.boundary_value if boundary_value is None else boundary_value,
        units=meta.units,
    )
    # Ask for at most ~16 MiB of frames per call and continue from the last frame: the physics
    # forecaster is Markov, so chunked calls give the same frames as one call.
    chunk = max(1, min(steps, (16 << 20) // max(field.nbytes, 1)))
    frames: list[np.ndarray] = []
    totals: list[float] = []
    from rich.progress import Progress

    with (
        connected(server, timeout, json_out) as client,
        Progress(console=console, transient=True, disable=json_out or steps <= chunk) as bar,
    ):
        task = bar.add_task("forecasting", total=steps)
        present = field
        while len(frames) < steps:
            n = min(chunk, steps - len(frames))
            result = client.predict(present, n, **parameters)
            frames.extend(result.frames)
            totals.extend(result.totals.tolist())
            present = result.frames[-1]
            bar.advance(task, n)
    np.save(out, np.stack(frames))
    start_total = float(np.sum(field, dtype=np.float64) * math.prod(parameters["spacing"]))
    emit(
        {
            "out": str(out),
            "frames": steps,
            "shape": list(field.shape),
            "dtype": str(field.dtype),
            "model": result.model,
            "frame_interval": result.frame_interval,
            "cfl": result.cfl,
            "total_start": start_total,
            "total_end": totals[-1],
            "total_relative_change": (totals[-1] - start_total) / start_total
            if start_total
            else float("nan"),
        },
        json_out,
        title="forecast",
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
