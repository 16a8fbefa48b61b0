"""The learned NVP forecaster: its pieces (spectral resampling, per-field Reynolds numbers in the
solver, exact frame intervals), deterministic resumable training, Predict with the shipped
checkpoint over a real server (skill on a held-out run, bad input), and `idf forecast`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from idf.cli.main import app
from idf.client import InvalidArgumentError
from idf.engine.errors import Cancelled
from idf.engine.flows.navier_stokes import FlowSpec, Solver, exact_interval_spec, random_vorticity
from idf.engine.forecast import nvp
from idf.engine.training import nvp as nvp_training
from idf.engine.unet import UNet

runner = CliRunner()
MODEL = "nvp-kolmogorov-64"


def test_spectral_resampling_is_exact_for_band_limited_fields():
    coarse = nvp.resample(random_vorticity(64, 3).float(), 32)  # band-limited at 32²
    back = nvp.resample(nvp.resample(coarse, 64), 32)
    assert torch.allclose(back, coarse, atol=1e-5)
    g = torch.arange(64) * (2 * math.pi / 64)
    wave = torch.sin(3 * g)[:, None] * torch.cos(2 * g)[None, :]
    assert torch.allclose(nvp.resample(wave, 32), wave[::2, ::2], atol=1e-5)


def test_per_field_reynolds_numbers_match_separate_solvers():
    w = torch.stack([random_vorticity(32, 1), random_vorticity(32, 2)])
    shared = Solver(FlowSpec(resolution=32, reynolds=60, dt=0.01))
    together = shared.advance(w, 20, frame_every=20, reynolds=torch.tensor([40.0, 90.0]))[-1]
    for i, re in enumerate((40.0, 90.0)):
        alone = Solver(FlowSpec(resolution=32, reynolds=re, dt=0.01)).advance(
            w[i], 20, frame_every=20
        )[-1]
        assert torch.allclose(together[i], alone, atol=1e-12)


def test_frames_land_exactly_one_interval_apart():
    spec, steps = exact_interval_spec(FlowSpec(resolution=64, reynolds=75), nvp.INTERVAL)
    assert steps * spec.dt == pytest.approx(nvp.INTERVAL, rel=1e-12)
    assert spec.dt <= FlowSpec(resolution=64, reynolds=75).time_step()


def test_gradients_flow_through_the_coarse_solver():
    model = nvp.NvpForecaster(UNet(in_channels=3, out_channels=1, width=8, multipliers=(1, 2)), 3.0)
    # the U-Net's head starts at zero, so at initialisation the only path from x to the output is the solver
    assert not any(p.abs().sum() for p in model.net.head[-1].parameters())
    x = random_vorticity(64, 4).float()[None].requires_grad_(True)
    model(x.detach(), x, torch.tensor([60.0])).pow(2).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


TINY = nvp_training.NvpConfig(
    steps=4,
    batch=2,
    rollout=2,
    one_step_fraction=0.5,
    width=8,
    multipliers=(1, 2),
    train_re=(60.0,),
    train_seeds=(0,),
    frames=8,
    spin_up=5.0,
    members=2,
    calibration_starts=1,
    calibration_horizon=3,
    checkpoint_every=2,
)


def test_training_is_deterministic_and_resumes_bit_for_bit(tmp_path: Path):
    whole = nvp_training.train(TINY, tmp_path / "whole.safetensors")
    part = tmp_path / "part.safetensors"
    with pytest.raises(Cancelled):
        nvp_training.train(
            TINY, part, should_stop=_after(3)
        )  # simulation check + 2 steps, then stop
    assert nvp.load(part)[1]["train.step"].item() == 2
    nvp_training.train(TINY, part)
    a, b = nvp.load(whole)[0].state_dict(), nvp.load(part)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    model = nvp.load(whole)[0]
    assert model.noise in nvp_training.NOISE_GRID and "calibration" in model.metadata


def _after(calls: int):  # noqa: ANN202
    count = iter(range(10**6))
    return lambda: next(count) >= calls


def test_held_out_splits_are_rejected_for_training():
    from idf.engine.errors import ParameterError

    with pytest.raises(ParameterError):
        nvp_training.train(nvp_training.NvpConfig(train_re=(50.0,)), Path("unused.safetensors"))


# the shipped checkpoint over a real server -----------------------------------------------------
@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    """Held-out run (Re 50, seed 100: never trained on), 2 history frames and 10 to forecast."""
    return nvp_training.trajectory(50.0, 100, 12)


def test_forecast_beats_persistence_and_half_resolution_on_a_held_out_run(client, held_out):
    answer = client.predict(list(held_out[:2]), 10, model=MODEL, reynolds=50.0, ensemble_members=8)
    assert answer.model == MODEL and answer.frame_interval == nvp.INTERVAL
    assert answer.frames.shape == answer.stddev.shape == (10, 64, 64) and np.all(answer.stddev > 0)
    ours, persistence, coarse = (
        nvp_training.score(predict, held_out, 1, 10)["nrmse"]
        for predict in (
            lambda h, n: (answer.frames, None),
            lambda h, n: (np.broadcast_to(h[-1], (n, *h[-1].shape)), None),
            lambda h, n: (nvp_training.half_resolution_forecast(h, n, 50.0), None),
        )
    )
    print(
        f"nRMSE h=1: nvp {ours[0]:.6f} persistence {persistence[0]:.6f} half-res {coarse[0]:.6f}; "
        f"h=10: {ours[-1]:.6f} {persistence[-1]:.6f} {coarse[-1]:.6f}; worst ratio to persistence "
        f"{np.max(ours / persistence):.5f}, to half-res {np.max(ours / coarse):.5f}"
    )
    # Measured on a 2-core AMD EPYC (AVX-512), torch 2.13.0+cpu, 2026-11-30: nvp nRMSE 0.012209 at
    # h=1 and 0.022942 at h=10; nvp / persistence at most 0.07449 (h=1), nvp / half-res at most
    # 0.32507 (h=10). Deterministic: two runs agreed to 10 digits; 1 vs 2 threads and torch/oneDNN
    # forced to AVX2 (a stand-in for another CPU) moved them < 1e-5 relative. Bounds: 1.3x each,
    # so float rounding across CPUs/BLAS cannot fail them but a > 30% worse checkpoint does.
    assert ours[0] < 1.3 * 0.012209 and ours[-1] < 1.3 * 0.022942
    assert np.max(ours / persistence) < 1.3 * 0.07449
    assert np.max(ours / coarse) < 1.3 * 0.32507
    # the documented claim (docs/benchmarks.md): beats both baselines; weaker than the bounds above
    assert np.all(ours < persistence) and ours[0] < coarse[0] and ours[-1] < coarse[-1]
    again = client.predict(list(held_out[:2]), 10, model=MODEL, reynolds=50.0, ensemble_members=8)
    assert np.array_equal(again.frames, answer.frames)  # same seed, same ensemble


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda h, kw: (h[-1:], kw), "history"),
        (lambda h, kw: (h[:, ::2, ::2], kw), "history[0].shape"),
        (
            lambda h, kw: (np.where(np.arange(2)[:, None, None] == 1, np.nan, h), kw),
            "history[1].data",
        ),
        (lambda h, kw: (h, {**kw, "reynolds": 200.0}), "flow.reynolds"),
        (lambda h, kw: (h, {k: v for k, v in kw.items() if k != "reynolds"}), "flow.reynolds"),
        (lambda h, kw: (h, {**kw, "ensemble_members": 65}), "ensemble_members"),
        (lambda h, kw: (h, {**kw, "boundary": "zero-flux"}), "history[0].boundary"),
    ],
    ids=[
        "one-frame",
        "32x32",
        "nan",
        "reynolds-out-of-range",
        "no-flow",
        "too-many-members",
        "not-periodic",
    ],
)
def test_bad_input_names_the_field(client, held_out, change, field):
    history, kw = change(held_out[:2], {"model": MODEL, "reynolds": 50.0})
    with pytest.raises(InvalidArgumentError) as info:
        client.predict(list(history), 3, **kw)
    assert info.value.violations[0].field == field, info.value


def test_mismatched_history_shapes(client, held_out):
    with pytest.raises(InvalidArgumentError) as info:
        client.predict([held_out[0], held_out[1][:32, :32]], 3, model=MODEL, reynolds=50.0)
    assert info.value.violations[0].field == "history[1]"


def test_generate_then_forecast_from_the_cli(server, tmp_path: Path):
    run = tmp_path / "run.h5"
    made = runner.invoke(
        app,
        [
            "data",
            "generate",
            "--out",
            str(run),
            "--re",
            "60",
            "--seed",
            "7",
            "--duration",
            "2",
            "--spin-up",
            "20",
            "--json",
        ],
    )
    assert made.exit_code == 0, made.output
    out = tmp_path / "forecast.npz"
    answer = runner.invoke(
        app,
        [
            "forecast",
            "--data",
            str(run),
            "--steps",
            "3",
            "--out",
            str(out),
            "--members",
            "4",
            "--server",
            server.target,
            "--json",
        ],
    )
    assert answer.exit_code == 0, answer.output
    assert json.loads(answer.output)["reynolds"] == 60.0
    with np.load(out) as f:
        assert f["mean"].shape == f["stddev"].shape == (3, 64, 64)


def test_train_nvp_cli_names_the_bad_option(tmp_path: Path):
    answer = runner.invoke(
        app,
        [
            "train",
            "nvp",
            "--out",
            str(tmp_path / "m.safetensors"),
            "--rollout",
            "5",
            "--frames",
            "4",
            "--json",
        ],
    )
    assert answer.exit_code != 0 and "--frames" in answer.output, answer.output
    answer = runner.invoke(app, ["train", "nvp", "--out", str(tmp_path / "m.txt"), "--json"])
    assert answer.exit_code != 0 and ".safetensors" in answer.output, answer.output
