"""Issue 12, money: rewards that cannot be farmed, escrow that survives a crash, idempotency keys
scoped to (account, operation) with a fingerprint, bounded page tokens, and the operator audit.
Real servers on loopback (a thread, or `idf serve` as a child process), real SQLite, and real
PostgreSQL when it answers (each test in a private database: the `postgres_url` fixture)."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from google.protobuf import timestamp_pb2
from helpers import HANG_S, ServerProcess, ServerThread, wait_until

from idf.client import Client, IdfError, InvalidArgumentError, PermissionDeniedError, results
from idf.server.metering import ESCROW, TREASURY, Metering, price
from idf.store.ledger import ISSUANCE, Ledger, invariants
from idf.v1 import market_pb2 as m

ADMIN_TOKEN = "s3cret"
ADMIN = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
POOL = "market/pools/ceu-pft"
ALICE, BOB = "market/accounts/alice", "market/accounts/bob"
CEU, PFT = m.TOKEN_CEU, m.TOKEN_PFT


# -- helpers -------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request):
    """None (SQLite under the data dir), or the URL of a private PostgreSQL database (the
    `postgres_url` fixture: skipped only when no server can be connected to, a failure under
    IDF_REQUIRE_POSTGRES=1, every other error a failure)."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_url")


def _deadline(seconds: float = 60) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(time.time_ns() + int(seconds * 1e9))
    return ts


def _mint(c: Client, account: str, token: int, amount: int, rid: str) -> m.MintResponse:
    request = m.MintRequest(
        account=account, amount=m.TokenAmount(token=token, amount=amount), request_id=rid
    )
    try:
        return c.market_stub.Mint(request, metadata=ADMIN, timeout=HANG_S)
    except grpc.RpcError as e:
        from idf.client.errors import from_rpc_error

        raise from_rpc_error(e) from None


def _balances(c: Client, account: str) -> dict[int, int]:
    return {
        b.token: b.amount
        for b in c.call(c.market_stub.GetBalance, m.GetBalanceRequest(account=account)).balances
    }


def _proof(c: Client, **kwargs) -> tuple[results.Proof, int, str]:
    """CreateProof; returns (proof, PFT paid, reason) from the answer's trailing metadata."""
    from idf.client._protocol import create_proof_request

    response, call = c.proof_stub.CreateProof.with_call(
        create_proof_request(**kwargs), metadata=c.metadata, timeout=60
    )
    trailers = dict(call.trailing_metadata() or ())
    return (
        results.proof_from(response.proof),
        int(trailers.get("x-idf-reward-pft", -1)),
        trailers.get("x-idf-reward-reason", ""),
    )


def _audit_ok(audit) -> None:
    assert audit.passed, [(i.name, i.detail) for i in audit.invariants if not i.passed]


def _system(audit, account: str, token: int = CEU) -> int:
    return sum(b.amount for b in audit.system_balances if b.account == account and b.token == token)


@pytest.fixture()
def metered(tmp_path):
    s = ServerThread(
        data_dir=tmp_path, admin_token=ADMIN_TOKEN, metering=True, ceu_per_million_site_updates=1000
    )
    yield s
    s.stop()


# -- 1. rewards that cannot be farmed ---------------------------------------------------------
def test_self_comparison_and_unbilled_fields_earn_nothing(metered):
    """Issue item 3: prediction == reference under reconstruction-default minted 4,000 PFT a call."""
    ref = np.random.default_rng(1).random((32, 32)) + 1
    with Client(metered.target, max_attempts=1, metadata=[("x-idf-account", ALICE)]) as c:
        for i in range(20):
            proof, paid, reason = _proof(
                c, prediction=ref, reference=ref, policy="reconstruction-default"
            )
            assert proof.verdict == "PASS"  # the proof is still created and logged
            assert (paid, reason) == (0, "SELF_COMPARISON")
        # a field the service never produced, against anything: nothing either
        _, paid, reason = _proof(
            c, prediction=ref * 1.001, reference=ref, policy="reconstruction-default"
        )
        assert (paid, reason) == (0, "NOT_A_BILLED_OUTPUT")
        assert c.checkpoint().tree_size == 21
    ledger = metered.running.ledger
    assert ledger.balances(ALICE) == {} and ledger.balances(ISSUANCE) == {}


