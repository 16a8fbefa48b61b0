"""idf.server.paging: the one page-size rule and page-token codec every List RPC uses (ListModels,
ListProofs, ListTransactions), and that each List RPC refuses the others' tokens."""

from __future__ import annotations

import base64

import grpc
import pytest

from idf.client import Client, InvalidArgumentError
from idf.server import paging
from idf.server.errors import ApiError
from idf.v1 import diffusion_pb2, market_pb2, proof_pb2


def test_page_size_defaults_caps_and_refuses_negatives():
    assert paging.page_size(0) == paging.DEFAULT_PAGE == 50
    assert paging.page_size(7) == 7 and paging.page_size(10**9) == paging.MAX_PAGE == 1000
    with pytest.raises(ApiError) as e:
        paging.page_size(-1)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("value", [1, 2**63 - 1])
def test_integer_tokens_round_trip(value):
    assert paging.decode_int(paging.encode("seq", value), "seq") == value


def test_name_tokens_round_trip_any_text():
    for name in ("nvp-kolmogorov-64", "a:b:c", "ünïcode"):
        assert paging.decode_str(paging.encode("after", name), "after") == name


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "token",
    [
        "not base64 !",
        _b64("seq"),
        _b64("before:5"),
        _b64("seq:0"),
        _b64("seq:-3"),
        _b64(f"seq:{2**63}"),
        _b64("seq:1.5"),
        _b64("5"),
        base64.urlsafe_b64encode(b"seq:\xff").decode(),
    ],
    ids=[
        "garbage",
        "no-value",
        "other-kind",
        "zero",
        "negative",
        "past-int64",
        "float",
        "no-kind",
        "not-utf8",
    ],
)
def test_foreign_tokens_are_invalid_argument_on_page_token(token):
    with pytest.raises(ApiError) as e:
        paging.decode_int(token, "seq")
    assert (
        e.value.code == grpc.StatusCode.INVALID_ARGUMENT
        and e.value.violations[0][0] == "page_token"
    )


def test_each_list_refuses_the_other_lists_tokens(client: Client):
    proof_token, seq_token, name_token = (
        paging.encode("before", 3),
        paging.encode("seq", 3),
        paging.encode("after", "a"),
    )
    calls = [
        lambda: client.call(
            client.diffusion_stub.ListModels, diffusion_pb2.ListModelsRequest(page_token=seq_token)
        ),
        lambda: client.call(
            client.proof_stub.ListProofs, proof_pb2.ListProofsRequest(page_token=name_token)
        ),
        lambda: client.call(
            client.market_stub.ListTransactions,
            market_pb2.ListTransactionsRequest(account="market/accounts/a", page_token=proof_token),
        ),
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentError) as e:
            call()
        assert e.value.violations[0].field == "page_token"


def test_list_models_pages_through_the_whole_catalogue(client: Client):
    everything = client.call(
        client.diffusion_stub.ListModels, diffusion_pb2.ListModelsRequest(page_size=1000)
    ).models
    seen, token = [], ""
    while True:
        page = client.call(
            client.diffusion_stub.ListModels,
            diffusion_pb2.ListModelsRequest(page_size=1, page_token=token),
        )
        seen += [m.name for m in page.models]
        token = page.next_page_token
        if not token:
            break
    assert seen == [m.name for m in everything] and len(seen) >= 4
