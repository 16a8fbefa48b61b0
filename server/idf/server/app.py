"""Wiring: the async grpcio server with every service, health, reflection, message-size limits,
the Guard interceptor (every call), admission control (engine calls), three thread pools (engine
work; light engine work; store calls, so cheap calls never wait behind the engine), private data files,
and graceful shutdown on SIGTERM/SIGINT that really stops engine work."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import secrets
import signal
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from idf.server import memory, signing
from idf.server.admission import Admission
from idf.server.auth import Authority
from idf.server.config import Settings
from idf.server.ingest import ProtobufCodec
from idf.server.market import DEFAULT_POOL
from idf.server.metering import Metering, Sweeper, start_sweeper
from idf.server.ratelimit import Buckets, RateLimiter
from idf.server.rpc import Guard
from idf.server.services.diffusion import DiffusionServicer
from idf.server.services.keys import KeyServicer
from idf.server.services.market import MarketServicer
from idf.server.services.predict import PredictServicer
from idf.server.services.proof import ProofServicer
from idf.server.services.telemetry import TelemetryServicer
from idf.server.tls import ReloadingCredentials, RestContext
from idf.server.tokens import OwnIssuer, TokenVerifier, TrustedIssuer
from idf.server.transparency import TransparencyLog
from idf.store.keys import KeyStore
from idf.store.ledger import Ledger
from idf.store.proof_log import ProofLog, open_proof_log
from idf.stream.runtime import StreamRuntime
from idf.v1 import (
    diffusion_pb2,
    diffusion_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
    market_pb2,
    market_pb2_grpc,
    predict_pb2,
    predict_pb2_grpc,
    proof_pb2,
    proof_pb2_grpc,
    telemetry_pb2,
    telemetry_pb2_grpc,
)

log = logging.getLogger("idf.server")

SERVICE_NAMES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (predict_pb2, "PredictService"),
        (diffusion_pb2, "DiffusionService"),
        (proof_pb2, "ProofService"),
        (market_pb2, "MarketService"),
        (telemetry_pb2, "TelemetryService"),
        (keys_pb2, "KeyService"),
    )
)


# Concurrent RPCs the server accepts before answering RESOURCE_EXHAUSTED itself (engine calls are
# bounded far below this by admission; this bounds everything else, streams included).
MAX_CONCURRENT_RPCS = 512
MAX_CONNECTION_AGE_S = 3600
FLUSH_S = 0.5  # after the last call completes at shutdown, before the process may exit
IO_THREADS = 8
# Bounded engine work that is not the heavy kind (proof metrics, regime features): its own small
# pool and queue, so it neither waits behind long engine calls nor takes the cheap calls' threads
LIGHT_THREADS = 2
LIGHT_QUEUE = (
    128  # light calls are short (a proof's metrics: milliseconds to a second); queued ones
)
LIGHT_PER_CALLER = 64  # hold only their request, which max_inflight_request_bytes bounds  # store reads and writes, proof metrics: short, never engine loops


def _private_data_dir(settings: Settings) -> None:
    """The data directory holds keys, the ledger and the proof log: 0700, owner only."""
    if settings.database_url is None or settings.proof_key_file is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(settings.data_dir, 0o700)


def _private_files(settings: Settings) -> None:
    """SQLite files 0600 (SQLite gives its -wal and -shm files the database file's mode)."""
    if settings.database_url is None:
        for suffix in ("", "-wal", "-shm"):
            path = settings.data_dir / f"idf.sqlite3{suffix}"
            if path.exists():
                os.chmod(path, 0o600)


@dataclass
class Running:
    """A started server: the bound port, and what shutdown needs."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    executor: ThreadPoolExecutor
    io_executor: ThreadPoolExecutor
    admission: Admission
    settings: Settings
    proof_log: ProofLog
    ledger: Ledger
    rest_port: int | None = None
    rest_runner: Any = None
    transcoder: Any = None
    sweeper: Sweeper | None = None  # refunds expired CEU reservations
    guard: Guard | None = None  # the interceptor every call passes (its in-flight byte count)
    light: Admission | None = None  # proof metrics and regime features
    keys: KeyStore | None = None  # API keys
    rest_tls_task: asyncio.Task[None] | None = None  # reloads the REST face's certificate
    telemetry: StreamRuntime | None = None  # NATS, the map store, the inline ingest worker

    async def stop(self) -> None:
        """Refuse new calls, let in-flight calls finish within the grace period, then stop."""
        if self.guard is not None:
            self.guard.closing = True  # before the log line: a call that sees it is refused
        log.info("shutting down", extra={"grace_period_s": self.settings.grace_period})
        await self.health.enter_graceful_shutdown()
        if self.rest_tls_task is not None:
            self.rest_tls_task.cancel()
        if self.rest_runner is not None:
            await self.rest_runner.cleanup()
            await self.transcoder.close()
        await self.server.stop(self.settings.grace_period)
        # stop() returns once the last call has completed, which can be before gRPC's I/O thread has
        # written its final frames: exiting at once then closes the socket under them and the client
        # sees a reset instead of its answer (seen on a loaded machine). Give the transport a moment.
        await asyncio.sleep(FLUSH_S)
        # past the grace period every call was cancelled, which tells its engine to stop; make
        # sure of it (a call may sit between two checks), then wait for the threads to return
        stopped = self.admission.stop_all() + (self.light.stop_all() if self.light else 0)
        if stopped:
            log.info("stopping engine work", extra={"calls": stopped})
        await asyncio.to_thread(self.executor.shutdown, wait=True, cancel_futures=True)
        self.io_executor.shutdown(wait=True, cancel_futures=True)
        if self.light is not None:
            await asyncio.to_thread(self.light.executor.shutdown, wait=True, cancel_futures=True)
        if self.sweeper is not None:
            await self.sweeper.stop()
        if self.telemetry is not None:
            await self.telemetry.stop()
        self.proof_log.close()
        self.ledger.close()
        if self.keys is not None:
            self.keys.close()
        log.info("stopped")


REST_TLS_RELOAD_S = 5.0  # how often the REST face looks for new certificate files


async def _reload_rest_tls(context: RestContext) -> None:
    while True:
        await asyncio.sleep(REST_TLS_RELOAD_S)
        await asyncio.to_thread(context.maybe_reload)


async def start(
    settings: Settings, extra_handlers: Sequence[grpc.GenericRpcHandler] = ()
) -> Running:
    """Build and start the server; returns once it is listening."""
    size = settings.max_message_bytes
    _private_data_dir(settings)
    memory.limit_arenas()
    keys = KeyStore(settings.store_url())
    issuer = OwnIssuer(
        signing.load_or_create(settings.token_key_path()),
        settings.token_issuer,
        settings.token_ttl_s,
    )
    try:
        trusted = [TrustedIssuer(**t) for t in settings.jwt_issuers]
    except TypeError as e:
        raise ValueError(f"jwt_issuers: {e}") from None
    authority = Authority(
        settings.auth,
        keys,
        roles=settings.roles,
        anonymous=settings.anonymous_permissions,
        admin_token=settings.admin_token,
        tokens=TokenVerifier(trusted, issuer, settings.roles),
        identities=settings.mtls_identities,
    )
    limiter = RateLimiter(
        (settings.rate_limit_requests_per_s, settings.rate_limit_burst),
        (settings.tenant_rate_limit_requests_per_s, settings.tenant_rate_limit_burst),
        (settings.rate_limit_site_updates_per_s, settings.max_call_site_updates),
        (settings.tenant_rate_limit_site_updates_per_s, settings.max_call_site_updates),
    )
    gateway_secret = secrets.token_urlsafe(32)  # the REST face relays client addresses with it
    guard = Guard(
        size,
        settings.max_inflight_request_bytes,
        settings.default_deadline,
        authority=authority,
        limiter=limiter,
        gateway_secret=gateway_secret,
    )
    server = grpc.aio.server(
        interceptors=[guard],
        options=[
            ("grpc.max_receive_message_length", size),
            ("grpc.max_send_message_length", size),
            ("grpc.so_reuseport", 0),
            # connections are recycled (GOAWAY, then closed after the grace): the bound on how long
            # a client that stops reading can keep a pending answer; clients reconnect by themselves
            ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_S * 1000),
            ("grpc.max_connection_age_grace_ms", int((settings.default_deadline + 30) * 1000)),
        ],
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
    )
    executor = ThreadPoolExecutor(settings.workers, thread_name_prefix="idf-engine")
    io_executor = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="idf-io")
    admission = Admission(settings, executor, gateway_secret=gateway_secret)
    light_executor = ThreadPoolExecutor(LIGHT_THREADS, thread_name_prefix="idf-light")
    light = Admission(
        settings,
        light_executor,
        capacity=LIGHT_THREADS,
        queue=LIGHT_QUEUE,
        per_caller=LIGHT_PER_CALLER,
        gateway_secret=gateway_secret,
    )
    ledger = Ledger(settings.store_url())
    ledger.ensure_pool(DEFAULT_POOL, settings.market_fee_bps)
    meter = Metering(
        ledger,
        settings.ceu_per_million_site_updates,
        settings.metering,
        node=settings.node_id,
        ttl=settings.reservation_ttl,
    )
    sweeper = await start_sweeper(
        meter
    )  # before serving: refunds what a dead incarnation left in escrow
    predict_pb2_grpc.add_PredictServiceServicer_to_server(
        PredictServicer(settings, admission, meter, light), server
    )
    diffusion_pb2_grpc.add_DiffusionServiceServicer_to_server(
        DiffusionServicer(settings, admission, meter), server
    )
    proof_log = open_proof_log(settings.store_url())
    _private_files(settings)
    key = signing.load_or_create(settings.key_path())
    proof_pb2_grpc.add_ProofServiceServicer_to_server(
        ProofServicer(
            settings,
            io_executor,
            TransparencyLog(proof_log, key, settings.log_origin),
            ledger,
            light,
        ),
        server,
    )
    market_pb2_grpc.add_MarketServiceServicer_to_server(
        MarketServicer(settings, io_executor, ledger), server
    )
    sites = settings.telemetry_sites()
    telemetry = None
    if sites:  # telemetry needs NATS: started (or connected to) only when a site is configured
        telemetry = await StreamRuntime.start(
            sites,
            settings.store_url(),
            nats_url=settings.nats_url,
            data_dir=settings.data_dir,
            inline=settings.ingest == "inline",
            codec=ProtobufCodec(),
            mqtt=settings.mqtt_routes(),
            batch=settings.ingest_batch,
        )
    telemetry_pb2_grpc.add_TelemetryServiceServicer_to_server(
        TelemetryServicer(
            io_executor,
            sites,
            telemetry,
            Buckets(settings.tenant_readings_per_s, settings.tenant_readings_burst)
            if settings.auth == "api-key"
            else None,
        ),
        server,
    )
    keys_pb2_grpc.add_KeyServiceServicer_to_server(
        KeyServicer(io_executor, keys, authority, issuer), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if extra_handlers:
        server.add_generic_rpc_handlers(tuple(extra_handlers))
    if settings.reflection:
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
    address = f"{settings.host}:{settings.port}"
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        tls = ReloadingCredentials(
            settings.tls_cert_file,
            settings.tls_key_file,
            settings.tls_client_ca_file,
        )
        port = server.add_secure_port(address, tls.credentials())
        if settings.rest_port is not None:
            # the REST face relays onto a private Unix socket in the data directory (0700): the TLS
            # port may require client certificates the relay does not hold
            relay = settings.data_dir / "grpc.sock"
            relay.unlink(missing_ok=True)
            server.add_insecure_port(f"unix:{relay}")
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {address}")
    # Start-up objects (torch, triton, grpc, protobuf: ~220k) are never garbage: freezing them makes a
    # full collection ~2 ms instead of ~100 ms and lets the collector run on what requests leave behind.
    gc.collect()
    gc.freeze()
    gc.collect()  # resets the long-lived count the next automatic full collection is measured against
    await server.start()
    serving = health_pb2.HealthCheckResponse.SERVING
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, serving)
    log.info(
        "listening",
        extra={"host": settings.host, "port": port, "tls": settings.tls_cert_file is not None},
    )
    running = Running(
        server, port, health_servicer, executor, io_executor, admission, settings, proof_log, ledger
    )
    running.guard = guard
    running.keys = keys
    running.light = light
    running.sweeper = sweeper
    running.telemetry = telemetry
    if settings.rest_port is not None:
        from idf.server import rest

        rest_tls = None
        target = f"127.0.0.1:{port}"
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            rest_tls = RestContext(
                settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
            )
            target = f"unix:{settings.data_dir / 'grpc.sock'}"
            running.rest_tls_task = asyncio.create_task(_reload_rest_tls(rest_tls))
        running.rest_runner, running.rest_port, running.transcoder = await rest.start(
            settings.host,
            settings.rest_port,
            target,
            settings.max_message_bytes,
            gateway_secret,
            issuer.jwks() if settings.auth == "api-key" else None,
            rest_tls.context if rest_tls else None,
        )
    return running


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    running = await start(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop()