def test_no_rewards_without_metering(tmp_path):
    s = ServerThread(data_dir=tmp_path)  # the embedded default: metering off
    try:
        ref = np.random.default_rng(2).random((16, 16)) + 1
        with Client(s.target, max_attempts=1, metadata=[("x-idf-account", ALICE)]) as c:
            _, paid, reason = _proof(c, prediction=ref * 1.001, reference=ref)
        assert (paid, reason) == (0, "METERING_OFF")
        assert s.running.ledger.balances(ALICE) == {}
    finally:
        s.stop()


def test_rewards_only_for_the_callers_billed_outputs_once_and_capped(tmp_path):
    # 100 PFT per CEU: the cap of a 41-CEU call is 4,100 PFT, above one proof's reward, so the
    # formula and the per-call cap can both be seen
    s = ServerThread(
        data_dir=tmp_path, admin_token=ADMIN_TOKEN, metering=True, reward_pft_per_ceu=100.0
    )
    try:
        with Client(s.target, max_attempts=1) as admin:
            _mint(admin, ALICE, CEU, 10_000, "fund-alice")
        with (
            Client(s.target, max_attempts=1, metadata=[("x-idf-account", ALICE)]) as alice,
            Client(s.target, max_attempts=1, metadata=[("x-idf-account", BOB)]) as bob,
        ):
            forecast = alice.predict(np.ones((64, 64)) + np.linspace(0, 1, 64), 10, diffusivity=0.1)
            charged = forecast.usage.charged_ceu
            assert charged == price(64 * 64 * 10, 1000) == 41
            frames = [np.asarray(f) for f in forecast.frames]
            truth = [f * 1.0005 for f in frames]  # "ground truth" the service did not produce
            # another account presenting Alice's output earns nothing
            assert _proof(bob, prediction=frames[0], reference=truth[0])[1:] == (
                0,
                "NOT_CALLERS_OUTPUT",
            )
            # a reference that is itself an output of this service earns nothing
            assert _proof(alice, prediction=frames[0], reference=frames[1])[1:] == (
                0,
                "REFERENCE_IS_SERVICE_OUTPUT",
            )
            paid = []
            for frame, ref in zip(frames, truth):
                proof, amount, reason = _proof(alice, prediction=frame, reference=ref)
                assert proof.verdict == "PASS"
                nrmse = proof.metrics["nrmse"]
                formula = 1000 + int(1000 * (1 - nrmse / 0.1))
                assert (amount, reason) in (
                    (formula, "REWARDED"),
                    (0, "CALL_CAP_REACHED"),
                ) or reason == "REWARD_CAPPED", reason
                paid.append(amount)
            # each output pays at most once
            assert _proof(alice, prediction=frames[0], reference=truth[0] * 1.0001)[1:] == (
                0,
                "ALREADY_REWARDED",
            )
        assert (
            paid[0] > 0 and sum(paid) == 41 * 100
        )  # the call's cap, reached exactly: floor(41 CEU * 100 PFT/CEU)
        assert s.running.ledger.balances(ALICE)["PFT"] == 4100
        assert s.running.ledger.balances(BOB) == {}
    finally:
        s.stop()


