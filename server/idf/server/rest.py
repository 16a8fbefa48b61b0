"""REST transcoding: HTTP/JSON onto the same RPCs, after grpc-gateway's conventions.

Routes come from the `google.api.http` annotations of proto/idf/v1 (nothing is listed by hand):
path templates like `/v1/{name=proofs/*}` bind path variables to request fields, `body: "*"`
parses the JSON body into the request, query parameters fill the remaining fields of GET
requests (snake_case or lowerCamelCase names, dotted paths into nested messages; an unknown
parameter is an error). Each HTTP request becomes one gRPC call on a loopback channel to this
server — the same interceptors, validation and servicers as native gRPC, so both faces behave
identically.

Responses are proto3 JSON. Every error has the HTTP status grpc-gateway uses and a body that is
the `google.rpc.Status` in JSON (code, message, details: always an `ErrorInfo` with a stable
reason, field violations where a field is to blame). Server-streaming RPCs answer
`application/x-ndjson`: one `{"result": ...}` line per message, or a final `{"error": ...}` line;
a stream refused before its first message (within FIRST_MESSAGE_WAIT_S) answers that error with
its own HTTP status instead, as a unary call would.
A client-streaming RPC (Publish) takes its JSON body as the stream's one message. Headers forwarded as metadata: `authorization`,
`x-idf-account`; `x-idf-timeout` (seconds, finite, > 0, capped at MAX_TIMEOUT_S) sets the call's
deadline.

The face protects itself before any gRPC call is made (limits below, documented in docs/api.md):
a slow or idle client cannot hold a connection (request-head, body and keep-alive timeouts), the
number of connections is capped, a JSON body is capped below the gRPC message limit (proto3 JSON
costs several times its size in memory while parsed), and the bytes of all bodies being read and
parsed at once are capped (429 with Retry-After past it).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import re
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
import grpc.aio
from aiohttp import web, web_protocol
from google.api import annotations_pb2
from google.protobuf import any_pb2, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.rpc import error_details_pb2, status_pb2

from idf.server.admission import CLIENT_CN_HEADER, FORWARDED_HEADER, GATEWAY_HEADER
from idf.server.auth import contract_modules
from idf.server.errors import DOMAIN
from idf.server.tls import certificate_common_name
from idf.v1 import keys_pb2

log = logging.getLogger("idf.rest")
FIRST_MESSAGE_WAIT_S = 1.0  # a stream's first message is awaited this long before a 200 goes out
JWKS_PATH = "/.well-known/jwks.json"  # the service's token keys (with auth on)
TOKEN_PATH = "/oauth2/token"  # the OAuth2 client-credentials grant (with auth on)
WS_PROTOCOL = "idf.v1"  # the WebSocket subprotocol this face speaks
WS_BEARER = "bearer."  # a browser's credential, as a second subprotocol: bearer.<API key or JWT>
WS_HEARTBEAT_S = 30.0


def _websocket_bearer(protocols: str) -> tuple[tuple[str, str], ...]:
    """Browsers cannot set headers on a WebSocket: the credential may come as a subprotocol
    `bearer.<token>` (never in the URL, which logs and proxies keep)."""
    for entry in protocols.split(","):
        entry = entry.strip()
        if entry.startswith(WS_BEARER) and len(entry) > len(WS_BEARER):
            return (("authorization", f"Bearer {entry[len(WS_BEARER) :]}"),)
    return ()


FORWARDED = ("authorization", "x-idf-account")  # never the gateway headers: those are set here
MIB = 1024 * 1024

# --- limits of the REST face (module constants: read when the face starts) --------------------
# A connection may stay without a complete request head this long: from when it opens, and from
# the end of each response (keep-alive idle). aiohttp's keepalive_timeout is this timer: it runs
# from connect and between requests and closes the connection while no full head has arrived, so
# a client sending its headers one byte at a time is cut here just like an idle one.
IDLE_TIMEOUT_S = 15.0
# A request's body must arrive within this (aiohttp has no body timeout: reads wait forever).
BODY_TIMEOUT_S = 30.0
# After answering early (413, 404, ...) the unread rest of a body is drained this long, then the
# connection is closed (aiohttp's lingering_time; its default is 10 s).
LINGER_S = 2.0
# Connections held at once; past this a new connection gets 503 + Retry-After and is closed.
MAX_CONNECTIONS = 256
# Request line and each header line at most this many bytes, at most MAX_HEADERS headers
# (aiohttp's max_line_size / max_field_size / max_headers; these are its defaults, stated).
MAX_LINE_BYTES = 8190
MAX_HEADERS = 128
# Largest JSON body, as a fraction of the gRPC message limit: proto3 JSON costs about 7.5x its size
# in memory while parsed (text, the dict tree, base64 decoding, the message), so the REST face
# takes less than gRPC does. With the default 64 MiB gRPC limit: 32 MiB (a 2048x2048 float32
# Field is 22 MiB of base64).
MAX_BODY_FRACTION = 0.5
# All REST bodies being read and parsed at once, bytes; past this: 429 with Retry-After.
MAX_PARSING_BYTES = 64 * MIB
# A stream line the client does not take within this closes its connection (and the gRPC call).
WRITE_TIMEOUT_S = 30.0
# Longest deadline a caller may set with x-idf-timeout (longer values are cut to this; the
# server's own default_deadline still applies on top).
MAX_TIMEOUT_S = 3600.0
# Deepest nesting of arrays/objects in a JSON body (the messages of idf.v1 need fewer than 10).
MAX_JSON_DEPTH = 64
# Bodies larger than this are parsed (and big answers encoded) off the event loop.
OFFLOAD_BYTES = 1 * MIB

HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
_QUOTE_CHARS = 64


@dataclass(frozen=True)
class Route:
    verb: str
    pattern: re.Pattern[str]
    variables: tuple[str, ...]  # request field paths, in group order
    body: str
    method: MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"


def _template(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """`/v1/{pool=market/pools/*}:quote` -> a regex with one group per variable."""
    regex, variables, pos = "", [], 0
    for m in re.finditer(r"\{([^}=]+)(?:=([^}]*))?\}", template):
        regex += re.escape(template[pos : m.start()])
        segments = (m.group(2) or "*").split("/")
        regex += (
            "("
            + "/".join(
                "[^/:]+" if s == "*" else ".+" if s == "**" else re.escape(s) for s in segments
            )
            + ")"
        )
        variables.append(m.group(1))
        pos = m.end()
    regex += re.escape(template[pos:])
    return re.compile(f"^{regex}$"), tuple(variables)


def routes() -> list[Route]:
    out = []
    for module in contract_modules():
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                rule = method.GetOptions().Extensions[annotations_pb2.http]
                verb = rule.WhichOneof("pattern")
                if verb is None:
                    continue
                pattern, variables = _template(getattr(rule, verb))
                out.append(Route(verb.upper(), pattern, variables, rule.body, method))
    return out


# --- errors: always a google.rpc.Status with an ErrorInfo -------------------------------------


def _quote(value: str) -> str:
    text = repr(value)
    return text if len(text) <= _QUOTE_CHARS else f"{text[:_QUOTE_CHARS]}... ({len(value)} chars)"


class RestError(Exception):
    """An error answered by the REST face itself, before or instead of a gRPC call."""

    def __init__(
        self,
        http_status: int,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        *,
        violations: tuple[tuple[str, str], ...] = (),
        metadata: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status, self.code, self.reason, self.message = http_status, code, reason, message
        self.violations, self.metadata, self.retry_after = violations, metadata or {}, retry_after

    def status(self) -> status_pb2.Status:
        details = [
            error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata)
        ]
        if self.violations:
            details.append(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                        for f, d in self.violations
                    ]
                )
            )
        if self.retry_after is not None:
            retry = error_details_pb2.RetryInfo()
            retry.retry_delay.FromMilliseconds(int(self.retry_after * 1000))
            details.append(retry)
        return _status(self.code.value[0], self.message, details)

    def response(self) -> web.Response:
        headers = (
            {"Retry-After": str(math.ceil(self.retry_after))}
            if self.retry_after is not None
            else None
        )
        return web.json_response(
            json_format.MessageToDict(self.status()), status=self.http_status, headers=headers
        )


def _status(code: int, message: str, details: list[Any]) -> status_pb2.Status:
    packed = []
    for detail in details:
        any_ = any_pb2.Any()
        any_.Pack(detail)
        packed.append(any_)
    return status_pb2.Status(code=code, message=message, details=packed)


def invalid(name: str, description: str, reason: str = "INVALID_FIELD") -> RestError:
    return RestError(
        400,
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
        f"invalid {name}: {description}",
        violations=((name, description),),
    )


def _status_json(error: grpc.aio.AioRpcError) -> tuple[int, dict, dict[str, str]]:
    """A gRPC error as (HTTP status, Status JSON, headers): the details the server sent, plus an
    ErrorInfo (reason: the code's name) when it sent none (errors made by gRPC itself: deadline,
    message size, connection), and Retry-After from a RetryInfo."""
    status = status_pb2.Status(code=error.code().value[0], message=error.details() or "")
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            try:
                status = status_pb2.Status.FromString(value)
            except Exception:  # noqa: BLE001 - a broken detail must not hide the code
                pass
    headers = {}
    has_info = False
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            has_info = True
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            headers["Retry-After"] = str(
                max(1, math.ceil(retry.retry_delay.ToMilliseconds() / 1000))
            )
    if not has_info:
        status.details.add().Pack(
            error_details_pb2.ErrorInfo(reason=error.code().name, domain=DOMAIN)
        )
    code = _CODE_BY_NUMBER.get(status.code, error.code())
    return HTTP_STATUS.get(code, 500), json_format.MessageToDict(status), headers


# --- query parameters --------------------------------------------------------------------------


def _field_named(desc: Descriptor, name: str) -> FieldDescriptor | None:
    field = desc.fields_by_name.get(name)
    if field is None:
        field = next((f for f in desc.fields if f.json_name == name), None)
    return field


def _set_param(message: Any, key: str, value: str, bound: frozenset[str], seen: set[str]) -> None:
    """Set one query parameter (a dotted field path, snake_case or lowerCamelCase) on the request."""
    *parents, leaf = key.split(".")
    target = message
    path: list[str] = []
    for name in parents:
        field = _field_named(target.DESCRIPTOR, name)
        if field is None or field.message_type is None or field.is_repeated:
            raise invalid(key, f"unknown query parameter {_quote(key)}", "UNKNOWN_PARAMETER")
        path.append(field.name)
        target = getattr(target, field.name)
    field = _field_named(target.DESCRIPTOR, leaf)
    if field is None:
        raise invalid(key, f"unknown query parameter {_quote(key)}", "UNKNOWN_PARAMETER")
    full = ".".join([*path, field.name])
    if full in bound:
        return  # bound by the URL path, which wins (grpc-gateway skips these too)
    if field.message_type is not None:
        raise invalid(key, "is a message: set its fields (name.field=value)", "UNKNOWN_PARAMETER")
    oneof = field.containing_oneof
    if oneof is not None and target.WhichOneof(oneof.name) not in (None, field.name):
        raise invalid(key, f"only one member of {oneof.name} may be set", "DUPLICATE_ONEOF")
    if not field.is_repeated and full in seen:
        raise invalid(key, "given more than once", "DUPLICATE_PARAMETER")
    seen.add(full)
    _set_scalar(target, field, value, key)


def _set_scalar(message: Any, field: FieldDescriptor, value: str, name: str) -> None:
    try:
        if field.type == FieldDescriptor.TYPE_ENUM:
            enum = field.enum_type
            if value in enum.values_by_name:
                converted: Any = enum.values_by_name[value].number
            elif re.fullmatch(r"-?\d{1,10}", value):
                converted = int(value)
            else:
                raise ValueError(f"not a value of {enum.name}")
        elif field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            converted = float(value)
        elif field.type == FieldDescriptor.TYPE_BOOL:
            if value.lower() not in ("1", "0", "true", "false"):
                raise ValueError("not true or false")
            converted = value.lower() in ("1", "true")
        elif field.type == FieldDescriptor.TYPE_STRING:
            converted = value
        elif field.type == FieldDescriptor.TYPE_BYTES:
            converted = value.encode()
        else:
            if not re.fullmatch(r"-?\d{1,20}", value.strip()):
                raise ValueError("not an integer")
            converted = int(value)
        if field.is_repeated:
            getattr(message, field.name).append(converted)
        else:
            setattr(message, field.name, converted)
    except (ValueError, TypeError, OverflowError) as e:
        raise invalid(
            name, f"{_quote(value)} is not a valid {_type_name(field)} ({_first_line(e)})"
        ) from None


def _type_name(field: FieldDescriptor) -> str:
    if field.enum_type is not None:
        return field.enum_type.name
    return {
        FieldDescriptor.TYPE_DOUBLE: "double",
        FieldDescriptor.TYPE_FLOAT: "float",
        FieldDescriptor.TYPE_BOOL: "bool",
        FieldDescriptor.TYPE_INT32: "int32",
        FieldDescriptor.TYPE_INT64: "int64",
        FieldDescriptor.TYPE_UINT32: "uint32",
        FieldDescriptor.TYPE_UINT64: "uint64",
    }.get(field.type, "value")


def _first_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _set_path_variable(message: Any, path: str, value: str) -> None:
    *parents, leaf = path.split(".")
    for name in parents:
        message = getattr(message, name)
    _set_scalar(message, message.DESCRIPTOR.fields_by_name[leaf], value, path)


# --- the body ---------------------------------------------------------------------------------


class Budget:
    """Bytes of REST bodies being read and parsed at once (one event loop: no lock needed)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> None:
        if self.used + n > self.limit:
            raise RestError(
                429,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "SERVER_BUSY",
                f"the REST face is parsing {self.used} bytes of request bodies (limit {self.limit}); retry shortly",
                metadata={"limit_bytes": str(self.limit)},
                retry_after=1.0,
            )
        self.used += n

    def give(self, n: int) -> None:
        self.used -= n


