"""What every servicer that runs engine work holds: settings, admission (the engine's workers,
queue and ceilings), metering and the engine's device — and the one path engine work takes:
cost check, reservation, admission, run under the deadline, settlement."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import grpc
import numpy as np

from idf.engine.errors import ParameterError
from idf.server.admission import Admission
from idf.server.config import Settings
from idf.server.errors import invalid_argument, too_large
from idf.server.metering import Metering, caller_account

T = TypeVar("T")
# protobuf framing per array in a response (tag, length, shape, dtype, ...): generous
_PER_ARRAY_OVERHEAD = 256
# The per-call work ceiling is in stencil site updates. A site update of a learned path (a U-Net
# evaluation per site) costs far more: measured on this project's 2-core CPU machine (while other runs
# loaded it; the ratio, not the speeds, is what is used), the physics
# stepper does ~6.5e7 site updates/s (256^2 x 4 frames x 2000 substeps in 8 s) and reconstruction
# ~1.5e5/s (32^2, 16 fields, 32 steps in 6.7 s): a ratio of ~430. Admission weighs learned work
# by this factor (billing still counts plain site updates).
LEARNED_WORK_WEIGHT = 430


class EngineBacked:
    def __init__(self, settings: Settings, admission: Admission, metering: Metering, light: Admission | None = None) -> None:
        self.settings = settings
        self.admission = admission
        self.light_admission = light or admission  # bounded light work (regime features)
        self.metering = metering
        self.device = settings.engine_device()

    def check_answer(self, arrays: int, array_bytes: int, field: str, what: str) -> None:
        """Refuse, before any work, a call whose answer (`arrays` arrays of `array_bytes` each)
        cannot fit in one message; the error says how many would fit."""
        limit = self.settings.max_message_bytes * 0.95
        each = array_bytes + _PER_ARRAY_OVERHEAD
        if arrays * each > limit:
            fit = int(limit // each)
            raise too_large(field, f"{arrays} {what} of {array_bytes} bytes exceed the {self.settings.max_message_bytes}-byte "
                                   f"response limit; ask for at most {fit} per call")

    async def metered(self, context: grpc.aio.ServicerContext, cost: tuple[int, int], used: Callable[[T], int],
                      fn: Callable[..., T], *args: Any, paths: Mapping[str, str] = {}, field: str = "request",
                      outputs: Callable[[T], Sequence[np.ndarray]] | None = None, rpc: str = "",
                      weight: int = 1, **kwargs: Any) -> tuple[T, int]:
        """Check `cost` = (site updates, state bytes) against the per-call ceilings, reserve its CEU
        for the caller, wait for a worker, run `fn` under the call's deadline, settle what
        `used(result)` says was done; nothing is charged when it fails. A ParameterError becomes
        INVALID_ARGUMENT on `paths[parameter]` (else the parameter's own name). `outputs(result)`
        are the arrays the answer returns: settlement records their digests as billed outputs
        (what proof rewards are paid against); `rpc` names the call in its reservation; `weight`
        scales site updates into stencil-equivalent work for the ceiling (LEARNED_WORK_WEIGHT).
        Returns (result, charged CEU)."""
        site_updates, state_bytes = cost
        self.admission.check_cost(site_updates * weight, state_bytes, field)
        account = caller_account(context)
        meter = await asyncio.to_thread(self.metering.reserve, account, site_updates, rpc)
        try:
            result = await self.admission.run(self.admission.caller(context), self.admission.deadline(context),
                                              fn, *args, **kwargs)
        except ParameterError as e:
            await asyncio.to_thread(self.metering.settle, meter, 0)
            raise invalid_argument(paths.get(e.parameter, e.parameter), e.reason) from None
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self.metering.settle, meter, 0))
            raise
        return result, await asyncio.to_thread(self.metering.settle, meter, used(result), outputs(result) if outputs else ())

    async def light(self, context: grpc.aio.ServicerContext, cost: tuple[int, int], field: str,
                    fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Bounded, unmetered light work (a regime decision) on the light pool; `fn` takes `should_stop`."""
        return await self.light_admission.call(context, cost, field, fn, *args, **kwargs)
