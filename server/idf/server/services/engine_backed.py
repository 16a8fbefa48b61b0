"""What every servicer that runs engine work holds: settings, admission (the engine's workers,
queue and ceilings), metering and the engine's device — and the one path engine work takes:
cost check, reservation, admission, run under the deadline, settlement."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import grpc
import numpy as np

from idf.engine.cost import Cost
from idf.engine.errors import ParameterError
from idf.server import auth
from idf.server.admission import Admission
from idf.server.config import Settings
from idf.server.errors import invalid_argument, too_large
from idf.server.metering import Metering, caller_account

T = TypeVar("T")
# protobuf framing per array in a response (tag, length, shape, dtype, ...): generous
_PER_ARRAY_OVERHEAD = 256


class EngineBacked:
    def __init__(
        self,
        settings: Settings,
        admission: Admission,
        metering: Metering,
        light: Admission | None = None,
    ) -> None:
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
            raise too_large(
                field,
                f"{arrays} {what} of {array_bytes} bytes exceed the {self.settings.max_message_bytes}-byte "
                f"response limit; ask for at most {fit} per call",
            )

    async def metered(
        self,
        context: grpc.aio.ServicerContext,
        cost: Cost,
        used: Callable[[T], int],
        fn: Callable[..., T],
        *args: Any,
        paths: Mapping[str, str] = {},
        field: str = "request",
        outputs: Callable[[T], Sequence[np.ndarray]] | None = None,
        rpc: str = "",
        **kwargs: Any,
    ) -> tuple[T, int]:
        """Check the engine's `cost` estimate (its stencil-equivalent work and state bytes) against
        the per-call ceilings, reserve the CEU of its site updates
        for the caller, wait for a worker, run `fn` under the call's deadline, settle what
        `used(result)` says was done; nothing is charged when it fails. A ParameterError becomes
        INVALID_ARGUMENT on `paths[parameter]` (else the parameter's own name). `outputs(result)`
        are the arrays the answer returns: settlement records their digests as billed outputs
        (what proof rewards are paid against); `rpc` names the call in its reservation.
        Returns (result, charged CEU)."""
        self.admission.check_cost(cost.work, cost.state_bytes, field)
        auth.admit_work(cost.work, context.peer())
        account = caller_account(context)
        meter = await asyncio.to_thread(self.metering.reserve, account, cost.site_updates, rpc)
        try:
            result = await self.admission.run(
                self.admission.caller(context),
                self.admission.deadline(context),
                fn,
                *args,
                **kwargs,
            )
        except ParameterError as e:
            await asyncio.to_thread(self.metering.settle, meter, 0)
            raise invalid_argument(paths.get(e.parameter, e.parameter), e.reason) from None
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self.metering.settle, meter, 0))
            raise
        return result, await asyncio.to_thread(
            self.metering.settle, meter, used(result), outputs(result) if outputs else ()
        )

    async def light(
        self,
        context: grpc.aio.ServicerContext,
        cost: tuple[int, int],
        field: str,
        fn: Callable[..., T],
        *args: Any,
        **kwargs: Any,
    ) -> T:
        """Bounded, unmetered light work (a regime decision) on the light pool; `fn` takes `should_stop`."""
        return await self.light_admission.call(context, cost, field, fn, *args, **kwargs)
