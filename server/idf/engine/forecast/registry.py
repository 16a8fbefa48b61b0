"""Every forecaster `Predict` serves, by name: the physics forecaster, and each learned
forecaster of the model catalogue (idf.engine.models; every shipped one is an NVP checkpoint)."""

from __future__ import annotations

from idf.engine import models
from idf.engine.errors import ParameterError
from idf.engine.forecast import nvp
from idf.engine.forecast.base import Forecaster
from idf.engine.forecast.physics import Physics


def names() -> list[str]:
    return models.forecasters()


def get(name: str) -> Forecaster:
    """The forecaster `name` (nothing loaded yet); ParameterError("model") when there is none."""
    info = models.find(name)
    if info is None or info.task != "forecast":
        raise ParameterError("model", f"unknown forecaster {name!r}; available: {names()}")
    if not info.learned:
        return Physics()
    return nvp.Learned(name, models.load_forecaster)
