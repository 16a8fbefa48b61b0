"""The RPC boundary every servicer method passes through: access logs with timing, ApiError ->
status with details, unexpected exceptions -> INTERNAL without leaking internals, and engine work
run on worker threads that stop when the call is cancelled or its deadline passes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc

from idf.server.errors import ApiError

log = logging.getLogger("idf.rpc")
T = TypeVar("T")


@contextlib.asynccontextmanager
async def _boundary(rpc: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
    start = time.perf_counter()
    code = grpc.StatusCode.OK
    log.debug("rpc start", extra={"rpc": rpc})
    try:
        yield
    except ApiError as e:
        code = e.code
        await context.abort(e.code, e.message, trailing_metadata=e.trailing_metadata())
    except asyncio.CancelledError:
        code = grpc.StatusCode.CANCELLED
        raise
    except Exception as e:  # noqa: BLE001 - the boundary must never leak a traceback
        if _is_abort(e):
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        code = grpc.StatusCode.INTERNAL
        log.exception("unhandled error", extra={"rpc": rpc})
        await context.abort(grpc.StatusCode.INTERNAL, "internal error; see server logs")
    finally:
        _access(rpc, code, start, context)


def unary(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Wrap a unary-response servicer coroutine (unary-unary or stream-unary)."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with _boundary(method.__qualname__, context):
            return await method(self, request, context)

    return wrapper


def streaming(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a server-streaming servicer async generator."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with _boundary(method.__qualname__, context):
            async for message in method(self, request, context):
                yield message

    return wrapper


def _is_abort(error: Exception) -> bool:
    # grpc.aio raises AbortError out of context.abort(); it must propagate untouched.
    return isinstance(error, grpc.aio.AbortError)


def _access(rpc: str, code: grpc.StatusCode, start: float, context: Any) -> None:
    log.info(
        "rpc",
        extra={
            "rpc": rpc,
            "code": code.name,
            "duration_ms": round((time.perf_counter() - start) * 1e3, 3),
            "peer": context.peer(),
        },
    )


async def run_blocking(executor: Executor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run short blocking work (a store call, a quick computation) on the worker pool."""
    return await asyncio.get_running_loop().run_in_executor(executor, functools.partial(fn, *args, **kwargs))


async def run_engine(executor: Executor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking engine work on the worker pool. `fn` must accept `should_stop`; it turns true
    when this call is cancelled (client cancel, deadline, shutdown past the grace period)."""
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(
        executor, functools.partial(fn, *args, should_stop=stop.is_set, **kwargs)
    )
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()
        raise
