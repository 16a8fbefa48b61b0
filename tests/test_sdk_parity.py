"""SDK parity: every RPC of the contract has one method on `Client` and on `AsyncClient`, named
after the RPC in snake_case, with the same parameters on both twins, awaitable on the async one —
the list comes from the protos' descriptors, so a new RPC without its methods fails here. Then
the methods the first SDK lacked (market, regime, energy models) run against a real server on
both twins, and their decoded results are checked against the raw answers of the same calls."""

from __future__ import annotations

import asyncio
import inspect
import re

import numpy as np
import pytest
from helpers import ServerThread

from idf.client import AsyncClient, Client, InvalidArgumentError, NotFoundError, to_field
from idf.server.auth import contract_modules
from idf.v1 import diffusion_pb2, market_pb2, predict_pb2

MODULES = tuple(contract_modules())  # every idf.v1 *_pb2, found (idf.server.auth)
ADMIN_TOKEN = "parity-admin"


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def rpcs() -> list[tuple[str, str, bool]]:
    """(service, method name in snake_case, server streaming) for every RPC in idf.v1."""
    out = []
    for module in MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            out += [(service.full_name, snake(m.name), m.server_streaming) for m in service.methods]
    return out


def missing(sync_cls: type, async_cls: type) -> list[str]:
    """What breaks parity: a method absent from a twin, not awaitable (or async-iterable) on the
    async twin, or with different parameters on the two."""
    problems = []
    for service, name, streaming in rpcs():
        a, b = getattr(sync_cls, name, None), getattr(async_cls, name, None)
        if a is None or b is None:
            problems.append(
                f"{service}.{name}: missing on {'Client' if a is None else 'AsyncClient'}"
            )
            continue
        if not streaming and not inspect.iscoroutinefunction(b):
            problems.append(f"{service}.{name}: AsyncClient's is not a coroutine function")
        if streaming and not (
            inspect.isasyncgenfunction(b)
            or "AsyncIterator" in str(inspect.signature(b).return_annotation)
        ):
            problems.append(f"{service}.{name}: AsyncClient's does not stream asynchronously")
        if list(inspect.signature(a).parameters.items()) != list(
            inspect.signature(b).parameters.items()
        ):
            problems.append(
                f"{service}.{name}: parameters differ ({inspect.signature(a)} vs {inspect.signature(b)})"
            )
    return problems


# Signed artefacts handed verbatim to `verify_proof` (its signature covers the message's bytes).
RAW_BY_DESIGN = {"get_checkpoint"}


def test_every_rpc_method_answers_decoded_results():
    """No typed method hands back a protobuf message (each result keeps it in `raw`), but for the
    signed checkpoint."""
    raw = []
    for cls in (Client, AsyncClient):
        for service, name, _ in rpcs():
            answer = str(inspect.signature(getattr(cls, name)).return_annotation)
            if "_pb2." in answer and name not in RAW_BY_DESIGN:
                raw.append(f"{cls.__name__}.{name} -> {answer}")
    assert raw == []


def test_the_rpc_list_comes_from_the_protos():
    names = {n for _, n, _ in rpcs()}
    assert {
        "predict",
        "detect_regime",
        "sample",
        "get_pool",
        "swap",
        "create_proof",
        "get_consistency_proof",
        "watch_energy_map",
        "watch_events",
        "create_api_key",
    } <= names and len(names) == 30


def test_every_rpc_has_a_method_on_both_twins():
    assert missing(Client, AsyncClient) == []


def test_the_parity_check_catches_drift():
    """Negative controls: a twin without a method, or with other parameters, is reported."""

    class Lacking(AsyncClient):
        pass

    Lacking.get_pool = None  # type: ignore[assignment]
    assert any("get_pool: missing on AsyncClient" in p for p in missing(Client, Lacking))

    class Drifted(AsyncClient):
        async def quote(self, token_in: str, *, amount_in: int | None = None) -> None:  # type: ignore[override]
            pass

    assert any("quote: parameters differ" in p for p in missing(Client, Drifted))

    class Blocking(AsyncClient):
        def get_balance(self, account: str, *, timeout: float | None = None) -> dict[str, int]:  # type: ignore[override]
            return {}

    assert any(
        "get_balance: AsyncClient's is not a coroutine function" in p
        for p in missing(Client, Blocking)
    )


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory):
    server = ServerThread(data_dir=tmp_path_factory.mktemp("parity"), admin_token=ADMIN_TOKEN)
    yield server
    server.stop()