def test_reward_cap_per_ceu(tmp_path):
    s = ServerThread(
        data_dir=tmp_path, admin_token=ADMIN_TOKEN, metering=True, reward_pft_per_ceu=0.5
    )
    try:
        with Client(s.target, max_attempts=1) as admin:
            _mint(admin, ALICE, CEU, 1000, "fund")
        with Client(s.target, max_attempts=1, metadata=[("x-idf-account", ALICE)]) as alice:
            forecast = alice.predict(
                np.random.default_rng(4).random((16, 16)) + 1, 1, diffusivity=0.1
            )
            assert forecast.usage.charged_ceu == 1  # ceil(256 / 1000)
            frame = np.asarray(forecast.frames[0])
            _, amount, reason = _proof(alice, prediction=frame, reference=frame * 1.001)
        assert (amount, reason) == (
            0,
            "CALL_CAP_REACHED",
        )  # floor(1 CEU * 0.5) = 0: a rebate never rounds up
    finally:
        s.stop()


# -- 2. escrow recovery ---------------------------------------------------------------------
def test_expired_reservations_are_refunded_by_the_sweeper(tmp_path):
    s = ServerThread(data_dir=tmp_path, admin_token=ADMIN_TOKEN, metering=True, reservation_ttl=0.5)
    try:
        with Client(s.target, max_attempts=1) as admin:
            _mint(admin, ALICE, CEU, 1000, "fund")
        # a call that reserved and never settled (its process hung): the same ledger, a real Metering
        stuck = Metering(s.running.ledger, 1000, True, node="another-node", ttl=0.5)
        meter = stuck.reserve(ALICE, 300_000)  # 300 CEU
        assert s.running.ledger.balances(ALICE)["CEU"] == 700
        assert s.running.ledger.audit()["open_reservations"] == {"count": 1, "total": 300}
        # the sweeper runs on its own schedule: wait for the refund (60 s only bounds a hang)
        wait_until(
            lambda: s.running.ledger.balances(ALICE).get("CEU") == 1000,
            "the sweeper to refund the expired reservation",
        )
        audit = s.running.ledger.audit()
        assert (
            s.running.ledger.balances(ALICE)["CEU"] == 1000
            and audit["open_reservations"]["count"] == 0
        )
        assert (ESCROW, "CEU") not in audit["balances"]
        # the late settlement charges nothing and bills no output: the CEU went back already
        assert stuck.settle(meter, 300_000, [np.ones(4)]) == 0
        assert s.running.ledger.balances(TREASURY) == {}
        assert all(i.passed for i in invariants(s.running.ledger.audit()))
    finally:
        s.stop()


def test_start_up_refunds_what_this_node_left_open(tmp_path):
    ledger = Ledger(str(tmp_path / "idf.sqlite3"))
    from idf.server import market

    market.mint(ledger, ALICE, "CEU", 500, request_id="fund")
    Metering(ledger, 1000, True, node="node-a", ttl=3600).reserve(
        ALICE, 200_000
    )  # this node, not expired
    Metering(ledger, 1000, True, node="node-b", ttl=3600).reserve(
        ALICE, 100_000
    )  # another live node
    ledger.close()
    s = ServerThread(data_dir=tmp_path, admin_token=ADMIN_TOKEN, metering=True, node_id="node-a")
    try:
        audit = s.running.ledger.audit()
        assert (
            s.running.ledger.balances(ALICE)["CEU"] == 400
        )  # node-a's 200 back; node-b's 100 still reserved
        assert audit["open_reservations"] == {"count": 1, "total": 100}
        assert all(i.passed for i in invariants(audit))
    finally:
        s.stop()


