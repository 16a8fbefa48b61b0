"""The REST face: HTTP/JSON transcoded from the google.api.http annotations onto the same RPCs."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from google.protobuf import json_format
from helpers import ServerThread

from idf.client import Client, from_field, to_field
from idf.server.rest import routes
from idf.v1 import predict_pb2


@pytest.fixture(scope="module")
def rest_server():
    s = ServerThread(rest_port=0, admin_token="s3cret")
    yield s
    s.stop()


def _http(server, method: str, path: str, body: dict | None = None, headers: dict | None = None):
    url = f"http://127.0.0.1:{server.running.rest_port}{path}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def test_every_annotated_rpc_has_a_route():
    names = {r.method.full_name for r in routes()}
    assert "idf.v1.PredictService.Predict" in names and "idf.v1.MarketService.Swap" in names
    assert len(names) == len(routes())


def test_predict_over_rest_equals_grpc(rest_server):
    u = np.random.default_rng(0).random((16, 16))
    request = predict_pb2.PredictRequest(
        history=[to_field(u)], steps=3, transport=predict_pb2.TransportParameters(diffusivity=0.2)
    )
    status, ctype, text = _http(
        rest_server, "POST", "/v1/predict", json_format.MessageToDict(request)
    )
    assert status == 200 and ctype.startswith("application/json")
    reply = json_format.Parse(text, predict_pb2.PredictResponse())
    with Client(rest_server.target) as c:
        native = c.predict(u, 3, diffusivity=0.2)
    np.testing.assert_array_equal(np.stack([from_field(f) for f in reply.frames]), native.frames)
    assert base64.b64decode(json.loads(text)["frames"][0]["data"])  # bytes travel as base64


def test_errors_map_to_http_status_with_details(rest_server):
    status, _, text = _http(rest_server, "POST", "/v1/predict", {"history": [], "steps": 1})
    body = json.loads(text)
    assert status == 400 and body["code"] == 3
    violation = body["details"][-1]["fieldViolations"][0]
    assert violation["field"] == "history"
    assert _http(rest_server, "GET", "/v1/proofs/nothing-here")[0] == 404
    assert _http(rest_server, "GET", "/v1/no/such/route")[0] == 404
    assert (
        _http(rest_server, "POST", "/v1/predict", None, {"Content-Type": "application/json"})[0]
        == 400
    )  # no history
    status, _, text = _http(
        rest_server, "POST", "/v1/telemetry:publish",
        {"readings": [{"site": "sites/none", "sensor": "t1", "index": [0], "value": 1}]},
    )  # fmt: skip
    assert status == 200 and json.loads(text)["rejectedCount"] == "1"  # no such site here


def test_path_variables_query_parameters_and_headers(rest_server):
    status, _, text = _http(rest_server, "GET", "/v1/market/pools/ceu-pft")
    assert status == 200 and json.loads(text)["pool"]["name"] == "market/pools/ceu-pft"
    body = {"amount": {"token": "TOKEN_CEU", "amount": "500"}, "requestId": "rest-1"}
    assert _http(rest_server, "POST", "/v1/market/accounts/erin:mint", body)[0] == 403
    status, _, text = _http(
        rest_server,
        "POST",
        "/v1/market/accounts/erin:mint",
        body,
        {"authorization": "Bearer s3cret"},
    )
    assert status == 200 and json.loads(text)["balance"]["amount"] == "500"
    status, _, text = _http(rest_server, "GET", "/v1/market/accounts/erin/transactions?pageSize=1")
    assert status == 200 and len(json.loads(text)["transactions"]) == 1
    status, _, text = _http(rest_server, "GET", "/v1/models?pageSize=5")
    names = [m["name"] for m in json.loads(text)["models"]]
    assert (
        status == 200
        and {"physics-advection-diffusion", "nvp-kolmogorov-64"} <= set(names)
        and names == sorted(names)
    )


def test_server_streaming_is_ndjson(rest_server):
    body = {
        "energyModel": {"name": "ising"},
        "shape": ["8", "8"],
        "sampleCount": 2,
        "sampler": {"kind": "SAMPLER_KIND_GIBBS", "steps": 40},
    }
    status, ctype, text = _http(rest_server, "POST", "/v1/diffuse", body)
    assert status == 200 and ctype == "application/x-ndjson"
    lines = [json.loads(line) for line in text.strip().splitlines()]
    assert "progress" in lines[0]["result"] and "result" in lines[-1]["result"]
    # refused before its first message: the error's own status, as a unary call (not a 200 stream)
    status, ctype, text = _http(
        rest_server, "POST", "/v1/diffuse", {"energyModel": {"name": "nope"}, "shape": ["4", "4"]}
    )
    assert status == 400 and ctype.startswith("application/json") and json.loads(text)["code"] == 3