def _market_calls(c: Client) -> dict[str, object]:
    """Mint, deposit, quote, swap, withdraw, balance and history for one fresh account."""
    out: dict[str, object] = {}
    out["mint_ceu"] = c.mint("parity", "CEU", 10**6, ADMIN_TOKEN, request_id="m1")
    out["mint_pft"] = c.mint("parity", "pft", 4 * 10**6, ADMIN_TOKEN, request_id="m2")
    out["deposit"] = c.add_liquidity("parity", 10**5, 4 * 10**5, request_id="l1")
    out["quote"] = c.quote("CEU", amount_in=1000)
    out["swap"] = c.swap("parity", "CEU", amount_in=1000, request_id="s1")
    out["pool"] = c.get_pool()
    out["withdraw"] = c.remove_liquidity("parity", out["deposit"].shares // 2, request_id="r1")
    out["balance"] = c.get_balance("parity")
    out["history"] = c.list_transactions("market/accounts/parity", page_size=10)
    out["audit"] = c.get_ledger_audit(ADMIN_TOKEN)
    return out


def test_market_methods_decode_what_the_server_answers(admin_server):
    with Client(admin_server.target, max_attempts=1) as c:
        got = _market_calls(c)
        raw_balance = c.call(
            c.market_stub.GetBalance, market_pb2.GetBalanceRequest(account="market/accounts/parity")
        )
        raw_pool = c.call(
            c.market_stub.GetPool, market_pb2.GetPoolRequest(name="market/pools/ceu-pft")
        ).pool
    assert got["mint_ceu"].token == "CEU" and got["mint_ceu"].balance == 10**6
    assert got["mint_pft"].token == "PFT" and got["mint_pft"].balance == 4 * 10**6
    deposit, quote, swap, withdraw = got["deposit"], got["quote"], got["swap"], got["withdraw"]
    assert (deposit.amount_ceu, deposit.amount_pft) == (10**5, 4 * 10**5) and deposit.shares > 0
    # the quote prices the very swap that follows it (nothing changed the pool in between)
    assert (swap.token_in, swap.amount_in, swap.token_out, swap.amount_out) == (
        "CEU",
        1000,
        "PFT",
        quote.amount_out,
    )
    assert swap.pool.reserve_ceu == deposit.pool.reserve_ceu + 1000 == got["pool"].reserve_ceu
    latest = withdraw.pool  # the pool after the last call: what a raw GetPool reads now
    assert (
        latest.name,
        latest.reserve_ceu,
        latest.reserve_pft,
        latest.total_shares,
        latest.fee_bps,
    ) == (
        raw_pool.name,
        raw_pool.reserve_ceu,
        raw_pool.reserve_pft,
        raw_pool.total_shares,
        raw_pool.fee_bps,
    )
    assert (
        withdraw.shares == deposit.shares // 2
        and withdraw.pool.total_shares == deposit.pool.total_shares - withdraw.shares
    )
    # every unit accounted for: minted - deposited - paid + received + withdrawn
    assert got["balance"] == {
        market_pb2.Token.Name(b.token).removeprefix("TOKEN_"): b.amount
        for b in raw_balance.balances
    }
    assert got["balance"]["CEU"] == 10**6 - 10**5 - 1000 + withdraw.amount_ceu
    assert got["balance"]["PFT"] == 4 * 10**6 - 4 * 10**5 + swap.amount_out + withdraw.amount_pft
    kinds = [t.kind for t in got["history"].transactions]
    assert len(kinds) == 5 and swap.transaction_id in {t.id for t in got["history"].transactions}
    assert got["audit"].passed and all(i.passed for i in got["audit"].invariants)
    assert got["audit"].supply == {
        "CEU": 10**6,
        "PFT": 4 * 10**6,
        "LP": latest.total_shares,
    }  # LP shares are a token too


def test_the_async_twin_gives_the_same_answers(admin_server):
    async def run() -> tuple:
        async with AsyncClient(admin_server.target, max_attempts=1) as c:
            return (
                await c.get_pool(),
                await c.quote("PFT", amount_out=10),
                await c.list_energy_models(),
                await c.get_balance("nobody"),
                await c.list_policies(),
            )

    with Client(admin_server.target, max_attempts=1) as c:
        expected = (
            c.get_pool(),
            c.quote("PFT", amount_out=10),
            c.list_energy_models(),
            c.get_balance("nobody"),
            c.list_policies(),
        )
    got = asyncio.run(run())
    assert got == expected


def test_energy_models_and_regimes_decode(client: Client):
    models = {m.name: m for m in client.list_energy_models()}
    raw = client.call(
        client.diffusion_stub.ListEnergyModels, diffusion_pb2.ListEnergyModelsRequest()
    )
    assert set(models) == {m.name for m in raw.energy_models}
    assert models["ising"].samplers == ["gibbs"] and "reverse-diffusion" in models["phi4"].samplers
    assert [p.name for p in models["phi4"].parameters] == ["kappa", "a", "b", "h"] and models[
        "phi4"
    ].constraints == ["total"]
    frames = [np.full((16, 16), 0.5, dtype=np.float32)] * 4
    regime = client.detect_regime(frames, 1.0)
    raw_regime = client.call(
        client.predict_stub.DetectRegime,
        predict_pb2.DetectRegimeRequest(frames=[to_field(f) for f in frames], frame_interval=1.0),
    )

    def name(v: int) -> str:
        return predict_pb2.Regime.Name(v).removeprefix("REGIME_").lower()

    assert regime.regime == name(raw_regime.regime) and regime.model == raw_regime.model
    assert regime.probabilities == {name(p.regime): p.probability for p in raw_regime.probabilities}
    assert regime.frames_needed == raw_regime.frames_needed and regime.features == dict(
        raw_regime.features
    )


def test_telemetry_methods_reach_the_server(client: Client):
    """A server with no site configured: Publish refuses every reading with its reason (and
    goes on), a map of no site is NOT_FOUND on both methods (tests/test_telemetry.py has sites)."""
    out = client.publish([("sites/a", "t1", (0, 0), 1.0), ("sites/a", "t 2", (0, 0), 1.0)])
    assert (out.accepted_count, out.rejected_count, out.last_sequence) == (0, 2, 0)
    assert [(x.position, x.field) for x in out.rejections] == [(0, "site"), (1, "sensor")]
    with pytest.raises(NotFoundError):
        client.get_energy_map("sites/a/energyMap")
    with pytest.raises(NotFoundError):
        next(iter(client.watch_energy_map("sites/a/energyMap")))
    with pytest.raises(InvalidArgumentError):
        client.get_energy_map("sites/a/maps/heat")


def test_sample_request_builds_what_the_cli_used_to_build_by_hand():
    from idf.client import sample_request

    field = np.arange(16, dtype=np.float32).reshape(4, 4)
    built = sample_request(
        "phi4",
        (4, 4),
        parameters={"a": -0.5},
        sampler="replica-exchange",
        temperature=0.7,
        steps=50,
        burn_in=5,
        step_size=0.02,
        temperatures=(0.7, 1.4),
        count=3,
        seed=9,
        external_field=field,
        constraints=[("total", 1.0, 1e-6)],
        dtype="float64",
    )
    by_hand = diffusion_pb2.SampleRequest(
        energy_model=diffusion_pb2.EnergyModelSpec(
            name="phi4",
            parameters={"a": -0.5},
            external_field=to_field(field),
            constraints=[diffusion_pb2.Constraint(name="total", target=1.0, tolerance=1e-6)],
        ),
        shape=[4, 4],
        sample_count=3,
        seed=9,
        dtype=2,
        sampler=diffusion_pb2.SamplerSpec(
            kind=diffusion_pb2.SAMPLER_KIND_REPLICA_EXCHANGE,
            temperature=0.7,
            steps=50,
            burn_in=5,
            step_size=0.02,
            temperatures=[0.7, 1.4],
        ),
    )
    assert built == by_hand
    assert (
        sample_request("ising", (4, 4)).sampler.kind == diffusion_pb2.SAMPLER_KIND_UNSPECIFIED
    )  # the model's default
    for bad in ({"sampler": "metropolis"}, {"dtype": "int8"}):
        with pytest.raises(ValueError):
            sample_request("phi4", (4, 4), **bad)
