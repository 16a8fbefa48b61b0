"""The real server plus a bare echo RPC (`/idf.bench.Echo/Echo`, raw bytes back unchanged): the
transport floor the Predict benchmark compares against. Run by bench/predict_latency.py."""

from __future__ import annotations

import asyncio
import sys

import grpc

from idf.server.app import start
from idf.server.config import Settings
from idf.server.logs import configure


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


ECHO = grpc.method_handlers_generic_handler(
    "idf.bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
)


async def main() -> None:
    settings = Settings(port=0, log_level="WARNING", auth="off")  # the transport's cost alone
    configure(settings.log_level, settings.log_format)
    running = await start(settings, extra_handlers=[ECHO])
    print(running.port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
