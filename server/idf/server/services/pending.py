"""Services whose engines are not built yet. Every method answers UNIMPLEMENTED naming the
missing capability — never a fake result. Each class shrinks as its engine lands."""

from __future__ import annotations

from typing import Any

import grpc

from idf.server.errors import unimplemented
from idf.server.rpc import streaming, unary
from idf.v1 import telemetry_pb2_grpc

_TELEMETRY = "telemetry ingestion (NATS streams, live energy maps)"


def _unary(service: str, method: str, capability: str) -> Any:
    @unary
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise unimplemented(f"{service}.{method}", capability)

    handler.__qualname__ = f"{service}.{method}"
    return handler


def _stream(service: str, method: str, capability: str) -> Any:
    @streaming
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise unimplemented(f"{service}.{method}", capability)
        yield  # pragma: no cover - makes this an async generator

    handler.__qualname__ = f"{service}.{method}"
    return handler


class PendingTelemetry(telemetry_pb2_grpc.TelemetryServiceServicer):
    Publish = _unary("TelemetryService", "Publish", _TELEMETRY)
    GetEnergyMap = _unary("TelemetryService", "GetEnergyMap", _TELEMETRY)
    WatchEnergyMap = _stream("TelemetryService", "WatchEnergyMap", _TELEMETRY)
