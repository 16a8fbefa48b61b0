"""What every servicer that runs engine work holds: settings, the worker pool, metering and the
engine's device."""

from __future__ import annotations

from concurrent.futures import Executor

from idf.server.config import Settings
from idf.server.metering import Metering


class EngineBacked:
    def __init__(self, settings: Settings, executor: Executor, metering: Metering) -> None:
        self.settings = settings
        self.executor = executor
        self.metering = metering
        self.device = settings.engine_device()
