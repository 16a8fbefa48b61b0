"""CEU metering of Predict and PFT rewards of passed proofs, on a real server's ledger."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import ServerThread

from idf.client import (
    Client,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    UnauthenticatedError,
)
from idf.server.metering import ESCROW, TREASURY, price
from idf.store.ledger import ISSUANCE
from idf.v1 import market_pb2 as m

ADMIN = (("authorization", "Bearer s3cret"),)
ALICE = "market/accounts/alice"


@pytest.fixture()
def metered(tmp_path):
    s = ServerThread(
        data_dir=tmp_path, admin_token="s3cret", metering=True, ceu_per_million_site_updates=1000
    )
    yield s
    s.stop()


def _fund(target: str, account: str, ceu: int) -> None:
    with Client(target, max_attempts=1) as c:
        c.market_stub.Mint(
            m.MintRequest(
                account=account,
                amount=m.TokenAmount(token=m.TOKEN_CEU, amount=ceu),
                request_id=f"fund-{account}-{ceu}",
            ),
            metadata=ADMIN,
        )


def _ceu(server, account: str) -> int:
    return server.running.ledger.balances(account).get("CEU", 0)


def test_predict_is_charged_for_measured_work(metered):
    _fund(metered.target, ALICE, 10_000)
    with Client(metered.target, max_attempts=1, metadata=[("x-idf-account", ALICE)]) as c:
        forecast = c.predict(np.ones((64, 64)), 10, diffusivity=0.1)
    expected = price(64 * 64 * 10, 1000)  # ceil(40960 * 1000 / 1e6) = 41
    assert forecast.usage.charged_ceu == expected == 41
    assert _ceu(metered, ALICE) == 10_000 - expected
    assert _ceu(metered, TREASURY) == expected and _ceu(metered, ESCROW) == 0


def test_no_account_or_no_money_means_no_work(metered):
    with Client(metered.target, max_attempts=1) as c, pytest.raises(UnauthenticatedError):
        c.predict(np.ones((8, 8)), 1, diffusivity=0.1)
    _fund(metered.target, "market/accounts/poor", 3)
    with Client(
        metered.target, max_attempts=1, metadata=[("x-idf-account", "market/accounts/poor")]
    ) as c:
        with pytest.raises(FailedPreconditionError) as info:
            c.predict(np.ones((256, 256)), 100, diffusivity=0.1)
        assert info.value.reason == "INSUFFICIENT_BALANCE"
    assert _ceu(metered, "market/accounts/poor") == 3 and _ceu(metered, TREASURY) == 0


def test_refused_or_cancelled_calls_are_refunded(metered):
    _fund(metered.target, ALICE, 10**8)
    with Client(metered.target, max_attempts=1, metadata=[("x-idf-account", ALICE)]) as c:
        with pytest.raises(
            InvalidArgumentError
        ):  # unstable dt: found by the engine after the reservation
            c.predict(np.ones((16, 16)), 5, diffusivity=1.0, dt=5.0)
        with pytest.raises(DeadlineExceededError):
            c.predict(
                np.ones((256, 256), np.float32), 20, substeps=5000, diffusivity=0.1, timeout=0.5
            )
        c.predict(
            np.ones((4, 4)), 1, diffusivity=0.1, timeout=30
        )  # waits for the worker: settled by now
    assert _ceu(metered, ESCROW) == 0
    assert _ceu(metered, ALICE) == 10**8 - price(16, 1000)


def test_passed_proofs_pay_pft_once(tmp_path):
    # Rewards are paid only for outputs the caller was billed for, capped at reward_pft_per_ceu
    # PFT per CEU of that call (issue 12 item 3; was: any PASS proof paid, for any field). 100
    # PFT/CEU puts the cap (41 CEU -> 4,100 PFT) above one proof's reward, so the formula is seen.
    s = ServerThread(
        data_dir=tmp_path, admin_token="s3cret", metering=True, reward_pft_per_ceu=100.0
    )
    try:
        _fund(s.target, ALICE, 10_000)
        with Client(s.target, max_attempts=1, metadata=[("x-idf-account", ALICE)]) as c:
            forecast = c.predict(np.random.default_rng(0).random((64, 64)) + 1, 10, diffusivity=0.1)
            billed = np.asarray(forecast.frames[-1])
            ref = billed * 1.001  # ground truth from elsewhere
            good = c.create_proof(prediction=billed, reference=ref, request_id="p1")
            c.create_proof(
                prediction=billed, reference=ref, request_id="p1"
            )  # retried: same proof, paid once
            c.create_proof(prediction=billed * 2, reference=ref)  # FAIL: no reward
        nrmse = good.metrics["nrmse"]
        expected = 1000 + int(1000 * (1 - nrmse / 0.1))
        ceu = 10_000 - forecast.usage.charged_ceu
        assert s.running.ledger.balances(ALICE) == {"CEU": ceu, "PFT": expected}
        assert s.running.ledger.balances(ISSUANCE) == {"CEU": -10_000, "PFT": -expected}
        entry = s.running.ledger.history(ALICE, before=None, limit=5)
        assert [e.reference for e in entry if e.kind == "reward"] == [good.name]
    finally:
        s.stop()


def test_sampling_reserves_for_the_work_it_will_do(metered):
    from idf.v1 import diffusion_pb2 as d

    _fund(metered.target, ALICE, price(16 * 16 * 2 * 100, 1000))  # exactly one MALA run's worth
    request = d.SampleRequest(
        energy_model=d.EnergyModelSpec(name="phi4"),
        shape=[16, 16],
        sample_count=2,
        sampler=d.SamplerSpec(kind=d.SAMPLER_KIND_MALA, steps=100),
    )
    with Client(metered.target, max_attempts=1, metadata=[("x-idf-account", ALICE)]) as c:
        result = list(c.sample(request))[-1]
    assert result.usage.charged_ceu == price(16 * 16 * 2 * 100, 1000)
    assert _ceu(metered, ALICE) == 0 and _ceu(metered, ESCROW) == 0
