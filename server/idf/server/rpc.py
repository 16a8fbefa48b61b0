"""The RPC boundary every call passes through.

`Guard`, a server interceptor, is the one point every RPC of every service (health and reflection
included) crosses: bytes that do not decode -> INVALID_ARGUMENT (gRPC alone answers UNKNOWN, and
logs nothing); string fields past their limits -> INVALID_ARGUMENT; the bytes of requests being
served at once bounded; every response (each message of a stream) checked against the message
size limit *before* it is encoded -> RESOURCE_EXHAUSTED naming the limit; an access log line per
call with its code and duration.

`unary` / `streaming` wrap servicer methods: ApiError -> status with details, unexpected
exceptions -> INTERNAL without leaking internals (a bug: it is logged with its traceback)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc

from idf.server import auth, limits, memory
from idf.server.admission import CLIENT_CN_HEADER, GATEWAY_HEADER
from idf.server.errors import ApiError, exhausted, invalid_argument, shutting_down, too_large
from idf.server.ratelimit import RateLimiter

log = logging.getLogger("idf.rpc")
T = TypeVar("T")
# answered while the server drains: probes must see NOT_SERVING, not a refusal
_ALWAYS_SERVED = ("grpc.health.v1.", "grpc.reflection.")


@contextlib.asynccontextmanager
async def _boundary(
    rpc: str, context: grpc.aio.ServicerContext, access: bool = False
) -> AsyncIterator[None]:
    start = time.perf_counter()
    code = grpc.StatusCode.OK
    if access:
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
            code = _code(context)
            raise
        code = grpc.StatusCode.INTERNAL
        log.exception("unhandled error", extra={"rpc": rpc})
        await context.abort(grpc.StatusCode.INTERNAL, "internal error; see server logs")
    finally:
        if access:
            _access(rpc, code, start, context)


def _code(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, int):  # grpc.aio may report the raw integer
        code = next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    return code or grpc.StatusCode.UNKNOWN


class Guard(grpc.aio.ServerInterceptor):
    """The checks every call passes, whatever its service (see the module docstring)."""

    def __init__(
        self,
        max_message_bytes: int,
        max_inflight_request_bytes: int,
        stream_deadline: float = 300.0,
        authority: auth.Authority | None = None,
        limiter: RateLimiter | None = None,
        gateway_secret: str = "",
    ) -> None:
        self.gateway_secret = gateway_secret  # vouches for the REST face's forwarded client CN
        self.authority = authority or auth.Authority("off", None)
        self.limiter = limiter if self.authority.mode != "off" else None  # principals to tell apart
        self.max_message_bytes = max_message_bytes
        self.max_inflight = max_inflight_request_bytes
        self.stream_deadline = stream_deadline
        self.inflight = 0
        self.since_collect = 0  # request bytes served since the last collect_and_trim
        # set when shutdown begins: new calls are refused UNAVAILABLE before they start (gRPC's
        # own stop() races them: a call arriving just then could be cancelled mid-way instead);
        # health and reflection still answer, so probes see NOT_SERVING
        self.closing = False

    async def intercept_service(
        self, continuation: Callable[..., Awaitable[Any]], details: Any
    ) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        rpc = details.method.lstrip("/") if details.method else "?"
        deserializer = handler.request_deserializer
        if deserializer is not None:
            cls = getattr(deserializer, "__self__", None)
            if cls is not None and hasattr(cls, "DESCRIPTOR"):
                deserializer = limits.deserializer(cls)
        if handler.unary_unary is not None:
            return handler._replace(
                request_deserializer=deserializer, unary_unary=self._unary(rpc, handler.unary_unary)
            )
        if handler.unary_stream is not None:
            return handler._replace(
                request_deserializer=deserializer,
                unary_stream=self._stream(rpc, handler.unary_stream),
            )
        if handler.stream_unary is not None:
            return handler._replace(
                request_deserializer=deserializer,
                stream_unary=self._unary(rpc, handler.stream_unary, streamed=True),
            )
        return handler._replace(
            request_deserializer=deserializer,
            stream_stream=self._stream(rpc, handler.stream_stream, streamed=True),
        )

    async def _checked(
        self, rpc: str, messages: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        """A client stream's messages, each checked as a unary request is (decodable, counts and
        string lengths); one at a time, so a call holds one message (bounded by the message
        size limit) while it is processed."""
        async for message in messages:
            self._admit(rpc, message, context, count=False)
            yield message

    def _admit(
        self, rpc: str, request: Any, context: grpc.aio.ServicerContext, *, count: bool = True
    ) -> int:
        """Checks on the decoded request; returns the bytes it holds (released by the caller)."""
        if isinstance(request, limits.Undecodable):
            log.warning(
                "undecodable request",
                extra={
                    "rpc": rpc,
                    "bytes": request.size,
                    "error": request.error,
                    "peer": context.peer(),
                },
            )
            raise invalid_argument(
                "request",
                f"the {request.size} bytes received are not a valid {request.message_type} "
                f"({request.error})",
                reason="UNDECODABLE_REQUEST",
            )
        size = request.ByteSize()
        self.since_collect += (
            size  # refused ones too: their aborted call's cycles hold them as long
        )
        limits.check_counts(request)
        limits.check_strings(request)
        if not count:  # a client stream's message: processed one at a time, not held
            return 0
        if self.inflight + size > self.max_inflight:
            raise exhausted(
                "SERVER_BUSY",
                f"the server is holding {self.inflight} bytes of requests (limit "
                f"{self.max_inflight}); retry shortly",
                retry_after=1.0,
            )
        self.inflight += size
        return size

    async def _authorize(self, rpc: str, context: grpc.aio.ServicerContext) -> None:
        """Who calls, and may they (idf.server.auth): the principal is bound for the servicer.
        A key not looked up recently is read from the store on a thread, off the event loop."""
        metadata = context.invocation_metadata()
        credential = self.authority.needs_lookup(metadata)
        if credential is not None:
            await asyncio.to_thread(self.authority.lookup, credential)
        principal = self.authority.check(rpc, metadata, context.peer(), self._tls_identity(context))
        auth.bind(principal, self.limiter, self.authority)
        if self.limiter is not None and rpc.startswith("idf.v1."):  # health, reflection: free
            self.limiter.admit_call(auth.rate_key(principal, context.peer()), principal.tenant)

    def _tls_identity(self, context: grpc.aio.ServicerContext) -> dict[str, list[bytes]]:
        """The call's verified client certificate: gRPC's own (mTLS on this port), or the one the
        REST face verified and forwarded with this process's gateway secret."""
        own = context.auth_context() or {}
        if own.get("x509_common_name") or not self.gateway_secret:
            return own
        md = dict(context.invocation_metadata() or ())
        cn = md.get(CLIENT_CN_HEADER)
        if cn and hmac.compare_digest(str(md.get(GATEWAY_HEADER, "")), self.gateway_secret):
            return {"x509_common_name": [str(cn).encode()]}
        return own

    def _check_size(self, response: Any) -> None:
        size = response.ByteSize()
        if size > self.max_message_bytes:
            raise too_large(
                "response",
                f"the answer would be {size} bytes, past the {self.max_message_bytes}-byte "
                "message limit; ask for fewer frames, samples or sites per call (or page through them)",
            )

    def _unary(
        self, rpc: str, inner: Callable[..., Awaitable[Any]], streamed: bool = False
    ) -> Callable[..., Awaitable[Any]]:
        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            size = 0
            async with _boundary(rpc, context, access=True):
                try:
                    if self.closing and not rpc.startswith(_ALWAYS_SERVED):
                        raise shutting_down()
                    await self._authorize(rpc, context)
                    if not streamed:
                        size = self._admit(rpc, request, context)
                    else:
                        request = self._checked(rpc, request, context)
                    response = await inner(request, context)
                    if response is not None:
                        self._check_size(response)
                    return response
                finally:
                    self._release(size)

        return behavior

    def _written(self, write: asyncio.Future, size: int) -> None:
        if not write.cancelled():
            write.exception()  # retrieved: a failed write of a call that already ended is no news
        self._release(size)

    def _release(self, size: int) -> None:
        self.inflight -= size
        # Counted over calls (in _admit), not per call: many smaller aborted requests held by reference
        # cycles add up too (the fuzz run: +35% RSS over 19k requests, none of 16 MiB, until a full collection).
        if self.since_collect >= memory.TRIM_AFTER_BYTES:
            self.since_collect = 0
            loop = asyncio.get_running_loop()
            loop.call_later(
                memory.TRIM_DELAY_S, loop.run_in_executor, None, memory.collect_and_trim
            )

    def _stream(
        self, rpc: str, inner: Callable[..., Any], streamed: bool = False
    ) -> Callable[..., Any]:
        """A server stream written with `context.write` under the server's deadline: a client that
        stops reading cannot hold the call (and the answer it is sitting on) past it."""

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> None:
            size = 0
            remaining = context.time_remaining()
            end = time.monotonic() + (
                self.stream_deadline if remaining is None else min(remaining, self.stream_deadline)
            )
            async with _boundary(rpc, context, access=True):
                responses = None
                try:
                    if self.closing and not rpc.startswith(_ALWAYS_SERVED):
                        raise shutting_down()
                    await self._authorize(rpc, context)
                    if not streamed:
                        size = self._admit(rpc, request, context)
                    result = inner(request, context)
                    if inspect.isawaitable(
                        result
                    ):  # a handler that writes with context.write itself (health Watch)
                        await result
                        return
                    responses = result
                    async for response in responses:
                        self._check_size(response)
                        # A client that stops reading leaves the write pending (gRPC holds the
                        # encoded message until the client reads, cancels or its connection ends,
                        # which max_connection_age bounds): its bytes count against
                        # max_inflight_request_bytes until then, so such streams cannot exhaust
                        # memory; past the deadline the call is answered DEADLINE_EXCEEDED.
                        held = response.ByteSize()
                        self.inflight += held
                        write = asyncio.ensure_future(context.write(response))
                        write.add_done_callback(lambda w, n=held: self._written(w, n))
                        done, _ = await asyncio.wait(
                            {write}, timeout=max(0.001, end - time.monotonic())
                        )
                        if not done:
                            raise ApiError(
                                grpc.StatusCode.DEADLINE_EXCEEDED,
                                "the client did not read the stream "
                                "before the server's deadline (default_deadline)",
                                reason="DEADLINE",
                            )
                        write.result()
                finally:
                    if responses is not None:
                        await (
                            responses.aclose()
                        )  # the servicer's clean-up runs now (its engine work stops)
                    self._release(size)

        return behavior


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
    return await asyncio.get_running_loop().run_in_executor(
        executor, functools.partial(fn, *args, **kwargs)
    )
