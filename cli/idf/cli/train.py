"""`idf train …`: train learned models on this machine (needs the server extra: torch).

`idf train diffusion` runs `idf.engine.training.diffusion`, `idf train nvp` runs
`idf.engine.training.nvp`: progress bar, a checkpoint every --checkpoint-every steps, resumed
automatically when --out exists (same options), Ctrl-C saves and stops. The shipped checkpoints
are reproduced by the commands in docs/diffusion.md and docs/forecasting.md."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from idf.cli.output import console, emit, fail
from idf.cli.shared import needs_server_extra, writable_output

train_app = typer.Typer(help="Train learned models locally.", no_args_is_help=True)

# options every checkpointed trainer takes
CheckpointOut = Annotated[
    Path, typer.Option(help="Checkpoint file (.safetensors); resumed when it exists.")
]
SeedOpt = Annotated[int, typer.Option(min=0, help="Seed: same seed and options, same weights.")]
EveryOpt = Annotated[int, typer.Option(min=1, help="Steps between checkpoints.")]
ThreadsOpt = Annotated[int, typer.Option(min=0, help="CPU threads (0: torch's default).")]
FreshOpt = Annotated[bool, typer.Option(help="Start over even if --out exists.")]
JsonLinesOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON lines instead of a progress bar.")
]
StepsOpt = Annotated[int, typer.Option(min=1, help="Optimizer steps.")]
WidthOpt = Annotated[int, typer.Option(min=4, help="U-Net base channels.")]
RateOpt = Annotated[float, typer.Option(min=0, help="Adam learning rate.")]


def _run(
    train,
    config,
    out: Path,
    *,
    fresh: bool,
    command: str,
    steps: int,
    json_out: bool,  # noqa: ANN001
    report_every: int,
) -> None:
    """Run a trainer with a progress bar (or JSON lines), Ctrl-C saving and stopping, and its
    errors as CLI failures naming the option."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from idf.engine.errors import Cancelled, ParameterError

    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *a: stop.set())
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss={task.fields[loss]:.4g}"),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=True, disable=json_out) as bar:
            task = bar.add_task("training", total=None, loss=float("nan"))

            def report(p):  # noqa: ANN001 - TrainProgress or NvpProgress
                bar.update(
                    task,
                    description=getattr(p, "stage", "training"),
                    completed=p.step,
                    total=p.total,
                    loss=p.loss,
                )
                if json_out:
                    print(json.dumps(vars(p)), flush=True)

            train(
                config,
                out,
                resume=not fresh,
                command=command,
                progress=report,
                should_stop=stop.is_set,
                report_every=max(1, min(report_every, steps // 20)),
            )
    except ParameterError as e:
        fail(f"--{e.parameter.replace('_', '-')}: {e.reason}", as_json=json_out)
    except Cancelled as e:
        fail(str(e), 130, as_json=json_out)
    finally:
        signal.signal(signal.SIGINT, previous)


@train_app.command()
def diffusion(
    out: CheckpointOut,
    family: Annotated[str, typer.Option(help="Field family to learn.")] = "plume",
    side: Annotated[int, typer.Option(min=8, help="Field side in sites.")] = 32,
    steps: StepsOpt = 5000,
    batch: Annotated[int, typer.Option(min=1, help="Fields per step.")] = 32,
    width: WidthOpt = 16,
    learning_rate: RateOpt = 2e-3,
    seed: SeedOpt = 0,
    checkpoint_every: EveryOpt = 500,
    threads: ThreadsOpt = 0,
    fresh: FreshOpt = False,
    json_out: JsonLinesOpt = False,
) -> None:
    """Train the sensor-conditioned denoiser by denoising score matching."""
    writable_output(out, (".safetensors",), json_out)
    try:
        from idf.engine.training.diffusion import TrainConfig, train
    except ImportError as e:
        needs_server_extra(e, "training", json_out)
    config = TrainConfig(
        family=family,
        side=side,
        steps=steps,
        batch=batch,
        width=width,
        learning_rate=learning_rate,
        seed=seed,
        checkpoint_every=checkpoint_every,
        threads=threads,
    )
    command = (
        f"idf train diffusion --family {family} --side {side} --steps {steps} --batch {batch} --width {width} "
        f"--learning-rate {learning_rate} --seed {seed} --out {out.name}"
    )
    _run(
        train,
        config,
        out,
        fresh=fresh,
        command=command,
        steps=steps,
        json_out=json_out,
        report_every=50,
    )
    emit({"out": str(out), "steps": steps, "reproduce": command}, json_out, "trained")


@train_app.command()
def regime(
    out: Annotated[Path, typer.Option(help="Detector file to write (.json).")],
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a progress bar.")
    ] = False,
) -> None:
    """Simulate labelled Kolmogorov trajectories, fit the regime detector, report held-out accuracy."""
    writable_output(out, (".json",), json_out)
    try:
        from idf.engine.regimes import detector as regime_detector
    except ImportError as e:
        needs_server_extra(e, "training", json_out)
    from rich.progress import Progress

    with Progress(console=console, transient=True, disable=json_out) as bar:
        task = bar.add_task("simulating", total=None)
        report = regime_detector.train(
            out,
            command=f"idf train regime --out {out.name}",
            progress=lambda stage, i, n: bar.update(task, description=stage, completed=i, total=n),
        )
    emit(
        {
            "out": str(out),
            **{k: v for k, v in report.items() if k != "held_out_confusion"},
            "held_out_confusion": json.dumps(report["held_out_confusion"]),
        },
        json_out,
        "regime detector",
    )


@train_app.command()
def nvp(
    out: CheckpointOut,
    steps: StepsOpt = 2000,
    batch: Annotated[int, typer.Option(min=1, help="Forecasts per step.")] = 8,
    rollout: Annotated[
        int, typer.Option(min=1, help="Frames rolled out per forecast in the loss.")
    ] = 4,
    width: WidthOpt = 16,
    learning_rate: RateOpt = 1e-3,
    frames: Annotated[int, typer.Option(min=3, help="Frames per training trajectory.")] = 240,
    seed: SeedOpt = 0,
    checkpoint_every: EveryOpt = 100,
    threads: ThreadsOpt = 0,
    fresh: FreshOpt = False,
    json_out: JsonLinesOpt = False,
) -> None:
    """Simulate Kolmogorov flows, train the NVP forecaster with rollouts, calibrate its ensemble."""
    writable_output(out, (".safetensors",), json_out)
    try:
        from idf.engine.training.nvp import NvpConfig, train
    except ImportError as e:
        needs_server_extra(e, "training", json_out)
    config = NvpConfig(
        steps=steps,
        batch=batch,
        rollout=rollout,
        width=width,
        learning_rate=learning_rate,
        frames=frames,
        seed=seed,
        checkpoint_every=checkpoint_every,
        threads=threads,
    )
    command = (
        f"idf train nvp --steps {steps} --batch {batch} --rollout {rollout} --width {width} "
        f"--learning-rate {learning_rate} --frames {frames} --seed {seed} --out {out.name}"
    )
    _run(
        train,
        config,
        out,
        fresh=fresh,
        command=command,
        steps=steps,
        json_out=json_out,
        report_every=20,
    )
    emit({"out": str(out), "steps": steps, "reproduce": command}, json_out, "trained")