def _predict_load(target: str, stop: threading.Event, counts: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    with Client(target, max_attempts=1, timeout=60, metadata=[("x-idf-account", ALICE)]) as c:
        while not stop.is_set():
            try:
                c.predict(
                    rng.random((64, 64)), 20, diffusivity=0.1, substeps=int(rng.integers(1, 8))
                )
                counts[seed] += 1
            except IdfError:
                pass  # admission refusals while loaded; and the kill itself
            except grpc.RpcError:
                pass


@pytest.mark.slow
def test_sigkill_under_metered_load_leaves_nothing_in_escrow(tmp_path):
    """Issue item 4: SIGKILL during metered load left 16,384 CEU in escrow forever."""
    data = tmp_path / "data"
    env = {
        "IDF_DATA_DIR": str(data),
        "IDF_ADMIN_TOKEN": ADMIN_TOKEN,
        "IDF_METERING": "true",
        "IDF_NODE_ID": "crash-node",
    }
    minted = 10**9
    server = ServerProcess(env=env)
    try:
        with Client(server.target, max_attempts=1) as admin:
            _mint(admin, ALICE, CEU, minted, "fund")
        stop = threading.Event()
        counts = [0] * 8
        # a pool, not bare threads: an unexpected exception in a caller is raised by result() below
        pool = ThreadPoolExecutor(max_workers=8)
        callers = [pool.submit(_predict_load, server.target, stop, counts, i) for i in range(8)]
        try:
            # metered calls are settling (60 s only bounds a hang)
            wait_until(
                lambda: sum(counts) >= 10 or any(f.done() for f in callers),
                "10 settled metered calls",
            )
            server.kill()  # SIGKILL, mid-load
        finally:
            stop.set()
            pool.shutdown(wait=True)
        for f in callers:
            f.result()
    finally:
        server.kill()
    assert sum(counts) >= 10, counts
    left = Ledger(str(data / "idf.sqlite3"))
    try:
        crashed = left.audit()
    finally:
        left.close()
    # with 8 callers looping, reservations were open when the process died
    assert crashed["open_reservations"]["count"] > 0 and crashed["balances"][(ESCROW, "CEU")] > 0
    restarted = ServerProcess(env=env)
    try:
        with Client(restarted.target, max_attempts=1) as c:
            audit = c.ledger_audit(ADMIN_TOKEN).raw
            alice = _balances(c, ALICE)[CEU]
    finally:
        restarted.kill()
    _audit_ok(audit)
    assert audit.open_reservation_count == 0 and audit.open_reservation_total == 0
    assert _system(audit, ESCROW) == 0
    charged = _system(audit, TREASURY)
    assert charged > 0 and alice == minted - charged
    print(
        f"\nkilled with {crashed['open_reservations']['count']} reservations open "
        f"({crashed['open_reservations']['total']} CEU in escrow) after {sum(counts)} settled calls; "
        f"after restart: escrow 0, alice {alice} = {minted} - {charged} charged"
    )


# -- 3. operator audit --------------------------------------------------------------------
def test_ledger_audit_rpc_rest_and_cli(tmp_path):
    from typer.testing import CliRunner

    from idf.cli.main import app

    s = ServerThread(data_dir=tmp_path, admin_token=ADMIN_TOKEN, metering=True, rest_port=0)
    try:
        with Client(s.target, max_attempts=1) as c:
            _mint(c, ALICE, CEU, 10**6, "a1")
            _mint(c, ALICE, PFT, 4 * 10**6, "a2")
            c.call(
                c.market_stub.AddLiquidity,
                m.AddLiquidityRequest(
                    pool=POOL,
                    account=ALICE,
                    amount_ceu_desired=10**5,
                    amount_pft_desired=4 * 10**5,
                    deadline=_deadline(),
                    request_id="l1",
                ),
            )
            with pytest.raises(PermissionDeniedError):
                c.call(c.market_stub.GetLedgerAudit, m.GetLedgerAuditRequest())  # no token
            for token in ("wrong", f"{ADMIN_TOKEN}x", ADMIN_TOKEN[:-1]):
                with pytest.raises(PermissionDeniedError):
                    c.ledger_audit(token)
            audit = c.ledger_audit(ADMIN_TOKEN).raw
        _audit_ok(audit)
        assert {i.name for i in audit.invariants} == {
            "entries_balance",
            "balances_equal_replay",
            "holdings_equal_supply",
            "escrow_equals_open_reservations",
            "no_negative_user_balance",
        }
        assert {(s_.token, s_.amount) for s_ in audit.supply} >= {(CEU, 10**6), (PFT, 4 * 10**6)}
        assert _system(audit, POOL) == 10**5 and _system(audit, ISSUANCE) == -(10**6)
        assert audit.journal_entries == 3
        # REST: GET /v1/market:audit with the same admin header
        request = urllib.request.Request(
            f"http://127.0.0.1:{s.running.rest_port}/v1/market:audit",
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=HANG_S) as answer:
            body = json.loads(answer.read())
        assert body["passed"] is True and len(body["invariants"]) == 5
        runner = CliRunner()
        r = runner.invoke(
            app, ["market", "audit", "--server", s.target, "--admin-token", ADMIN_TOKEN, "--json"]
        )
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["passed"] is True
        r = runner.invoke(
            app, ["market", "audit", "--server", s.target, "--admin-token", ADMIN_TOKEN]
        )
        assert r.exit_code == 0 and "escrow_equals_open_reservations" in r.output
        # corrupt a balance behind the ledger's back: the audit names the broken invariants, exit 5
        db = sqlite3.connect(tmp_path / "idf.sqlite3")
        db.execute(
            "UPDATE balances SET amount = amount + 7 WHERE account = ? AND token = 'CEU'", (ALICE,)
        )
        db.commit()
        db.close()
        r = runner.invoke(
            app, ["market", "audit", "--server", s.target, "--admin-token", ADMIN_TOKEN, "--json"]
        )
        assert r.exit_code == 5
        failed = {i["name"] for i in json.loads(r.output)["invariants"] if not i["passed"]}
        assert failed == {"balances_equal_replay", "holdings_equal_supply"}
        r = runner.invoke(app, ["market", "audit", "--server", s.target, "--admin-token", "nope"])
        assert r.exit_code == 4  # refused by the server
    finally:
        s.stop()


# -- 4. idempotency keys scoped to (account, operation), with a fingerprint ------------------
def test_idempotency_keys_are_scoped_and_fingerprinted(tmp_path, database):
    s = ServerThread(data_dir=tmp_path, admin_token=ADMIN_TOKEN, database_url=database)
    try:
        with Client(s.target, max_attempts=1) as c:
            for who in (ALICE, BOB):
                _mint(c, who, CEU, 10**9, "fund-ceu")  # the same key for two accounts: two mints
                _mint(c, who, PFT, 10**9, "fund-pft")
            assert _balances(c, BOB) == {CEU: 10**9, PFT: 10**9}
            c.call(
                c.market_stub.AddLiquidity,
                m.AddLiquidityRequest(
                    pool=POOL,
                    account=ALICE,
                    amount_ceu_desired=10**8,
                    amount_pft_desired=10**8,
                    deadline=_deadline(),
                    request_id="order-1",
                ),
            )

            def swap(account: str, amount: int, rid: str = "order-1") -> m.SwapResponse:
                return c.call(
                    c.market_stub.Swap,
                    m.SwapRequest(
                        pool=POOL,
                        account=account,
                        token_in=CEU,
                        amount_in=amount,
                        deadline=_deadline(),
                        request_id=rid,
                    ),
                )

            alice = swap(ALICE, 1000)
            bob = swap(
                BOB, 1000
            )  # Bob's "order-1" is Bob's: it runs (it used to return Alice's swap)
            assert bob.transaction_id != alice.transaction_id
            assert _balances(c, BOB)[CEU] == 10**9 - 1000
            # a retry with the same parameters (a new deadline is not a new request): the first result
            assert swap(ALICE, 1000).transaction_id == alice.transaction_id
            before = s.running.ledger.audit()
            with pytest.raises(InvalidArgumentError) as info:
                swap(ALICE, 2000)
            assert (
                info.value.reason == "IDEMPOTENCY_KEY_REUSED"
                and info.value.violations[0].field == "request_id"
            )
            assert s.running.ledger.audit() == before  # refused: nothing applied
            # the same key for every other operation kind is independent (was INTERNAL: KeyError)
            _mint(c, ALICE, CEU, 5, "order-1")
            shares = _balances(c, ALICE)[m.TOKEN_LP]
            rm = c.call(
                c.market_stub.RemoveLiquidity,
                m.RemoveLiquidityRequest(
                    pool=POOL,
                    account=ALICE,
                    shares=shares // 10,
                    deadline=_deadline(),
                    request_id="order-1",
                ),
            )
            assert rm.amount_ceu > 0
            with pytest.raises(InvalidArgumentError) as info:  # a mint retried with another amount
                _mint(c, ALICE, CEU, 6, "order-1")
            assert info.value.reason == "IDEMPOTENCY_KEY_REUSED"
        audit = s.running.ledger.audit()
        assert all(i.passed for i in invariants(audit))
    finally:
        s.stop()


def test_proof_request_ids_are_scoped_by_caller(tmp_path, database):
    s = ServerThread(data_dir=tmp_path, database_url=database)
    try:
        ref = np.random.default_rng(3).random((8, 8)) + 1
        with (
            Client(s.target, max_attempts=1, metadata=[("x-idf-account", ALICE)]) as alice,
            Client(s.target, max_attempts=1, metadata=[("x-idf-account", BOB)]) as bob,
        ):
            first = alice.create_proof(prediction=ref, reference=ref, request_id="job-1")
            assert (
                alice.create_proof(prediction=ref, reference=ref, request_id="job-1").name
                == first.name
            )
            other = bob.create_proof(
                prediction=ref * 2, reference=ref, request_id="job-1"
            )  # Bob's own key
            assert other.name != first.name and other.verdict == "FAIL"
            with pytest.raises(InvalidArgumentError) as info:
                alice.create_proof(prediction=ref * 2, reference=ref, request_id="job-1")
            assert (
                info.value.reason == "IDEMPOTENCY_KEY_REUSED"
                and info.value.violations[0].field == "request_id"
            )
            assert alice.checkpoint().tree_size == 2
    finally:
        s.stop()


_OLD_LEDGER = [  # the schema as it was before keys were scoped (commit c585013)
    "CREATE TABLE balances (account TEXT NOT NULL, token TEXT NOT NULL, amount BIGINT NOT NULL, PRIMARY KEY (account, token))",
    "CREATE TABLE journal (seq BIGINT PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, request_id TEXT UNIQUE, reference TEXT NOT NULL, create_time TEXT NOT NULL, result TEXT NOT NULL)",
    "CREATE TABLE postings (seq BIGINT NOT NULL, account TEXT NOT NULL, token TEXT NOT NULL, amount BIGINT NOT NULL)",
    "CREATE TABLE pools (name TEXT PRIMARY KEY, fee_bps INTEGER NOT NULL)",
    "CREATE TABLE proof_leaves (idx BIGINT PRIMARY KEY, proof_id TEXT NOT NULL UNIQUE, record {blob} NOT NULL, signature {blob} NOT NULL,"
    " leaf_hash {blob} NOT NULL, policy TEXT NOT NULL, verdict TEXT NOT NULL, producer TEXT NOT NULL, create_time TEXT NOT NULL, request_id TEXT UNIQUE)",
]
_OLD_ROWS = [
    (
        "INSERT INTO journal VALUES (1, 'tx1', 'mint', 'order-1', '', '2025-01-01T00:00:00.000000Z', ?)",
        (json.dumps({"balance": {"amount": 700, "token": "CEU"}, "transaction_id": "tx1"}),),
    ),
    ("INSERT INTO postings VALUES (1, 'market/accounts/-issuance', 'CEU', -700)", ()),
    ("INSERT INTO postings VALUES (1, 'market/accounts/alice', 'CEU', 700)", ()),
    ("INSERT INTO balances VALUES ('market/accounts/-issuance', 'CEU', -700)", ()),
    ("INSERT INTO balances VALUES ('market/accounts/alice', 'CEU', 700)", ()),
    (
        "INSERT INTO proof_leaves VALUES (0, 'p0', ?, ?, ?, 'forecast-default', 'PASS', '', '2025-01-01T00:00:00.000000Z', 'job-1')",
        (b"{}", b"sig", b"h" * 32),
    ),
]


def test_databases_from_before_scoping_are_migrated_in_place(tmp_path, database):
    if database is None:
        db = sqlite3.connect(tmp_path / "idf.sqlite3")
        for statement in _OLD_LEDGER:
            db.execute(statement.format(blob="BLOB"))
        for sql, args in _OLD_ROWS:
            db.execute(sql, args)
        db.commit()
        db.close()
    else:
        import psycopg

        with psycopg.connect(database, autocommit=True) as conn:
            for statement in _OLD_LEDGER:
                conn.execute(statement.format(blob="BYTEA"))
            for sql, args in _OLD_ROWS:
                conn.execute(sql.replace("?", "%s"), args)
    for _ in range(2):  # the migration runs once; a second start finds nothing to do
        s = ServerThread(data_dir=tmp_path, admin_token=ADMIN_TOKEN, database_url=database)
        try:
            with Client(s.target, max_attempts=1) as c:
                assert _balances(c, ALICE) == {CEU: 700}
                # Alice's old key still answers with the first result (old entries carry no
                # fingerprint: they match any retry, as before)
                assert _mint(c, ALICE, CEU, 700, "order-1").transaction_id == "tx1"
                assert _balances(c, ALICE) == {CEU: 700}
                # the same key is Bob's own now
                assert _mint(c, BOB, CEU, 5, "order-1").transaction_id != "tx1"
                history = c.call(
                    c.market_stub.ListTransactions, m.ListTransactionsRequest(account=ALICE)
                )
                assert [t.request_id for t in history.transactions] == ["order-1"]
            assert all(i.passed for i in invariants(s.running.ledger.audit()))
            assert s.running.proof_log.get("p0") is not None
        finally:
            s.stop()
        if database is None:
            with pytest.raises(
                sqlite3.IntegrityError
            ):  # the global UNIQUE on request_id is gone, the scoped one holds
                db = sqlite3.connect(tmp_path / "idf.sqlite3")
                try:
                    db.execute(
                        "INSERT INTO journal (seq, id, kind, request_id, account, operation, reference, create_time, result)"
                        " VALUES (99, 'x', 'mint', 'order-1', ?, 'mint', '', '', '{}')",
                        (ALICE,),
                    )
                finally:
                    db.close()


# -- page tokens -----------------------------------------------------------------------------
@pytest.mark.parametrize("value", [str(2**70), "-5", "0", "9" * 400])
def test_page_tokens_with_out_of_range_integers_are_invalid_argument(tmp_path, value):
    """Issue item 7: page tokens encoding huge integers answered INTERNAL (SQLite overflow)."""
    s = ServerThread(data_dir=tmp_path)
    try:
        with Client(s.target, max_attempts=1) as c:
            for call in (
                lambda: c.call(
                    c.market_stub.ListTransactions,
                    m.ListTransactionsRequest(
                        account=ALICE,
                        page_token=base64.urlsafe_b64encode(f"seq:{value}".encode()).decode(),
                    ),
                ),
                lambda: c.list_proofs(
                    page_token=base64.urlsafe_b64encode(f"before:{value}".encode()).decode()
                ),
            ):
                with pytest.raises(InvalidArgumentError) as info:
                    call()
                assert info.value.violations[0].field == "page_token"
    finally:
        s.stop()


def test_admin_token_is_compared_in_constant_time():
    """Issue item 11: the admin token was compared with `!=`."""
    import inspect

    from idf.server.services import market as service

    source = inspect.getsource(service.MarketServicer._require_admin)
    assert "hmac.compare_digest" in source and "!=" not in source
    assert inspect.getsource(service.MarketServicer.Mint).count("_require_admin") == 1
