"""The catalogue of models the engine can run (served by DiffusionService.ListModels)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from idf.engine.forecast.physics import PHYSICS_MODEL

if TYPE_CHECKING:  # the loaders import these lazily
    from idf.engine.forecast.nvp import NvpForecaster
    from idf.engine.regimes.detector import Detector
    from idf.engine.sampling.denoiser import LearnedDenoiser

ARTIFACTS = Path(__file__).parent / "artifacts"
DEFAULT_DENOISER = "plume-32-edm"
DEFAULT_DETECTOR = "regime-kolmogorov"
NVP_FORECASTER = "nvp-kolmogorov-64"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    task: str  # "forecast" | "denoise" | "regime"
    description: str
    version: str
    learned: bool
    history_frames: int = 0
    checkpoint: str = ""  # file under ARTIFACTS for learned models


CATALOGUE: tuple[ModelInfo, ...] = (
    ModelInfo(
        name=PHYSICS_MODEL,
        task="forecast",
        description=(
            "Conservative finite-volume advection-diffusion solver (explicit Euler, upwind "
            "advection, central diffusion, CFL-checked). Validated against the analytic decay "
            "of sine modes; conserves the total of periodic and zero-flux fields to rounding."
        ),
        version="1",
        learned=False,
        history_frames=1,
    ),
    ModelInfo(
        name=NVP_FORECASTER,
        task="forecast",
        description=(
            "Learned forecaster for 2-D Kolmogorov flow vorticity (forcing sin(4y), drag 0.1) at 64x64, "
            "frames 0.5 time units apart, Reynolds 35-100 (PredictRequest.flow.reynolds): the solver at "
            "half resolution corrected by a U-Net trained with multi-step rollouts, run as a calibrated "
            "stochastic ensemble (mean and per-pixel stddev). Needs 2 history frames. Held-out scores: "
            "docs/benchmarks.md."
        ),
        version="1",
        learned=True,
        history_frames=2,
        checkpoint="nvp-kolmogorov-64.safetensors",
    ),
    ModelInfo(
        name=DEFAULT_DENOISER,
        task="denoise",
        description=(
            "Sensor-conditioned EDM denoiser (compact U-Net, circular padding) for 32x32 'plume' "
            "fields (exact advection-diffusion snapshots of 1-4 releases). Serves Reconstruct and "
            "Sample with SAMPLER_KIND_REVERSE_DIFFUSION. Held-out scores: docs/benchmarks.md."
        ),
        version="1",
        learned=True,
        checkpoint="plume-32-edm.safetensors",
    ),
    ModelInfo(
        name=DEFAULT_DETECTOR,
        task="regime",
        description=(
            "Regime detector for 2-D Kolmogorov flows: logistic regression on physical window "
            "features (relative time derivative, temporal spectra, recurrence, energy fluctuation, "
            "decorrelation). Labels steady / periodic / chaotic; undetermined below 40 time units "
            "of frames. Trained on simulated trajectories labelled by their dynamics (docs/regimes.md)."
        ),
        version="1",
        learned=True,
        history_frames=32,
        checkpoint="regime-kolmogorov.json",
    ),
)


def find(name: str) -> ModelInfo | None:
    return next((m for m in CATALOGUE if m.name == name), None)


def names(task: str) -> list[str]:
    return [m.name for m in CATALOGUE if m.task == task]


def denoisers() -> list[str]:
    return names("denoise")


def forecasters() -> list[str]:
    return names("forecast")


def detectors() -> list[str]:
    return names("regime")


def _artifact(name: str, task: str) -> Path:
    """The shipped file of learned model `name` of `task`; KeyError for any other name."""
    info = find(name)
    if info is None or info.task != task or not info.checkpoint:
        raise KeyError(name)
    return ARTIFACTS / info.checkpoint


# Loaders import their modules lazily: torch and safetensors load only when a learned model is used.
@functools.lru_cache(maxsize=8)
def load_denoiser(name: str, device: str = "cpu") -> LearnedDenoiser:
    """The shipped denoiser `name`, loaded once per device."""
    from idf.engine.sampling import denoiser

    return denoiser.load(_artifact(name, "denoise"), device=device)[0]


@functools.lru_cache(maxsize=4)
def load_detector(name: str) -> Detector:
    from idf.engine.regimes.detector import Detector

    return Detector.load(_artifact(name, "regime"))


@functools.lru_cache(maxsize=4)
def load_forecaster(name: str, device: str = "cpu") -> NvpForecaster:
    """The shipped learned forecaster `name`, loaded once per device."""
    from idf.engine.forecast import nvp

    return nvp.load(_artifact(name, "forecast"), device=device)[0]
