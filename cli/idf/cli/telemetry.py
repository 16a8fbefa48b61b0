"""`idf telemetry publish|watch`: a load generator for a site, and a live view of its map."""

from __future__ import annotations

import json
import math
import secrets
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from idf.cli.output import INPUT_ERROR, console, emit, fail
from idf.cli.shared import JsonOpt, ServerOpt, TimeoutOpt, connected
from idf.client import Client, DeadlineExceededError, Reading
from idf.client.results import EnergyMap

telemetry_app = typer.Typer(
    help="Stream sensor readings into a site and watch its live energy map.",
    no_args_is_help=True,
)

SiteArg = Annotated[str, typer.Argument(help="The site's id (as configured in [[sites]]).")]


def _site(site: str) -> str:
    return site if site.startswith("sites/") else f"sites/{site}"


def sensor_cells(shape: tuple[int, ...], sensors: int, seed: int = 0) -> np.ndarray:
    """`sensors` distinct cells spread over the grid (a random choice without repeats; all
    cells when there are fewer cells than sensors)."""
    cells = int(np.prod(shape))
    chosen = np.random.default_rng(seed).permutation(cells)[: min(sensors, cells)]
    return np.stack(np.unravel_index(np.sort(chosen), shape), axis=1)


def synthetic_values(cells: np.ndarray, shape: tuple[int, ...], t: float) -> np.ndarray:
    """A warm spot circling the grid over a 20 s period plus 1% noise: something to watch."""
    centre = [(n - 1) / 2 + 0.3 * n * f(2 * math.pi * t / 20)
              for n, f in zip(shape, (math.cos, math.sin, math.cos))]  # fmt: skip
    scale = 0.2 * max(shape)
    d2 = sum(((cells[:, a] - centre[a]) / scale) ** 2 for a in range(len(shape)))
    return 300.0 + 20.0 * np.exp(-d2) + np.random.default_rng().normal(0, 0.2, len(cells))


def _readings(name: str, run: str, second: int, count: int, cells: np.ndarray,
              shape: tuple[int, ...]) -> list[Reading]:  # fmt: skip
    """`count` readings of the sensors in turn, ids unique to the run (`run-second-n`)."""
    out = []
    for k in range(0, count, len(cells)):
        now = time.time()
        values = synthetic_values(cells, shape, now)
        for j in range(min(len(cells), count - k)):
            out.append(Reading(
                name, f"s{j}", tuple(int(i) for i in cells[j]), float(values[j]), measured=now,
                unit="K", reading_id=f"{run}-{second}-{k + j}",
            ))  # fmt: skip
    return out


@telemetry_app.command()
def publish(
    site: Annotated[str, typer.Option("--site", help="The site's id.")],
    rate: Annotated[
        float, typer.Option(min=0, help="Readings per second in all (0: as fast as it goes).")
    ] = 1000.0,
    sensors: Annotated[int, typer.Option(min=1, help="Sensors, on distinct cells.")] = 64,
    duration: Annotated[float, typer.Option(min=0.1, help="Seconds to run.")] = 10.0,
    batch: Annotated[int, typer.Option(min=1, help="Readings per stream message.")] = 500,
    server: ServerOpt = None,
    timeout: TimeoutOpt = 60.0,
    json_out: JsonOpt = False,
) -> None:
    """Publish synthetic readings (a warm spot circling the site): RATE x DURATION of them, one
    Publish call per second, each reading with its own id; prints what was stored, the rate
    achieved and how soon the map held all of it."""
    name = _site(site)
    run = secrets.token_hex(4)
    totals = {"sent": 0, "accepted": 0, "rejected": 0, "duplicates": 0}
    reasons: Counter[str] = Counter()
    last = 0
    with connected(server, timeout, json_out) as c:
        shape = tuple(c.get_energy_map(f"{name}/energyMap").field.shape)
        cells = sensor_cells(shape, sensors)
        start = time.monotonic()
        progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.0f} s"),
            TimeElapsedColumn(), console=console, disable=json_out, transient=True,
        )  # fmt: skip
        with progress:
            task = progress.add_task(f"publishing to {name}", total=duration)
            # one call per second of the run: with a rate, RATE x DURATION readings in all,
            # paced (a slow server stretches the run, it does not shorten the load); without one,
            # as fast as it goes until the duration is over
            second = 0
            while second < math.ceil(duration) if rate > 0 else time.monotonic() - start < duration:
                span = min(1.0, duration - second)  # this call's share of the run
                count = max(1, round(rate * span)) if rate > 0 else 20_000
                batch_readings = _readings(name, run, second, count, cells, shape)
                result = c.publish(batch_readings, batch=batch)
                totals["sent"] += len(batch_readings)
                totals["accepted"] += result.accepted_count
                totals["rejected"] += result.rejected_count
                totals["duplicates"] += result.duplicate_count
                reasons.update(f"{r.field}: {r.reason}" for r in result.rejections)
                last = max(last, result.last_sequence)
                second += 1
                if rate > 0:  # pace: the next call starts on its second
                    time.sleep(max(0.0, second - (time.monotonic() - start)))
                progress.update(task, completed=min(duration, time.monotonic() - start))
            elapsed = time.monotonic() - start
        caught_up = None
        wait_start = time.monotonic()
        for m in c.watch_energy_map(f"{name}/energyMap"):
            if m.sequence >= last:
                caught_up = time.monotonic() - wait_start
                break
    summary: dict[str, object] = {
        "site": name,
        **totals,
        "seconds": round(elapsed, 3),
        "readings_per_s": round(totals["accepted"] / elapsed, 1) if elapsed else 0.0,
        "last_sequence": last,
        "map_caught_up_s": round(caught_up, 3) if caught_up is not None else None,
    }
    if reasons:
        summary["rejection_reasons"] = dict(reasons) if json_out else json.dumps(reasons)
    emit(summary, json_out, "published")


