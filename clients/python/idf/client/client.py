"""`Client` (blocking) and `AsyncClient` (asyncio): twins with the same methods and arguments.

    from idf.client import Client
    with Client("localhost:50051") as idf:
        forecast = idf.predict(field, steps=10, diffusivity=0.2)

Failed calls raise `idf.client.errors.IdfError` subclasses carrying the server's status details.
UNAVAILABLE is retried with backoff by gRPC's retry policy; nothing else is retried.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import grpc
import grpc.aio
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from idf.client import _protocol as p
from idf.client.errors import from_rpc_error
from idf.client.fields import to_field
from idf.v1 import diffusion_pb2, diffusion_pb2_grpc, market_pb2, market_pb2_grpc, predict_pb2_grpc, proof_pb2, proof_pb2_grpc

_SERVING = health_pb2.HealthCheckResponse.ServingStatus


class _Base:
    def __init__(
        self,
        target: str | None,
        timeout: float | None,
        metadata: Sequence[tuple[str, str]] | None,
    ) -> None:
        self.target = target or p.default_target()
        self.timeout = timeout
        self.metadata = tuple(metadata or ())

    def _kw(self, timeout: float | None) -> dict[str, Any]:
        return {"timeout": self.timeout if timeout is None else timeout, "metadata": self.metadata}


class Client(_Base):
    """Blocking client.

    Args:
        target: "host:port"; defaults to `IDF_SERVER`, else localhost:50051.
        timeout: default deadline in seconds for every call (None: no deadline).
        credentials: TLS channel credentials (`grpc.ssl_channel_credentials(...)`); None means
            plaintext.
        call_credentials: per-call credentials (tokens), composed onto `credentials`.
        metadata: extra metadata sent with every call (for example an API key header).
        max_attempts: attempts for calls that fail with UNAVAILABLE (1 disables retries).
        max_message_bytes: largest message sent or received.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        timeout: float | None = 60.0,
        credentials: grpc.ChannelCredentials | None = None,
        call_credentials: grpc.CallCredentials | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        max_attempts: int = 4,
        max_message_bytes: int = p.DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        super().__init__(target, timeout, metadata)
        options = p.channel_options(max_message_bytes, max_attempts)
        creds = p.combined_credentials(credentials, call_credentials)
        self.channel = (
            grpc.secure_channel(self.target, creds, options)
            if creds is not None
            else grpc.insecure_channel(self.target, options)
        )
        self.predict_stub = predict_pb2_grpc.PredictServiceStub(self.channel)
        self.diffusion_stub = diffusion_pb2_grpc.DiffusionServiceStub(self.channel)
        self.proof_stub = proof_pb2_grpc.ProofServiceStub(self.channel)
        self.market_stub = market_pb2_grpc.MarketServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def call(self, method: Any, request: Any, *, timeout: float | None = None) -> Any:
        """Any RPC through this client's deadlines, metadata and typed errors:
        `client.call(client.market_stub.Swap, request)`."""
        return self._call(method, request, timeout)

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return method(request, **self._kw(timeout))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def _stream(self, method: Any, request: Any, timeout: float | None) -> Iterator[Any]:
        try:
            yield from method(request, **self._kw(timeout))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """The server's health status name ("SERVING", "NOT_SERVING", ...)."""
        request = health_pb2.HealthCheckRequest(service=service)
        return _SERVING.Name(self._call(self._health.Check, request, timeout).status)

    def predict(
        self,
        history: np.ndarray | Sequence[np.ndarray],
        steps: int,
        *,
        timeout: float | None = None,
        **parameters: Any,
    ) -> p.Forecast:
        """Forecast `steps` frames. Keyword parameters are those of `predict_request`:
        model, diffusivity, velocity, dt, substeps, source, spacing, boundary,
        boundary_value, units, and for learned flow forecasters reynolds, ensemble_members, seed."""
        request = p.predict_request(history, steps, **parameters)
        return p.forecast_from(self._call(self.predict_stub.Predict, request, timeout))

    def list_models(self, *, timeout: float | None = None) -> list[dict[str, object]]:
        """Every model the server can run, as plain dicts."""
        request = diffusion_pb2.ListModelsRequest(page_size=1000)
        return p.models_from(self._call(self.diffusion_stub.ListModels, request, timeout))

    def sample(
        self, request: diffusion_pb2.SampleRequest, *, timeout: float | None = None
    ) -> Iterator[diffusion_pb2.SampleResponse]:
        """Stream a Sample call: progress messages, then the result."""
        return self._stream(self.diffusion_stub.Sample, request, timeout)

    def reconstruct(self, observed: np.ndarray, mask: np.ndarray, *, timeout: float | None = None,
                    **options: Any) -> diffusion_pb2.ReconstructResponse:
        """Reconstruct a field from the values of `observed` where `mask` is non-zero. Options are
        ReconstructRequest fields (noise_std, model, sample_count, seed, return_samples); decode
        the answer's `mean` and `stddev` with `from_field`."""
        return self._call(self.diffusion_stub.Reconstruct, reconstruct_request(observed, mask, **options), timeout)

    def create_proof(self, *, timeout: float | None = None, **kwargs: Any) -> proof_pb2.Proof:
        """Validate and log: keyword arguments of `create_proof_request` (prediction, reference,
        sequence, policy, producer, request_id). Returns the signed Proof with its inclusion
        proof; check it offline with `idf.client.proofs.verify_proof`."""
        return self._call(self.proof_stub.CreateProof, p.create_proof_request(**kwargs), timeout).proof

    def get_proof(self, name: str, *, timeout: float | None = None) -> proof_pb2.Proof:
        return self._call(self.proof_stub.GetProof, proof_pb2.GetProofRequest(name=name), timeout).proof

    def list_proofs(self, *, page_size: int = 0, page_token: str = "", timeout: float | None = None, **filters: Any) -> proof_pb2.ListProofsResponse:
        request = proof_pb2.ListProofsRequest(page_size=page_size, page_token=page_token, **filters)
        return self._call(self.proof_stub.ListProofs, request, timeout)

    def list_policies(self, *, timeout: float | None = None) -> list[proof_pb2.Policy]:
        return list(self._call(self.proof_stub.ListPolicies, proof_pb2.ListPoliciesRequest(), timeout).policies)

    def checkpoint(self, *, timeout: float | None = None) -> proof_pb2.Checkpoint:
        return self._call(self.proof_stub.GetCheckpoint, proof_pb2.GetCheckpointRequest(), timeout).checkpoint

    def consistency_proof(self, first: int, second: int, *, timeout: float | None = None) -> list[bytes]:
        request = proof_pb2.GetConsistencyProofRequest(first_tree_size=first, second_tree_size=second)
        return list(self._call(self.proof_stub.GetConsistencyProof, request, timeout).hashes)

    def public_key(self, *, timeout: float | None = None) -> bytes:
        return self._call(self.proof_stub.GetPublicKey, proof_pb2.GetPublicKeyRequest(), timeout).public_key

    def ledger_audit(self, admin_token: str, *, timeout: float | None = None) -> market_pb2.GetLedgerAuditResponse:
        """The operator audit (administrators only): system balances, supply, open escrow
        reservations and every ledger invariant with whether it holds (`.passed`: all hold)."""
        try:
            return self.market_stub.GetLedgerAudit(market_pb2.GetLedgerAuditRequest(), **_admin(self._kw(timeout), admin_token))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None


