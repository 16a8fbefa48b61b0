"""What every servicer that runs engine work holds: settings, the worker pool, metering and the
engine's device."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc
import numpy as np

from idf.engine.errors import ParameterError
from idf.server.config import Settings
from idf.server.errors import invalid_argument
from idf.server.metering import Metering, caller_account
from idf.server.rpc import run_engine

T = TypeVar("T")


class EngineBacked:
    def __init__(self, settings: Settings, executor: Executor, metering: Metering) -> None:
        self.settings = settings
        self.executor = executor
        self.metering = metering
        self.device = settings.engine_device()

    async def metered(self, context: grpc.aio.ServicerContext, estimate: int, used: Callable[[T], int],
                      fn: Callable[..., T], *args: Any, paths: Mapping[str, str] = {},
                      outputs: Callable[[T], Sequence[np.ndarray]] | None = None, rpc: str = "", **kwargs: Any) -> tuple[T, int]:
        """Reserve `estimate` site updates of CEU for the caller, run `fn` on the worker pool, settle
        what `used(result)` says was done; nothing is charged when it fails. A ParameterError
        becomes INVALID_ARGUMENT on `paths[parameter]` (else the parameter's own name).
        `outputs(result)` are the arrays the answer returns: settlement records their digests as
        billed outputs (what proof rewards are paid against); `rpc` names the call in its reservation.
        Returns (result, charged CEU)."""
        meter = await asyncio.to_thread(self.metering.reserve, caller_account(context), estimate, rpc)
        try:
            result = await run_engine(self.executor, fn, *args, **kwargs)
        except ParameterError as e:
            await asyncio.to_thread(self.metering.settle, meter, 0)
            raise invalid_argument(paths.get(e.parameter, e.parameter), e.reason) from None
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self.metering.settle, meter, 0))
            raise
        return result, await asyncio.to_thread(self.metering.settle, meter, used(result), outputs(result) if outputs else ())
