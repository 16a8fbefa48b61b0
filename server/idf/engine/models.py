"""The catalogue of models the engine can run (served by DiffusionService.ListModels)."""

from __future__ import annotations

from dataclasses import dataclass

from idf.engine.forecast import PHYSICS_MODEL


@dataclass(frozen=True)
class ModelInfo:
    name: str
    task: str  # "forecast" | "denoise" | "regime"
    description: str
    version: str
    learned: bool
    history_frames: int = 0


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
)


def find(name: str) -> ModelInfo | None:
    return next((m for m in CATALOGUE if m.name == name), None)
