"""REST transcoding: HTTP/JSON onto the same RPCs, after grpc-gateway's conventions.

Routes come from the `google.api.http` annotations of proto/idf/v1 (nothing is listed by hand):
path templates like `/v1/{name=proofs/*}` bind path variables to request fields, `body: "*"`
parses the JSON body into the request, query parameters fill the remaining fields of GET
requests. Each HTTP request becomes one gRPC call on a loopback channel to this server — the
same interceptors, validation and servicers as native gRPC, so both faces behave identically.

Responses are proto3 JSON. Errors carry the HTTP status grpc-gateway uses and a body that is
the `google.rpc.Status` in JSON (code, message, details with field violations). Server-streaming
RPCs answer `application/x-ndjson`: one `{"result": ...}` line per message, or a final
`{"error": ...}` line. Client-streaming RPCs are gRPC only (501 here).
Headers forwarded as metadata: `authorization`, `x-idf-account`; `x-idf-timeout` (seconds)
sets the call's deadline.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from aiohttp import web
from google.api import annotations_pb2
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.rpc import status_pb2


from idf.v1 import diffusion_pb2, market_pb2, predict_pb2, proof_pb2, telemetry_pb2

log = logging.getLogger("idf.rest")
_MODULES = (predict_pb2, diffusion_pb2, proof_pb2, market_pb2, telemetry_pb2)
FORWARDED = ("authorization", "x-idf-account")

HTTP_STATUS = {
    grpc.StatusCode.OK: 200, grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DATA_LOSS: 500,
}


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
        regex += re.escape(template[pos:m.start()])
        segments = (m.group(2) or "*").split("/")
        regex += "(" + "/".join("[^/:]+" if s == "*" else ".+" if s == "**" else re.escape(s) for s in segments) + ")"
        variables.append(m.group(1))
        pos = m.end()
    regex += re.escape(template[pos:])
    return re.compile(f"^{regex}$"), tuple(variables)


def routes() -> list[Route]:
    out = []
    for module in _MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                rule = method.GetOptions().Extensions[annotations_pb2.http]
                verb = rule.WhichOneof("pattern")
                if verb is None:
                    continue
                pattern, variables = _template(getattr(rule, verb))
                out.append(Route(verb.upper(), pattern, variables, rule.body, method))
    return out


def _set_path(message: Any, path: str, value: str) -> None:
    *parents, leaf = path.split(".")
    for name in parents:
        message = getattr(message, name)
    _set_scalar(message, message.DESCRIPTOR.fields_by_name[leaf], value)


def _set_scalar(message: Any, field: FieldDescriptor, value: str) -> None:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        raise ValueError(f"{field.name} cannot be set from a query parameter")
    if field.type == FieldDescriptor.TYPE_ENUM:
        enum = field.enum_type
        converted: Any = enum.values_by_name[value].number if value in enum.values_by_name else int(value)
    elif field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        converted = float(value)
    elif field.type == FieldDescriptor.TYPE_BOOL:
        converted = value.lower() in ("1", "true")
    elif field.type == FieldDescriptor.TYPE_STRING:
        converted = value
    elif field.type == FieldDescriptor.TYPE_BYTES:
        converted = value.encode()
    else:
        converted = int(value)
    if field.is_repeated:
        getattr(message, field.name).append(converted)
    else:
        setattr(message, field.name, converted)


def _camel_to_snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _status_json(error: grpc.aio.AioRpcError) -> tuple[int, dict]:
    status = status_pb2.Status(code=error.code().value[0], message=error.details() or "")
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
    return HTTP_STATUS.get(error.code(), 500), json_format.MessageToDict(status)


class Transcoder:
    def __init__(self, grpc_target: str, max_message_bytes: int) -> None:
        self.routes = routes()
        self.channel = grpc.aio.insecure_channel(grpc_target, options=[
            ("grpc.max_send_message_length", max_message_bytes), ("grpc.max_receive_message_length", max_message_bytes)])
        self.max_body = max_message_bytes

    def _match(self, verb: str, path: str) -> tuple[Route, tuple[str, ...]] | None:
        for route in self.routes:
            if route.verb == verb and (m := route.pattern.match(path)):
                return route, m.groups()
        return None

    def _request(self, route: Route, values: tuple[str, ...], query: Any, body: bytes) -> Any:
        cls = message_factory.GetMessageClass(route.method.input_type)
        request = cls()
        if route.body == "*" and body:
            json_format.Parse(body, request)
        for path, value in zip(route.variables, values):
            _set_path(request, path, value)
        for key, value in query.items():
            _set_path(request, _camel_to_snake(key), value)
        return request

    async def handle(self, http: web.Request) -> web.StreamResponse:
        try:
            return await self._handle(http)
        except Exception:  # noqa: BLE001 - never leak a traceback to the caller
            log.exception("rest handler failed", extra={"path": http.path})
            return web.json_response({"code": 13, "message": "internal error; see server logs"}, status=500)

    async def _handle(self, http: web.Request) -> web.StreamResponse:
        matched = self._match(http.method, http.path)
        if matched is None:
            return web.json_response({"code": 5, "message": f"no route for {http.method} {http.path}"}, status=404)
        route, values = matched
        method = route.method
        if method.client_streaming:
            return web.json_response({"code": 12, "message": f"{method.full_name} is a client stream: use gRPC"}, status=501)
        try:
            request = self._request(route, values, http.query, await http.read())
        except (json_format.ParseError, ValueError, KeyError) as e:
            return web.json_response({"code": 3, "message": f"bad request: {e}"}, status=400)
        metadata = tuple((h, http.headers[h]) for h in FORWARDED if h in http.headers)
        timeout = float(http.headers["x-idf-timeout"]) if "x-idf-timeout" in http.headers else None
        response_cls = message_factory.GetMessageClass(method.output_type)
        kw = dict(request_serializer=lambda m: m.SerializeToString(), response_deserializer=response_cls.FromString)
        if method.server_streaming:
            return await self._stream(http, self.channel.unary_stream(route.path, **kw), request, metadata, timeout)
        try:
            reply = await self.channel.unary_unary(route.path, **kw)(request, metadata=metadata, timeout=timeout)
        except grpc.aio.AioRpcError as e:
            status, body = _status_json(e)
            return web.json_response(body, status=status)
        return web.Response(text=json_format.MessageToJson(reply, indent=None), content_type="application/json")

    async def _stream(self, http: web.Request, call: Any, request: Any, metadata: Any, timeout: float | None) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await out.prepare(http)
        try:
            async for message in call(request, metadata=metadata, timeout=timeout):
                line = {"result": json_format.MessageToDict(message)}
                await out.write((json.dumps(line) + "\n").encode())
        except grpc.aio.AioRpcError as e:
            _, body = _status_json(e)
            await out.write((json.dumps({"error": body}) + "\n").encode())
        await out.write_eof()
        return out

    async def close(self) -> None:
        await self.channel.close()


async def start(host: str, port: int, grpc_target: str, max_message_bytes: int) -> tuple[web.AppRunner, int, Transcoder]:
    transcoder = Transcoder(grpc_target, max_message_bytes)
    app = web.Application(client_max_size=max_message_bytes)
    app.router.add_route("*", "/{tail:.*}", transcoder.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    log.info("rest listening", extra={"host": host, "port": bound})
    return runner, bound, transcoder



