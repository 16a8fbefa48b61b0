"""`Client` (blocking) and `AsyncClient` (asyncio): twins with the same methods and arguments.

    from idf.client import Client
    with Client("localhost:50051") as idf:
        forecast = idf.predict(field, steps=10, diffusivity=0.2)

One method per RPC of the contract on both twins, named after the RPC in snake_case
(`GetPool` -> `get_pool`; tests/test_sdk_parity.py derives the list from the protos), returning
decoded results (idf.client.results: dataclasses and numpy arrays, the response in `.raw`).
`call(stub_method, request)` reaches any RPC with raw messages. Failed calls raise
`idf.client.errors.IdfError` subclasses carrying the server's status details. UNAVAILABLE is
retried with backoff by gRPC's retry policy; nothing else is retried.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

import grpc
import grpc.aio
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from idf.client import _protocol as p
from idf.client import results as r
from idf.client.errors import from_rpc_error
from idf.client.fields import to_field
from idf.v1 import (
    diffusion_pb2,
    diffusion_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
    market_pb2,
    market_pb2_grpc,
    predict_pb2_grpc,
    proof_pb2,
    proof_pb2_grpc,
    telemetry_pb2,
    telemetry_pb2_grpc,
)

_SERVING = health_pb2.HealthCheckResponse.ServingStatus


class _Base:
    def __init__(
        self,
        target: str | None,
        timeout: float | None,
        metadata: Sequence[tuple[str, str]] | None,
        api_key: str | None = None,
    ) -> None:
        self.target = target or p.default_target()
        self.timeout = timeout
        self.metadata = tuple(metadata or ())
        if api_key:
            self.metadata += (("authorization", f"Bearer {api_key}"),)

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
        metadata: extra metadata sent with every call.
        api_key: an API key (idf_...) or token, sent as `authorization: Bearer <api_key>`.
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
        api_key: str | None = None,
    ) -> None:
        super().__init__(target, timeout, metadata, api_key)
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
        self.telemetry_stub = telemetry_pb2_grpc.TelemetryServiceStub(self.channel)
        self.keys_stub = keys_pb2_grpc.KeyServiceStub(self.channel)
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

    def list_models(self, *, timeout: float | None = None) -> list[r.Model]:
        """Every model the server can run."""
        request = diffusion_pb2.ListModelsRequest(page_size=1000)
        return r.models_from(self._call(self.diffusion_stub.ListModels, request, timeout))

    def sample(
        self, request: diffusion_pb2.SampleRequest, *, timeout: float | None = None
    ) -> Iterator[r.SampleProgress | r.SampleResult]:
        """Stream a Sample call (build the request with `sample_request`): progress reports, then
        the result (the last item)."""
        for message in self._stream(self.diffusion_stub.Sample, request, timeout):
            yield r.sample_event_from(message)

    def reconstruct(
        self,
        observed: np.ndarray,
        mask: np.ndarray,
        *,
        timeout: float | None = None,
        **options: Any,
    ) -> r.Reconstruction:
        """Reconstruct a field from the values of `observed` where `mask` is non-zero. Options are
        ReconstructRequest fields (noise_std, model, sample_count, seed, return_samples)."""
        return r.reconstruction_from(
            self._call(
                self.diffusion_stub.Reconstruct,
                reconstruct_request(observed, mask, **options),
                timeout,
            )
        )

    def create_proof(self, *, timeout: float | None = None, **kwargs: Any) -> r.Proof:
        """Validate and log: keyword arguments of `create_proof_request` (prediction, reference,
        sequence, policy, producer, request_id). Returns the signed proof with its inclusion
        proof (and the reward it paid); check it offline with `idf.client.proofs.verify_proof`."""
        response = self._call(
            self.proof_stub.CreateProof, p.create_proof_request(**kwargs), timeout
        )
        return r.proof_from(response.proof, response.reward_pft, response.reward_reason)

    def get_proof(self, name: str, *, timeout: float | None = None) -> r.Proof:
        request = proof_pb2.GetProofRequest(name=name)
        return r.proof_from(self._call(self.proof_stub.GetProof, request, timeout).proof)

    def list_proofs(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
        **filters: Any,
    ) -> r.ProofPage:
        """One page of the log, newest first; filters are ListProofsRequest fields (policy,
        verdict, producer)."""
        request = proof_pb2.ListProofsRequest(page_size=page_size, page_token=page_token, **filters)
        return r.proof_page_from(self._call(self.proof_stub.ListProofs, request, timeout))

    def list_policies(self, *, timeout: float | None = None) -> list[r.Policy]:
        request = proof_pb2.ListPoliciesRequest()
        return r.policies_from(self._call(self.proof_stub.ListPolicies, request, timeout))

    def checkpoint(self, *, timeout: float | None = None) -> proof_pb2.Checkpoint:
        return self._call(
            self.proof_stub.GetCheckpoint, proof_pb2.GetCheckpointRequest(), timeout
        ).checkpoint

    def consistency_proof(
        self, first: int, second: int, *, timeout: float | None = None
    ) -> list[bytes]:
        request = proof_pb2.GetConsistencyProofRequest(
            first_tree_size=first, second_tree_size=second
        )
        return list(self._call(self.proof_stub.GetConsistencyProof, request, timeout).hashes)

    def public_key(self, *, timeout: float | None = None) -> bytes:
        return self._call(
            self.proof_stub.GetPublicKey, proof_pb2.GetPublicKeyRequest(), timeout
        ).public_key

    def detect_regime(
        self,
        frames: Sequence[np.ndarray],
        frame_interval: float,
        *,
        model: str = "",
        timeout: float | None = None,
    ) -> r.Regime:
        """The flow regime of a window of 2-D vorticity frames (oldest first)."""
        return r.regime_from(
            self._call(
                self.predict_stub.DetectRegime,
                p.detect_regime_request(frames, frame_interval, model),
                timeout,
            )
        )

    def list_energy_models(self, *, timeout: float | None = None) -> list[r.EnergyModel]:
        """The energy models Sample accepts, with their parameters, samplers and constraints."""
        return r.energy_models_from(
            self._call(
                self.diffusion_stub.ListEnergyModels,
                diffusion_pb2.ListEnergyModelsRequest(),
                timeout,
            )
        )

    def get_pool(self, name: str = p.DEFAULT_POOL, *, timeout: float | None = None) -> r.Pool:
        return r.pool_from(
            self._call(self.market_stub.GetPool, market_pb2.GetPoolRequest(name=name), timeout).pool
        )

    def quote(
        self,
        token_in: str,
        *,
        amount_in: int | None = None,
        amount_out: int | None = None,
        pool: str = p.DEFAULT_POOL,
        timeout: float | None = None,
    ) -> r.Quote:
        """Price a swap of `token_in` ("CEU" or "PFT"), exact in or exact out, without executing it."""
        return r.quote_from(
            self._call(
                self.market_stub.Quote,
                p.quote_request(token_in, amount_in=amount_in, amount_out=amount_out, pool=pool),
                timeout,
            )
        )

    def swap(
        self, account: str, token_in: str, *, timeout: float | None = None, **options: Any
    ) -> r.Swap:
        """Swap; options are `swap_request`'s (amount_in | amount_out, min_amount_out, max_amount_in,
        deadline_s, request_id, pool)."""
        request = p.swap_request(account, token_in, **options)
        return r.swap_from(self._call(self.market_stub.Swap, request, timeout), request.token_in)

    def add_liquidity(
        self,
        account: str,
        amount_ceu: int,
        amount_pft: int,
        *,
        timeout: float | None = None,
        **options: Any,
    ) -> r.Liquidity:
        request = p.add_liquidity_request(account, amount_ceu, amount_pft, **options)
        return r.add_liquidity_from(self._call(self.market_stub.AddLiquidity, request, timeout))

    def remove_liquidity(
        self, account: str, shares: int, *, timeout: float | None = None, **options: Any
    ) -> r.Liquidity:
        request = p.remove_liquidity_request(account, shares, **options)
        return r.remove_liquidity_from(
            self._call(self.market_stub.RemoveLiquidity, request, timeout), shares
        )

    def get_balance(self, account: str, *, timeout: float | None = None) -> dict[str, int]:
        """{"CEU": amount, "PFT": amount} in base units."""
        request = market_pb2.GetBalanceRequest(account=p.account_name(account))
        return r.balances_from(self._call(self.market_stub.GetBalance, request, timeout))

    def list_transactions(
        self,
        account: str,
        *,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> r.TransactionPage:
        request = market_pb2.ListTransactionsRequest(
            account=p.account_name(account), page_size=page_size, page_token=page_token
        )
        return r.transactions_from(self._call(self.market_stub.ListTransactions, request, timeout))

    def mint(
        self,
        account: str,
        token: str,
        amount: int,
        admin_token: str = "",
        *,
        request_id: str = "",
        timeout: float | None = None,
    ) -> r.Mint:
        """Credit `amount` base units of `token` (administrators only)."""
        request = p.mint_request(account, token, amount, request_id=request_id)
        try:
            return r.mint_from(
                self.market_stub.Mint(request, **_admin(self._kw(timeout), admin_token))
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def get_ledger_audit(
        self, admin_token: str = "", *, timeout: float | None = None
    ) -> r.LedgerAudit:
        """The operator audit (administrators only): system balances, supply, open escrow
        reservations and every ledger invariant with whether it holds (`.passed`: all hold)."""
        try:
            return r.ledger_audit_from(
                self.market_stub.GetLedgerAudit(
                    market_pb2.GetLedgerAuditRequest(), **_admin(self._kw(timeout), admin_token)
                )
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def publish(
        self,
        readings: Iterable[p.Reading | tuple[str, str, Sequence[int], float]],
        *,
        batch: int = p.PUBLISH_BATCH,
        timeout: float | None = None,
    ) -> r.Published:
        """Stream sensor readings (`Reading`s, or (site, sensor, grid index, value) tuples) in
        messages of `batch`; the answer counts the stored, duplicate and refused ones (with reasons)."""
        return r.published_from(
            self._call(self.telemetry_stub.Publish, p.publish_requests(readings, batch), timeout)
        )

    def get_energy_map(self, name: str, *, timeout: float | None = None) -> r.EnergyMap:
        return r.energy_map_from(
            self._call(
                self.telemetry_stub.GetEnergyMap,
                telemetry_pb2.GetEnergyMapRequest(name=name),
                timeout,
            ).energy_map
        )

    def watch_energy_map(
        self, name: str, *, after_sequence: int = 0, timeout: float | None = None
    ) -> Iterator[r.EnergyMap]:
        """The live energy map `name` now, then after each change (a slow reader gets the newest
        map next); resume with the `sequence` of the last map received as `after_sequence`."""
        for message in self._stream(
            self.telemetry_stub.WatchEnergyMap,
            telemetry_pb2.WatchEnergyMapRequest(name=name, after_sequence=after_sequence),
            timeout,
        ):
            yield r.energy_map_from(message.energy_map)

    def watch_events(self, site: str, *, timeout: float | None = None) -> Iterator[r.SiteEvent]:
        """What the rules of `site` ("sites/{id}") find on its map updates, as it happens."""
        for message in self._stream(
            self.telemetry_stub.WatchEvents, telemetry_pb2.WatchEventsRequest(site=site), timeout
        ):
            yield r.site_event_from(message.event)

    def create_api_key(
        self,
        principal: str,
        roles: Sequence[str],
        *,
        ttl_seconds: int = 0,
        description: str = "",
        accounts: Sequence[str] = (),
        tenant: str = "",
        timeout: float | None = None,
    ) -> r.CreatedApiKey:
        """A new API key of the caller's tenant for `principal` with `roles`, acting and paying
        for `accounts` ("alice" or market/accounts/alice; the first is the default); its `secret` is shown
        only here (send it as `api_key=` or `authorization: Bearer <secret>`)."""
        request = keys_pb2.CreateApiKeyRequest(
            principal=principal,
            roles=list(roles),
            ttl_seconds=ttl_seconds,
            description=description,
            accounts=[p.account_name(a) for a in accounts],
            tenant=tenant,
        )
        return r.created_api_key_from(self._call(self.keys_stub.CreateApiKey, request, timeout))

    def list_api_keys(
        self, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> r.ApiKeyPage:
        request = keys_pb2.ListApiKeysRequest(page_size=page_size, page_token=page_token)
        return r.api_key_page_from(self._call(self.keys_stub.ListApiKeys, request, timeout))

    def revoke_api_key(self, name: str, *, timeout: float | None = None) -> r.ApiKey:
        request = keys_pb2.RevokeApiKeyRequest(name=name)
        return r.api_key_from(self._call(self.keys_stub.RevokeApiKey, request, timeout).api_key)

    def issue_token(self, *, timeout: float | None = None) -> r.Token:
        """A short-lived JWT for this client's API key (OAuth2 client credentials): pass its
        `access_token` as `api_key=` where a token is preferred to the key itself."""
        request = keys_pb2.IssueTokenRequest()
        return r.token_from(self._call(self.keys_stub.IssueToken, request, timeout))

    # names of the first SDK, kept: the RPC-named methods above and below are the canonical ones
    def get_checkpoint(self, *, timeout: float | None = None) -> proof_pb2.Checkpoint:
        return self.checkpoint(timeout=timeout)

    def get_consistency_proof(
        self, first: int, second: int, *, timeout: float | None = None
    ) -> list[bytes]:
        return self.consistency_proof(first, second, timeout=timeout)

    def get_public_key(self, *, timeout: float | None = None) -> bytes:
        return self.public_key(timeout=timeout)

    def ledger_audit(self, admin_token: str = "", *, timeout: float | None = None) -> r.LedgerAudit:
        return self.get_ledger_audit(admin_token, timeout=timeout)


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
        api_key: str | None = None,
    ) -> None:
        super().__init__(target, timeout, metadata, api_key)
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
        self.telemetry_stub = telemetry_pb2_grpc.TelemetryServiceStub(self.channel)
        self.keys_stub = keys_pb2_grpc.KeyServiceStub(self.channel)
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

    async def list_models(self, *, timeout: float | None = None) -> list[r.Model]:
        request = diffusion_pb2.ListModelsRequest(page_size=1000)
        return r.models_from(await self._call(self.diffusion_stub.ListModels, request, timeout))

    async def sample(
        self, request: diffusion_pb2.SampleRequest, *, timeout: float | None = None
    ) -> AsyncIterator[r.SampleProgress | r.SampleResult]:
        async for message in self._stream(self.diffusion_stub.Sample, request, timeout):
            yield r.sample_event_from(message)

    async def reconstruct(
        self,
        observed: np.ndarray,
        mask: np.ndarray,
        *,
        timeout: float | None = None,
        **options: Any,
    ) -> r.Reconstruction:
        return r.reconstruction_from(
            await self._call(
                self.diffusion_stub.Reconstruct,
                reconstruct_request(observed, mask, **options),
                timeout,
            )
        )

    async def create_proof(self, *, timeout: float | None = None, **kwargs: Any) -> r.Proof:
        request = p.create_proof_request(**kwargs)
        response = await self._call(self.proof_stub.CreateProof, request, timeout)
        return r.proof_from(response.proof, response.reward_pft, response.reward_reason)

    async def get_proof(self, name: str, *, timeout: float | None = None) -> r.Proof:
        request = proof_pb2.GetProofRequest(name=name)
        return r.proof_from((await self._call(self.proof_stub.GetProof, request, timeout)).proof)

    async def checkpoint(self, *, timeout: float | None = None) -> proof_pb2.Checkpoint:
        return (
            await self._call(
                self.proof_stub.GetCheckpoint, proof_pb2.GetCheckpointRequest(), timeout
            )
        ).checkpoint

    async def public_key(self, *, timeout: float | None = None) -> bytes:
        return (
            await self._call(self.proof_stub.GetPublicKey, proof_pb2.GetPublicKeyRequest(), timeout)
        ).public_key

    async def call(self, method: Any, request: Any, *, timeout: float | None = None) -> Any:
        """Any RPC through this client's deadlines, metadata and typed errors (raw messages)."""
        return await self._call(method, request, timeout)

    async def list_proofs(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
        **filters: Any,
    ) -> r.ProofPage:
        request = proof_pb2.ListProofsRequest(page_size=page_size, page_token=page_token, **filters)
        return r.proof_page_from(await self._call(self.proof_stub.ListProofs, request, timeout))

    async def list_policies(self, *, timeout: float | None = None) -> list[r.Policy]:
        request = proof_pb2.ListPoliciesRequest()
        return r.policies_from(await self._call(self.proof_stub.ListPolicies, request, timeout))

    async def consistency_proof(
        self, first: int, second: int, *, timeout: float | None = None
    ) -> list[bytes]:
        request = proof_pb2.GetConsistencyProofRequest(
            first_tree_size=first, second_tree_size=second
        )
        return list(
            (await self._call(self.proof_stub.GetConsistencyProof, request, timeout)).hashes
        )

    async def detect_regime(
        self,
        frames: Sequence[np.ndarray],
        frame_interval: float,
        *,
        model: str = "",
        timeout: float | None = None,
    ) -> r.Regime:
        return r.regime_from(
            await self._call(
                self.predict_stub.DetectRegime,
                p.detect_regime_request(frames, frame_interval, model),
                timeout,
            )
        )

    async def list_energy_models(self, *, timeout: float | None = None) -> list[r.EnergyModel]:
        return r.energy_models_from(
            await self._call(
                self.diffusion_stub.ListEnergyModels,
                diffusion_pb2.ListEnergyModelsRequest(),
                timeout,
            )
        )

    async def get_pool(self, name: str = p.DEFAULT_POOL, *, timeout: float | None = None) -> r.Pool:
        return r.pool_from(
            (
                await self._call(
                    self.market_stub.GetPool, market_pb2.GetPoolRequest(name=name), timeout
                )
            ).pool
        )

    async def quote(
        self,
        token_in: str,
        *,
        amount_in: int | None = None,
        amount_out: int | None = None,
        pool: str = p.DEFAULT_POOL,
        timeout: float | None = None,
    ) -> r.Quote:
        return r.quote_from(
            await self._call(
                self.market_stub.Quote,
                p.quote_request(token_in, amount_in=amount_in, amount_out=amount_out, pool=pool),
                timeout,
            )
        )

    async def swap(
        self, account: str, token_in: str, *, timeout: float | None = None, **options: Any
    ) -> r.Swap:
        request = p.swap_request(account, token_in, **options)
        return r.swap_from(
            await self._call(self.market_stub.Swap, request, timeout), request.token_in
        )

    async def add_liquidity(
        self,
        account: str,
        amount_ceu: int,
        amount_pft: int,
        *,
        timeout: float | None = None,
        **options: Any,
    ) -> r.Liquidity:
        request = p.add_liquidity_request(account, amount_ceu, amount_pft, **options)
        return r.add_liquidity_from(
            await self._call(self.market_stub.AddLiquidity, request, timeout)
        )

    async def remove_liquidity(
        self, account: str, shares: int, *, timeout: float | None = None, **options: Any
    ) -> r.Liquidity:
        request = p.remove_liquidity_request(account, shares, **options)
        return r.remove_liquidity_from(
            await self._call(self.market_stub.RemoveLiquidity, request, timeout), shares
        )

    async def get_balance(self, account: str, *, timeout: float | None = None) -> dict[str, int]:
        request = market_pb2.GetBalanceRequest(account=p.account_name(account))
        return r.balances_from(await self._call(self.market_stub.GetBalance, request, timeout))

    async def list_transactions(
        self,
        account: str,
        *,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> r.TransactionPage:
        request = market_pb2.ListTransactionsRequest(
            account=p.account_name(account), page_size=page_size, page_token=page_token
        )
        return r.transactions_from(
            await self._call(self.market_stub.ListTransactions, request, timeout)
        )

    async def mint(
        self,
        account: str,
        token: str,
        amount: int,
        admin_token: str = "",
        *,
        request_id: str = "",
        timeout: float | None = None,
    ) -> r.Mint:
        request = p.mint_request(account, token, amount, request_id=request_id)
        try:
            return r.mint_from(
                await self.market_stub.Mint(request, **_admin(self._kw(timeout), admin_token))
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def get_ledger_audit(
        self, admin_token: str = "", *, timeout: float | None = None
    ) -> r.LedgerAudit:
        try:
            return r.ledger_audit_from(
                await self.market_stub.GetLedgerAudit(
                    market_pb2.GetLedgerAuditRequest(), **_admin(self._kw(timeout), admin_token)
                )
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def publish(
        self,
        readings: Iterable[p.Reading | tuple[str, str, Sequence[int], float]],
        *,
        batch: int = p.PUBLISH_BATCH,
        timeout: float | None = None,
    ) -> r.Published:
        return r.published_from(
            await self._call(
                self.telemetry_stub.Publish, p.publish_requests(readings, batch), timeout
            )
        )

    async def get_energy_map(self, name: str, *, timeout: float | None = None) -> r.EnergyMap:
        return r.energy_map_from(
            (
                await self._call(
                    self.telemetry_stub.GetEnergyMap,
                    telemetry_pb2.GetEnergyMapRequest(name=name),
                    timeout,
                )
            ).energy_map
        )

    async def watch_energy_map(
        self, name: str, *, after_sequence: int = 0, timeout: float | None = None
    ) -> AsyncIterator[r.EnergyMap]:
        async for message in self._stream(
            self.telemetry_stub.WatchEnergyMap,
            telemetry_pb2.WatchEnergyMapRequest(name=name, after_sequence=after_sequence),
            timeout,
        ):
            yield r.energy_map_from(message.energy_map)

    async def watch_events(
        self, site: str, *, timeout: float | None = None
    ) -> AsyncIterator[r.SiteEvent]:
        async for message in self._stream(
            self.telemetry_stub.WatchEvents, telemetry_pb2.WatchEventsRequest(site=site), timeout
        ):
            yield r.site_event_from(message.event)

    async def create_api_key(
        self,
        principal: str,
        roles: Sequence[str],
        *,
        ttl_seconds: int = 0,
        description: str = "",
        accounts: Sequence[str] = (),
        tenant: str = "",
        timeout: float | None = None,
    ) -> r.CreatedApiKey:
        request = keys_pb2.CreateApiKeyRequest(
            principal=principal,
            roles=list(roles),
            ttl_seconds=ttl_seconds,
            description=description,
            accounts=[p.account_name(a) for a in accounts],
            tenant=tenant,
        )
        return r.created_api_key_from(
            await self._call(self.keys_stub.CreateApiKey, request, timeout)
        )

    async def list_api_keys(
        self, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> r.ApiKeyPage:
        request = keys_pb2.ListApiKeysRequest(page_size=page_size, page_token=page_token)
        return r.api_key_page_from(await self._call(self.keys_stub.ListApiKeys, request, timeout))

    async def revoke_api_key(self, name: str, *, timeout: float | None = None) -> r.ApiKey:
        request = keys_pb2.RevokeApiKeyRequest(name=name)
        return r.api_key_from(
            (await self._call(self.keys_stub.RevokeApiKey, request, timeout)).api_key
        )

    async def issue_token(self, *, timeout: float | None = None) -> r.Token:
        request = keys_pb2.IssueTokenRequest()
        return r.token_from(await self._call(self.keys_stub.IssueToken, request, timeout))

    async def get_checkpoint(self, *, timeout: float | None = None) -> proof_pb2.Checkpoint:
        return await self.checkpoint(timeout=timeout)

    async def get_consistency_proof(
        self, first: int, second: int, *, timeout: float | None = None
    ) -> list[bytes]:
        return await self.consistency_proof(first, second, timeout=timeout)

    async def get_public_key(self, *, timeout: float | None = None) -> bytes:
        return await self.public_key(timeout=timeout)

    async def ledger_audit(
        self, admin_token: str = "", *, timeout: float | None = None
    ) -> r.LedgerAudit:
        return await self.get_ledger_audit(admin_token, timeout=timeout)


def _admin(kw: dict[str, Any], admin_token: str) -> dict[str, Any]:
    """Call options with `authorization: Bearer <admin_token>` in place of the client's own
    credential ('' keeps the client's: an admin API key)."""
    if not admin_token:
        return kw
    kept = tuple((k, v) for k, v in kw["metadata"] if k.lower() != "authorization")
    return {**kw, "metadata": (*kept, ("authorization", f"Bearer {admin_token}"))}


def reconstruct_request(
    observed: np.ndarray, mask: np.ndarray, **options: Any
) -> diffusion_pb2.ReconstructRequest:
    observed = np.asarray(observed)
    mask = np.asarray(mask)
    return diffusion_pb2.ReconstructRequest(
        shape=list(observed.shape),
        observed=to_field(np.where(mask != 0, observed, 0).astype(np.float32)),
        mask=to_field((mask != 0).astype(np.int8)),
        **options,
    )