def _too_large(limit: int, size: int | None) -> RestError:
    seen = f"{size} bytes" if size is not None else "more"
    return RestError(
        413,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "SIZE_LIMIT",
        f"request body too large: {seen}, the REST limit is {limit} bytes (send large fields over gRPC, "
        "or fewer/smaller fields per call)",
        violations=(("body", f"at most {limit} bytes"),),
        metadata={"limit_bytes": str(limit)},
    )


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _json_depth(body: bytes) -> int:
    """How deeply a JSON text nests arrays and objects (brackets inside strings not counted).
    Checked before parsing: deeply nested input must never reach the recursive parsers (Python's
    json raises RecursionError, and on CPython 3.11 that leaves the interpreter's recursion
    bookkeeping off, so a later compile() fails)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return 0  # cannot nest deeper than it has brackets
    import numpy as np

    text = np.frombuffer(_JSON_STRING.sub(b'""', body), dtype=np.uint8)
    steps = np.zeros(text.shape, dtype=np.int32)
    steps[(text == ord("[")) | (text == ord("{"))] = 1
    steps[(text == ord("]")) | (text == ord("}"))] = -1
    return int(np.cumsum(steps).max(initial=0))


def _trim() -> None:
    """Return freed heap to the OS after a large body (glibc keeps it otherwise), off the loop."""
    try:
        from idf.server import memory
    except ImportError:  # pragma: no cover - memory.py lands with the admission work
        return
    asyncio.get_running_loop().run_in_executor(None, memory.trim)


def _timeout(headers: Any) -> float | None:
    raw = headers.get("x-idf-timeout")
    if raw is None:
        return None
    rule = f"seconds: a finite number > 0 (at most {MAX_TIMEOUT_S:g} is used)"
    try:
        value = float(raw.strip())
    except ValueError:
        raise invalid(
            "x-idf-timeout", f"{_quote(raw)} is not a number of {rule}", "INVALID_HEADER"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise invalid("x-idf-timeout", f"{_quote(raw)} is not {rule}", "INVALID_HEADER")
    return min(value, MAX_TIMEOUT_S)


class Transcoder:
    def __init__(
        self,
        grpc_target: str,
        max_message_bytes: int,
        gateway_secret: str = "",
        jwks: dict[str, Any] | None = None,
    ) -> None:
        self.gateway_secret = (
            gateway_secret  # proves to admission that the forwarded address is ours
        )
        self.jwks = jwks  # the public keys of the service's own tokens (None: it issues none)
        self.routes = routes()
        self.channel = grpc.aio.insecure_channel(
            grpc_target,
            options=[
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes),
            ],
        )
        self.max_body = int(max_message_bytes * MAX_BODY_FRACTION)
        self.budget = Budget(max(MAX_PARSING_BYTES, self.max_body))
        self._bound = {route: frozenset(route.variables) for route in self.routes}

    def _match(self, verb: str, path: str) -> tuple[Route, tuple[str, ...]]:
        allowed = []
        for route in self.routes:
            if m := route.pattern.match(path):
                if route.verb == verb:
                    return route, m.groups()
                allowed.append(route.verb)
        if allowed:
            raise RestError(
                405,
                grpc.StatusCode.UNIMPLEMENTED,
                "METHOD_NOT_ALLOWED",
                f"{verb} is not allowed on this path; use {' or '.join(sorted(set(allowed)))}",
            )
        raise RestError(
            404, grpc.StatusCode.NOT_FOUND, "NO_ROUTE", f"no route for {verb} {_quote(path)}"
        )

    async def _body(self, http: web.BaseRequest) -> bytes:
        """The body, read within BODY_TIMEOUT_S and at most max_body bytes (its bytes stay counted
        in the budget until the caller gives them back)."""
        declared = http.content_length
        if declared is not None and declared > self.max_body:
            raise _too_large(self.max_body, declared)
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                async for chunk in http.content.iter_any():
                    if size + len(chunk) > self.max_body:
                        raise _too_large(self.max_body, None)
                    self.budget.take(len(chunk))
                    size += len(chunk)
                    chunks.append(chunk)
        except BaseException as e:
            self.budget.give(size)
            if isinstance(e, TimeoutError):
                raise RestError(
                    408,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    "BODY_TIMEOUT",
                    f"the request body did not arrive within {BODY_TIMEOUT_S:g} s",
                ) from None
            raise
        return b"".join(chunks)

    def _request(self, route: Route, values: tuple[str, ...], query: Any, body: bytes) -> Any:
        cls = message_factory.GetMessageClass(route.method.input_type)
        request = cls()
        if route.body == "*" and body.strip():
            if _json_depth(body) > MAX_JSON_DEPTH:
                raise invalid(
                    "body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels", "INVALID_JSON"
                )
            try:
                json_format.Parse(body, request, max_recursion_depth=32)
            except json_format.ParseError as e:
                raise invalid(
                    "body",
                    f"not a valid {route.method.input_type.full_name} in proto3 JSON: {_first_line(e)}",
                    "INVALID_JSON",
                ) from None
            except (
                RecursionError,
                UnicodeDecodeError,
                ValueError,
                TypeError,
                OverflowError,
                KeyError,
                AttributeError,
                IndexError,
            ) as e:
                log.warning(
                    "rest body rejected",
                    extra={"rpc": route.method.full_name, "error": repr(e)[:200]},
                )
                raise invalid(
                    "body", f"not valid proto3 JSON ({type(e).__name__})", "INVALID_JSON"
                ) from None
        elif route.body == "" and body.strip():
            raise invalid(
                "body",
                f"{route.verb} {route.method.name} takes no body: send its fields as query parameters",
                "UNEXPECTED_BODY",
            )
        bound, seen = self._bound[route], set()
        for key, value in query.items():
            if route.body == "*":
                raise invalid(
                    key,
                    f"unknown query parameter {_quote(key)}: this route takes its fields in the JSON body",
                    "UNKNOWN_PARAMETER",
                )
            _set_param(request, key, value, bound, seen)
        for path, value in zip(route.variables, values):
            _set_path_variable(request, path, value)
        return request

    async def handle(self, http: web.BaseRequest) -> web.StreamResponse:
        try:
            return await self._handle(http)
        except RestError as e:
            return e.response()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - never leak a traceback to the caller
            log.exception("rest handler failed", extra={"path": http.path[:200]})
            return RestError(
                500, grpc.StatusCode.INTERNAL, "INTERNAL", "internal error; see server logs"
            ).response()

    async def _handle(self, http: web.BaseRequest) -> web.StreamResponse:
        if self.jwks is not None and http.path == JWKS_PATH and http.method == "GET":
            return web.json_response(self.jwks, headers={"Cache-Control": "max-age=300"})
        if self.jwks is not None and http.path == TOKEN_PATH and http.method == "POST":
            return await self._token(http)
        route, values = self._match(http.method, http.path)
        method = route.method
        timeout = _timeout(http.headers)
        body = await self._body(http)
        size = len(body)
        try:
            if size > OFFLOAD_BYTES:
                request = await asyncio.to_thread(self._request, route, values, http.query, body)
            else:
                request = self._request(route, values, http.query, body)
        finally:
            self.budget.give(size)
            del body
            if size > OFFLOAD_BYTES:
                _trim()  # parsing took several times the body's size: give the pages back
        metadata = tuple((h, http.headers[h]) for h in FORWARDED if h in http.headers)
        websocket = (
            method.server_streaming and http.headers.get("Upgrade", "").lower() == "websocket"
        )
        if websocket and "authorization" not in http.headers:
            metadata += _websocket_bearer(http.headers.get("Sec-WebSocket-Protocol", ""))
        metadata += self._relayed(http)
        response_cls = message_factory.GetMessageClass(method.output_type)
        kw = dict(
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_cls.FromString,
        )
        if method.server_streaming:
            return await self._stream(
                http, self.channel.unary_stream(route.path, **kw), request, metadata, timeout,
                websocket=websocket,
            )  # fmt: skip
        try:
            if method.client_streaming:  # the body is the stream's one message
                reply = await self.channel.stream_unary(route.path, **kw)(
                    iter([request]), metadata=metadata, timeout=timeout
                )
            else:
                reply = await self.channel.unary_unary(route.path, **kw)(
                    request, metadata=metadata, timeout=timeout
                )
        except grpc.aio.AioRpcError as e:
            status, body_json, headers = _status_json(e)
            return web.json_response(body_json, status=status, headers=headers or None)
        if reply.ByteSize() > OFFLOAD_BYTES:
            text = await asyncio.to_thread(json_format.MessageToJson, reply, indent=None)
        else:
            text = json_format.MessageToJson(reply, indent=None)
        return web.Response(text=text, content_type="application/json")

    async def _stream(
        self, http: web.BaseRequest, call: Any, request: Any, metadata: Any, timeout: float | None,
        *, websocket: bool = False,
    ) -> web.StreamResponse:  # fmt: skip
        messages = call(request, metadata=metadata, timeout=timeout).__aiter__()
        nxt: asyncio.Future[Any] = asyncio.ensure_future(messages.__anext__())
        # A call refused before its first message (credentials, permissions, bad input) gets its
        # own HTTP status, as a unary call does; past FIRST_MESSAGE_WAIT_S the 200 stream starts.
        try:
            await asyncio.wait({nxt}, timeout=FIRST_MESSAGE_WAIT_S)
        except asyncio.CancelledError:
            nxt.cancel()
            raise
        if nxt.done() and isinstance(nxt.exception(), grpc.aio.AioRpcError):
            status, body_json, headers = _status_json(nxt.exception())  # type: ignore[arg-type]
            return web.json_response(body_json, status=status, headers=headers or None)
        if websocket:
            return await self._websocket(http, messages, nxt)
        out = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        try:
            await out.prepare(http)
        except BaseException:
            nxt.cancel()
            raise
        try:
            while True:
                try:
                    message = await nxt
                except StopAsyncIteration:
                    break
                nxt = asyncio.ensure_future(messages.__anext__())
                line = {"result": json_format.MessageToDict(message)}
                # a client that stops reading: the write waits on the socket's drain; cut it off
                await asyncio.wait_for(
                    out.write((json.dumps(line) + "\n").encode()), WRITE_TIMEOUT_S
                )
        except grpc.aio.AioRpcError as e:
            _, body, _ = _status_json(e)
            await out.write((json.dumps({"error": body}) + "\n").encode())
        except asyncio.TimeoutError:
            nxt.cancel()
            log.warning("rest stream client stopped reading", extra={"path": http.path[:200]})
            http.transport.close() if http.transport is not None else None
            return out
        except (ConnectionError, asyncio.CancelledError):
            nxt.cancel()
            raise
        except Exception:  # noqa: BLE001 - the stream is open: the error goes in its last line
            log.exception("rest stream failed", extra={"path": http.path[:200]})
            body = json_format.MessageToDict(
                RestError(
                    500, grpc.StatusCode.INTERNAL, "INTERNAL", "internal error; see server logs"
                ).status()
            )
            await out.write((json.dumps({"error": body}) + "\n").encode())
        await out.write_eof()
        return out

    async def _websocket(
        self, http: web.BaseRequest, messages: Any, nxt: asyncio.Future[Any]
    ) -> web.StreamResponse:
        """The same stream as text frames for browsers: `{"result": ...}` per message, then
        `{"error": ...}` if the call fails, then a close (1000 at the end, 1011 on an error). The
        browser closing the socket cancels the call; one that stops reading is cut off."""
        offered = [p.strip() for p in http.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if WS_PROTOCOL not in offered:  # (aiohttp would log the offered list: a bearer token)
            nxt.cancel()
            return RestError(
                400, grpc.StatusCode.INVALID_ARGUMENT, "WEBSOCKET_PROTOCOL",
                f"offer the WebSocket subprotocol {WS_PROTOCOL}",
            ).response()  # fmt: skip
        ws = web.WebSocketResponse(protocols=(WS_PROTOCOL,), heartbeat=WS_HEARTBEAT_S)
        try:
            await ws.prepare(http)  # type: ignore[arg-type]  # a BaseRequest serves here
        except BaseException:
            nxt.cancel()
            raise

        async def until_closed() -> None:  # frames from the browser are ignored; a close ends it
            while True:
                frame = await ws.receive()
                if frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                  aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):  # fmt: skip
                    return

        closed = asyncio.ensure_future(until_closed())
        code = aiohttp.WSCloseCode.OK
        try:
            while True:
                done, _ = await asyncio.wait({nxt, closed}, return_when=asyncio.FIRST_COMPLETED)
                if closed in done:  # the browser went away: stop the call
                    nxt.cancel()
                    return ws
                try:
                    message = nxt.result()
                except StopAsyncIteration:
                    break
                nxt = asyncio.ensure_future(messages.__anext__())
                frame = json.dumps({"result": json_format.MessageToDict(message)})
                await asyncio.wait_for(ws.send_str(frame), WRITE_TIMEOUT_S)
        except grpc.aio.AioRpcError as e:
            _, body, _ = _status_json(e)
            await ws.send_str(json.dumps({"error": body}))
            code = aiohttp.WSCloseCode.INTERNAL_ERROR
        except asyncio.TimeoutError:
            nxt.cancel()
            log.warning("websocket client stopped reading", extra={"path": http.path[:200]})
            code = aiohttp.WSCloseCode.POLICY_VIOLATION
        except BaseException:  # the connection broke, or the server stops: end the call too
            nxt.cancel()
            raise
        finally:
            closed.cancel()
        await ws.close(code=code)
        return ws

    def _relayed(self, http: web.BaseRequest) -> tuple[tuple[str, str], ...]:
        """What this relay vouches for, under its gateway secret: the HTTP client's address (the
        per-caller limits count it, not the relay) and, with mTLS on this face, the verified
        client certificate's name."""
        if not self.gateway_secret:
            return ()
        out: tuple[tuple[str, str], ...] = (
            (GATEWAY_HEADER, self.gateway_secret),
            (FORWARDED_HEADER, http.remote or "unknown"),
        )
        cn = certificate_common_name(
            http.transport.get_extra_info("peercert") if http.transport else None
        )
        return out + (((CLIENT_CN_HEADER, cn),) if cn else ())

    async def _token(self, http: web.BaseRequest) -> web.StreamResponse:
        """The OAuth2 client-credentials grant (RFC 6749 4.4): the client secret is an API key,
        given as HTTP Basic (client_id:client_secret) or as the client_secret form field; the
        answer is KeyService.IssueToken's, in the RFC's JSON."""

        def oauth_error(status: int, error: str, description: str) -> web.Response:
            return web.json_response(
                {"error": error, "error_description": description},
                status=status,
                headers={"Cache-Control": "no-store"},
            )

        body = await self._body(http)
        self.budget.give(len(body))
        try:
            form = urllib.parse.parse_qs(body.decode(), strict_parsing=bool(body))
        except (UnicodeDecodeError, ValueError):
            return oauth_error(400, "invalid_request", "the body must be a form")
        if form.get("grant_type") != ["client_credentials"]:
            return oauth_error(400, "unsupported_grant_type", "only client_credentials is granted")
        secret = (form.get("client_secret") or [""])[0]
        scheme, _, basic = http.headers.get("Authorization", "").partition(" ")
        if not secret and scheme.lower() == "basic":
            try:
                secret = base64.b64decode(basic, validate=True).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                return oauth_error(400, "invalid_request", "malformed Basic credentials")
        if not secret:
            return oauth_error(401, "invalid_client", "send the API key as the client secret")
        metadata = (("authorization", f"Bearer {secret}"), *self._relayed(http))
        try:
            reply = await self.channel.unary_unary(
                "/idf.v1.KeyService/IssueToken",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=keys_pb2.IssueTokenResponse.FromString,
            )(keys_pb2.IssueTokenRequest(), metadata=metadata, timeout=30)
        except grpc.aio.AioRpcError as e:
            if e.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                return oauth_error(
                    401, "invalid_client", "the client secret is not a valid API key"
                )
            status, body_json, headers = _status_json(e)
            return web.json_response(body_json, status=status, headers=headers or None)
        return web.json_response(
            {
                "access_token": reply.access_token,
                "token_type": reply.token_type,
                "expires_in": reply.expires_in,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def close(self) -> None:
        await self.channel.close()


# --- the HTTP server: aiohttp's, with JSON errors and a connection cap ------------------------


def _error_bytes(http_status: int, phrase: str, error: RestError) -> bytes:
    body = json.dumps(json_format.MessageToDict(error.status())).encode()
    retry = (
        f"Retry-After: {math.ceil(error.retry_after)}\r\n" if error.retry_after is not None else ""
    )
    return (
        f"HTTP/1.1 {http_status} {phrase}\r\nContent-Type: application/json\r\n{retry}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


class _Refuse(asyncio.Protocol):
    """A connection past MAX_CONNECTIONS: one 503 with Retry-After, then closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        error = RestError(
            503,
            grpc.StatusCode.UNAVAILABLE,
            "TOO_MANY_CONNECTIONS",
            f"the REST face holds its limit of {MAX_CONNECTIONS} connections; retry shortly",
            retry_after=1.0,
        )
        transport.write(_error_bytes(503, "Service Unavailable", error))  # type: ignore[attr-defined]
        transport.close()


class _Handler(web_protocol.RequestHandler):
    """aiohttp's connection handler; its own errors (malformed request line, over-long headers)
    answer a google.rpc.Status JSON body like every other error of this face."""

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: Exception | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # part of an answer went out: the connection is broken
            raise ConnectionError("response already started; cannot send an error")
        if status >= 500:
            log.error("rest connection error", exc_info=exc)
            error = RestError(
                status, grpc.StatusCode.INTERNAL, "INTERNAL", "internal error; see server logs"
            )
        else:
            log.debug("malformed http request", exc_info=exc)
            text = _first_line(exc) if exc is not None else (message or "malformed HTTP request")
            error = RestError(
                status,
                grpc.StatusCode.INVALID_ARGUMENT,
                "MALFORMED_HTTP",
                f"malformed HTTP request: {text}",
            )
        response = error.response()
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> asyncio.Protocol:  # type: ignore[override]
        if len(self.connections) >= MAX_CONNECTIONS:
            return _Refuse()
        return _Handler(
            self, loop=self._loop, **self._kwargs
        )  # same construction as web.Server.__call__


async def start(
    host: str,
    port: int,
    grpc_target: str,
    max_message_bytes: int,
    gateway_secret: str = "",
    jwks: dict[str, Any] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[web.BaseRunner, int, Transcoder]:
    transcoder = Transcoder(grpc_target, max_message_bytes, gateway_secret, jwks)
    server = _Server(
        transcoder.handle,
        handler_cancellation=True,  # a client that goes away cancels its gRPC call
        keepalive_timeout=IDLE_TIMEOUT_S,
        lingering_time=LINGER_S,
        max_line_size=MAX_LINE_BYTES,
        max_field_size=MAX_LINE_BYTES,
        max_headers=MAX_HEADERS,
        access_log=None,
    )
    runner = web.ServerRunner(server, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound = site.port
    log.info(
        "rest listening",
        extra={
            "host": host,
            "port": bound,
            "max_body_bytes": transcoder.max_body,
            "max_connections": MAX_CONNECTIONS,
        },
    )
    return runner, bound, transcoder