class AsyncClient(_Base):
    """asyncio twin of `Client`: the same arguments, every method awaitable."""

    def __init__(
        self,
        target: str | None = None,
        *,
        timeout: float | None = 60.0,
        credentials: grpc.ChannelCredentials | None = None,
        call_credentials: grpc.CallCredentials | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        max_attempts: int = 4,
        max_message_bytes: int = p.DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        super().__init__(target, timeout, metadata)
        options = p.channel_options(max_message_bytes, max_attempts)
        creds = p.combined_credentials(credentials, call_credentials)
        self.channel = (
            grpc.aio.secure_channel(self.target, creds, options)
            if creds is not None
            else grpc.aio.insecure_channel(self.target, options)
        )
        self.predict_stub = predict_pb2_grpc.PredictServiceStub(self.channel)
        self.diffusion_stub = diffusion_pb2_grpc.DiffusionServiceStub(self.channel)
        self.proof_stub = proof_pb2_grpc.ProofServiceStub(self.channel)
        self.market_stub = market_pb2_grpc.MarketServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return await method(request, **self._kw(timeout))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def _stream(self, method: Any, request: Any, timeout: float | None) -> AsyncIterator[Any]:
        try:
            async for message in method(request, **self._kw(timeout)):
                yield message
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def health(self, service: str = "", *, timeout: float | None = None) -> str:
        request = health_pb2.HealthCheckRequest(service=service)
        return _SERVING.Name((await self._call(self._health.Check, request, timeout)).status)

    async def predict(
        self,
        history: np.ndarray | Sequence[np.ndarray],
        steps: int,
        *,
        timeout: float | None = None,
        **parameters: Any,
    ) -> p.Forecast:
        request = p.predict_request(history, steps, **parameters)
        return p.forecast_from(await self._call(self.predict_stub.Predict, request, timeout))

    async def list_models(self, *, timeout: float | None = None) -> list[dict[str, object]]:
        request = diffusion_pb2.ListModelsRequest(page_size=1000)
        return p.models_from(await self._call(self.diffusion_stub.ListModels, request, timeout))

    def sample(
        self, request: diffusion_pb2.SampleRequest, *, timeout: float | None = None
    ) -> AsyncIterator[diffusion_pb2.SampleResponse]:
        return self._stream(self.diffusion_stub.Sample, request, timeout)

    async def reconstruct(self, observed: np.ndarray, mask: np.ndarray, *, timeout: float | None = None,
                          **options: Any) -> diffusion_pb2.ReconstructResponse:
        return await self._call(self.diffusion_stub.Reconstruct, reconstruct_request(observed, mask, **options), timeout)

    async def create_proof(self, *, timeout: float | None = None, **kwargs: Any) -> proof_pb2.Proof:
        return (await self._call(self.proof_stub.CreateProof, p.create_proof_request(**kwargs), timeout)).proof

    async def get_proof(self, name: str, *, timeout: float | None = None) -> proof_pb2.Proof:
        return (await self._call(self.proof_stub.GetProof, proof_pb2.GetProofRequest(name=name), timeout)).proof

    async def checkpoint(self, *, timeout: float | None = None) -> proof_pb2.Checkpoint:
        return (await self._call(self.proof_stub.GetCheckpoint, proof_pb2.GetCheckpointRequest(), timeout)).checkpoint

    async def public_key(self, *, timeout: float | None = None) -> bytes:
        return (await self._call(self.proof_stub.GetPublicKey, proof_pb2.GetPublicKeyRequest(), timeout)).public_key

    async def ledger_audit(self, admin_token: str, *, timeout: float | None = None) -> market_pb2.GetLedgerAuditResponse:
        try:
            return await self.market_stub.GetLedgerAudit(market_pb2.GetLedgerAuditRequest(), **_admin(self._kw(timeout), admin_token))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None


def _admin(kw: dict[str, Any], admin_token: str) -> dict[str, Any]:
    """Call options with `authorization: Bearer <admin_token>` added to the metadata."""
    kept = tuple((k, v) for k, v in kw["metadata"] if k.lower() != "authorization")
    return {**kw, "metadata": (*kept, ("authorization", f"Bearer {admin_token}"))}


def reconstruct_request(observed: np.ndarray, mask: np.ndarray, **options: Any) -> diffusion_pb2.ReconstructRequest:
    observed = np.asarray(observed)
    mask = np.asarray(mask)
    return diffusion_pb2.ReconstructRequest(
        shape=list(observed.shape), observed=to_field(np.where(mask != 0, observed, 0).astype(np.float32)),
        mask=to_field((mask != 0).astype(np.int8)), **options)