def _view(m: EnergyMap, rows: int = 24, cols: int = 48) -> Table:
    """The map as coloured blocks (block means of a 2-D map, or a 1-D map as one row), with its
    figures beside it."""
    from idf.cli.picture import colour

    field = np.asarray(m.field, dtype=np.float64)
    grid = field if field.ndim == 2 else field.reshape(1, -1) if field.ndim == 1 else field[0]
    ry, rx = max(1, math.ceil(grid.shape[0] / rows)), max(1, math.ceil(grid.shape[1] / cols))
    pad = np.full((math.ceil(grid.shape[0] / ry) * ry, math.ceil(grid.shape[1] / rx) * rx), np.nan)
    pad[: grid.shape[0], : grid.shape[1]] = grid
    with warnings.catch_warnings():  # a block without a reading is NaN (grey), not news
        warnings.simplefilter("ignore", RuntimeWarning)
        blocks = np.nanmean(
            pad.reshape(pad.shape[0] // ry, ry, pad.shape[1] // rx, rx), axis=(1, 3)
        )
    finite = blocks[np.isfinite(blocks)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    rgb = colour(blocks, low, high)
    picture = Text()
    for y in range(blocks.shape[0]):
        for x in range(blocks.shape[1]):
            r, g, b = rgb[y, x]
            picture.append("  ", style=f"on rgb({r},{g},{b})")
        picture.append("\n")
    table = Table.grid(padding=(0, 2))
    facts = Table.grid(padding=(0, 1))
    observed = field[np.isfinite(field)]
    for k, v in (
        ("map", m.name), ("sequence", m.sequence), ("readings", m.reading_count),
        ("observed cells", f"{m.observed_count} of {field.size}"),
        ("min / max", f"{observed.min():.4g} / {observed.max():.4g}" if observed.size else "-"),
        ("updated", m.update_time),
    ):  # fmt: skip
        facts.add_row(f"[bold]{k}[/]", str(v))
    table.add_row(picture, facts)
    return table


def _maps(c: Client, name: str, after: int, duration: float) -> Iterator[EnergyMap]:
    """The watch stream; with a duration, its deadline, whose end is the normal end."""
    try:
        yield from c.watch_energy_map(name, after_sequence=after, timeout=duration or None)
    except DeadlineExceededError:
        if not duration:
            raise


@telemetry_app.command()
def watch(
    site: SiteArg,
    count: Annotated[
        int, typer.Option(min=0, help="Stop after this many maps (0: until interrupted).")
    ] = 0,
    png: Annotated[
        Optional[Path], typer.Option(help="Also write each map as a PNG into this folder.")
    ] = None,
    after: Annotated[int, typer.Option(min=0, help="Resume after this sequence number.")] = 0,
    duration: Annotated[
        float, typer.Option(min=0, help="Stop after this many seconds (0: no limit).")
    ] = 0.0,
    server: ServerOpt = None,
    timeout: TimeoutOpt = 86400.0,
    json_out: JsonOpt = False,
) -> None:
    """Follow a site's live energy map: a colour view in the terminal (or one JSON line per
    map with --json), each map also a PNG with --png."""
    if png is not None and not png.is_dir():
        fail(f"--png folder {png} does not exist", INPUT_ERROR, as_json=json_out)
    name = f"{_site(site)}/energyMap"
    seen = 0
    with connected(server, timeout, json_out) as c:
        live = Live(console=console, auto_refresh=False) if not json_out else None
        try:
            if live is not None:
                live.start()
            for m in _maps(c, name, after, duration):
                seen += 1
                field = np.asarray(m.field, dtype=np.float64)
                if png is not None and field.ndim in (1, 2) and np.isfinite(field).any():
                    from idf.cli.picture import write_png

                    write_png(png / f"map-{m.sequence:012d}.png", np.atleast_2d(field))
                if json_out:
                    finite = field[np.isfinite(field)]
                    print(json.dumps({
                        "map": m.name, "sequence": m.sequence, "reading_count": m.reading_count,
                        "observed_count": m.observed_count, "update_time": m.update_time,
                        "min": float(finite.min()) if finite.size else None,
                        "max": float(finite.max()) if finite.size else None,
                    }), flush=True)  # fmt: skip
                elif live is not None:
                    live.update(_view(m), refresh=True)
                if count and seen >= count:
                    break
        except KeyboardInterrupt:
            pass
        finally:
            if live is not None:
                live.stop()
