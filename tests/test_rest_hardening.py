"""The REST face refuses what a careless or hostile HTTP client sends (issue 12, items 7, 10, 11):
bad headers, unknown query parameters and paths, wrong JSON, oversized bodies, too many bytes in
parse at once, slow and idle connections, too many connections. Every refusal is a 4xx (or a 503
with Retry-After for connections past the cap) whose body is a google.rpc.Status with an ErrorInfo
reason, and the server keeps serving after each case."""

from __future__ import annotations

import gc
import json
import select
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from helpers import HANG_S, ServerThread, wait_until

from idf.server import rest


@pytest.fixture(scope="module")
def server():
    s = ServerThread(rest_port=0)
    yield s
    s.stop()
    # Finalise what the stopped loop left (futures whose errors are logged with a traceback) now:
    # on CPython 3.11 a traceback formatted by a finaliser that runs inside another ast.parse
    # (pytest compiling a module later) breaks that parse ("AST constructor recursion depth mismatch").
    gc.collect()


def _http(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    url = f"http://127.0.0.1:{server.running.rest_port}{path}"
    req = urllib.request.Request(
        url,
        data=body,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _status(body: bytes, code: int, reason: str | None = None, field: str | None = None) -> dict:
    """Assert `body` is a google.rpc.Status JSON with this code and an ErrorInfo (with this reason)."""
    status = json.loads(body)
    assert status["code"] == code, status
    infos = [d for d in status.get("details", []) if d["@type"].endswith("google.rpc.ErrorInfo")]
    assert infos and infos[0]["reason"], status
    if reason is not None:
        assert infos[0]["reason"] == reason, status
    if field is not None:
        violations = [
            v
            for d in status["details"]
            if d["@type"].endswith("google.rpc.BadRequest")
            for v in d["fieldViolations"]
        ]
        assert any(v["field"] == field for v in violations), status
    return status


def _serving(server) -> None:
    status, _, body = _http(server, "GET", "/v1/policies")
    assert status == 200 and json.loads(body)["policies"]


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "",
        " ",
        "-1",
        "0",
        "-0",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "Infinity",
        "1e400",
        "9" * 400,
        "1s",
        "0x10",
    ],
)
def test_bad_timeout_header_is_400_naming_it(server, value):
    status, _, body = _http(server, "GET", "/v1/policies", headers={"x-idf-timeout": value})
    assert status == 400
    s = _status(body, 3, "INVALID_HEADER", "x-idf-timeout")
    assert "x-idf-timeout" in s["message"] and len(s["message"]) < 400
    _serving(server)


def test_huge_finite_timeout_is_capped_not_refused(server):
    for value in ("1e308", "99999999999", str(rest.MAX_TIMEOUT_S * 10), " 5 "):
        status, _, _ = _http(server, "GET", "/v1/policies", headers={"x-idf-timeout": value})
        assert status == 200, value
    assert rest._timeout({"x-idf-timeout": "1e308"}) == rest.MAX_TIMEOUT_S


@pytest.mark.parametrize(
    "query, name",
    [
        ("foo.bar=1", "foo.bar"),
        ("pageSize.x=1", "pageSize.x"),
        ("nope=1", "nope"),
        ("page_size=abc", "page_size"),
        ("pageSize=99999999999", "pageSize"),
        ("pageSize=1&page_size=2", "page_size"),
        ("pageSize=1.5", "pageSize"),
    ],
)
def test_bad_query_parameter_is_400_naming_it(server, query, name):
    status, _, body = _http(server, "GET", f"/v1/models?{query}")
    assert status == 400
    s = _status(body, 3, field=name)
    assert name in s["message"]
    _serving(server)


def test_query_parameters_reach_nested_and_enum_fields(server):
    assert _http(server, "GET", "/v1/proofs?verdict=VERDICT_PASS&pageSize=2")[0] == 200
    assert _http(server, "GET", "/v1/proofs?verdict=1")[0] == 200
    status, _, body = _http(server, "GET", "/v1/proofs?verdict=VERDICT_NOPE")
    assert status == 400 and _status(body, 3, field="verdict")
    # a path-bound field repeated in the query is skipped (the path wins), as grpc-gateway does
    status, _, body = _http(server, "GET", "/v1/market/pools/ceu-pft?name=market%2Fpools%2Fother")
    assert status == 200 and json.loads(body)["pool"]["name"] == "market/pools/ceu-pft"


def test_unknown_paths_and_verbs(server):
    status, _, body = _http(server, "GET", "/v1/no/such/route")
    assert status == 404 and _status(body, 5, "NO_ROUTE")
    status, _, body = _http(server, "DELETE", "/v1/policies")
    assert status == 405 and _status(body, 12, "METHOD_NOT_ALLOWED")
    status, _, body = _http(server, "POST", "/v1/predict?steps=1", b"{}")
    assert status == 400 and _status(body, 3, "UNKNOWN_PARAMETER", "steps")
    status, _, body = _http(server, "GET", "/v1/policies", b'{"a": 1}')
    assert status == 400 and _status(body, 3, "UNEXPECTED_BODY")
    status, _, body = _http(server, "POST", "/v1/telemetry:publish", b"{}")
    assert status == 200 and json.loads(body) == {}  # a client stream: the body is its one message
    _serving(server)


WRONG_JSON = [
    ("/v1/predict", b'{"steps": "abc"}'),
    ("/v1/predict", b'{"steps": 1e30}'),
    ("/v1/predict", b'{"steps": [1]}'),
    ("/v1/predict", b'{"steps": 1, "steps": 2}'),
    ("/v1/predict", b'{"history": 5}'),
    ("/v1/predict", b'{"history": [{"data": "!!!not base64"}]}'),
    ("/v1/predict", b'{"history": [{"shape": ["99999999999999999999999"]}]}'),
    ("/v1/predict", b'{"transport": {"substeps": 99999999999}}'),
    ("/v1/predict", b'{"nope": 1}'),
    ("/v1/predict", b'{"@type": 1}'),
    ("/v1/predict", b"[1, 2]"),
    ("/v1/predict", b'"text"'),
    ("/v1/predict", b"null"),
    ("/v1/predict", b"{"),
    ("/v1/predict", b"\xff\xfe\x00"),
    ("/v1/predict", b"[" * 100_000 + b"]" * 100_000),
    ("/v1/predict", b'{"a":' * 5000 + b"1" + b"}" * 5000),
    ("/v1/diffuse", b'{"sampler": {"kind": "SAMPLER_KIND_NOPE"}}'),
    ("/v1/diffuse", b'{"sampler": {"kind": {}}}'),
    ("/v1/diffuse", b'{"energyModel": {"parameters": {"a": "x"}}}'),
    ("/v1/market/pools/ceu-pft:quote", b'{"amountIn": "1", "amountOut": "2"}'),
    ("/v1/market/pools/ceu-pft:quote", b'{"tokenIn": "TOKEN_NOPE", "amountIn": "1"}'),
    ("/v1/market/pools/ceu-pft:quote", b'{"amountIn": "18446744073709551616"}'),
    ("/v1/market/pools/ceu-pft:swap", b'{"deadline": "not a time"}'),
    ("/v1/market/pools/ceu-pft:swap", b'{"deadline": "99999-01-01T00:00:00Z"}'),
]


@pytest.mark.parametrize("path, body", WRONG_JSON, ids=[f"{p}:{b[:30]!r}" for p, b in WRONG_JSON])
def test_json_that_is_wrong_for_the_message_is_400(server, path, body):
    status, headers, answer = _http(server, "POST", path, body)
    assert status == 400, answer[:300]
    assert headers["Content-Type"].startswith("application/json")
    _status(answer, 3, field="body")
    _serving(server)


def _raw(server, data: bytes, *, read: bool = True, timeout: float = 30) -> bytes:
    with socket.create_connection(("127.0.0.1", server.running.rest_port), timeout=timeout) as s:
        s.sendall(data)
        return _read_all(s) if read else b""


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        out += chunk
        if b"\r\n\r\n" in out:
            head, _, rest_ = out.partition(b"\r\n\r\n")
            length = [
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            if length and len(rest_) >= length[0]:
                break
    return out


def _split(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_declared_huge_body_is_413_without_reading_it(server):
    head = (
        b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 104857600\r\n\r\n"
    )
    status, headers, body = _split(_raw(server, head + b"{" + b" " * 65536))
    assert status == 413 and headers["content-type"].startswith("application/json")
    s = _status(body, 8, "SIZE_LIMIT", "body")
    limit = server.running.transcoder.max_body
    assert str(limit) in s["message"] and limit < server.settings.max_message_bytes
    _serving(server)


def test_streamed_100_mb_body_is_413(server):
    """The issue's 100 MB body (chunked, so the limit is found while reading, not from a header)."""
    sock = socket.create_connection(("127.0.0.1", server.running.rest_port), timeout=60)
    sock.sendall(
        b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n" % (1 << 20) + b" " * (1 << 20) + b"\r\n"

    def send() -> None:
        try:
            for _ in range(100):
                sock.sendall(chunk)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed: expected

    writer = threading.Thread(target=send, daemon=True)
    writer.start()
    status, _, body = _split(_read_all(sock))
    sock.close()
    writer.join(HANG_S)
    assert status == 413
    _status(body, 8, "SIZE_LIMIT", "body")
    assert server.running.transcoder.budget.used == 0
    _serving(server)


def test_bytes_in_parse_at_once_are_capped_with_retry_after(server, monkeypatch):
    budget = server.running.transcoder.budget
    monkeypatch.setattr(budget, "limit", 256 * 1024)
    slow = socket.create_connection(("127.0.0.1", server.running.rest_port), timeout=HANG_S)
    try:  # a slow client holds 200 KB of a 300 KB body in the budget
        slow.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 300000\r\n\r\n" + b" " * 200_000
        )
        wait_until(
            lambda: budget.used >= 200_000, "the slow body's 200 KB to be counted in the budget"
        )
        status, headers, body = _http(server, "POST", "/v1/predict", b" " * 100_000)
        assert status == 429 and int(headers["Retry-After"]) >= 1
        s = _status(body, 8, "SERVER_BUSY")
        assert any(d["@type"].endswith("google.rpc.RetryInfo") for d in s["details"])
    finally:
        slow.close()
    wait_until(lambda: budget.used == 0, "the closed slow body's bytes to be given back")
    _serving(server)


def test_malformed_http_is_a_status_body(server):
    status, _, body = _split(
        _raw(server, b"GET /v1/policies?" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    )
    assert status == 400 and _status(body, 3, "MALFORMED_HTTP")
    status, _, body = _split(
        _raw(
            server, b"GET /v1/policies HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 10_000 + b"\r\n\r\n"
        )
    )
    assert status in (400, 431) and _status(body, 3, "MALFORMED_HTTP")
    _serving(server)


def test_slowloris_connections_are_closed(server, monkeypatch):
    """200 slow clients, half sending their headers a byte at a time, half stalling in their body:
    all closed by the server (were held forever), the server serving. The timers are set to 1 s
    so that this happens soon; how soon is not asserted (a loaded machine runs late), only that
    every connection is closed before a generous bound on a hang."""
    monkeypatch.setattr(rest, "BODY_TIMEOUT_S", 1.0, raising=False)
    # the keep-alive/head timer is set when the face starts: a second face with a 1 s timer
    monkeypatch.setattr(rest, "IDLE_TIMEOUT_S", 1.0, raising=False)
    short = ServerThread(rest_port=0)
    try:
        port = short.running.rest_port
        heads = [socket.create_connection(("127.0.0.1", port), timeout=HANG_S) for _ in range(100)]
        bodies = [socket.create_connection(("127.0.0.1", port), timeout=HANG_S) for _ in range(100)]
        request = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        for s in bodies:
            s.sendall(request + b'{"steps"')
        for s in heads + bodies:
            s.setblocking(False)
        line = b"GET /v1/policies HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
        open_ = {s: 0 for s in heads + bodies}
        answers: list[bytes] = []
        # each round sends every slow head one more byte, then waits up to 0.1 s (the slow
        # clients' pace) for any socket to be readable: an answer or the server's close. The
        # deadline bounds a hang only (the timers are 1 s).
        deadline = time.monotonic() + HANG_S
        while open_ and time.monotonic() < deadline:
            for s in list(open_):
                try:
                    if s in heads:
                        s.send(line[open_[s] : open_[s] + 1])
                        open_[s] += 1
                    data = s.recv(65536)
                    if not data:
                        raise ConnectionResetError
                    answers.append(data)
                except BlockingIOError:
                    continue
                except OSError:
                    del open_[s]
                    s.close()
            if open_:
                select.select(list(open_), [], [], 0.1)
        assert not open_, f"{len(open_)} slow connections still open after {HANG_S:.0f} s"
        timeouts = [a for a in answers if a.startswith(b"HTTP/1.1 408")]
        # The stalled bodies are told why (408 BODY_TIMEOUT) before the close; how many of those
        # answers this poller reads first is timing (a close can reach it as a reset that drops the
        # unread answer: once 3 of 100 on a loaded CI run), so one read answer proves the status.
        assert len(timeouts) >= 1, (len(timeouts), len(answers))
        _status(_split(timeouts[0])[2], 4, "BODY_TIMEOUT")
        assert (
            short.running.transcoder.budget.used == 0
        )  # what the stalled bodies held is given back
        assert _http(short, "GET", "/v1/policies")[0] == 200
        # an idle keep-alive connection is closed too
        with socket.create_connection(("127.0.0.1", port), timeout=HANG_S) as s:
            s.sendall(b"GET /v1/policies HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_all(s).startswith(b"HTTP/1.1 200")
            # the server closes it (an orderly end of stream, b""); a connection held open would
            # raise socket.timeout at the bound on a hang instead
            s.settimeout(HANG_S)
            assert s.recv(1) == b""
    finally:
        short.stop()
        gc.collect()  # see the server fixture


def test_connections_past_the_cap_get_503_then_serve_again(server, monkeypatch):
    monkeypatch.setattr(rest, "MAX_CONNECTIONS", 20)
    port = server.running.rest_port
    held = [socket.create_connection(("127.0.0.1", port), timeout=HANG_S) for _ in range(20)]
    try:
        wait_until(
            lambda: len(server.running.rest_runner.server.connections) >= 20,
            "the server to hold the 20 connections",
        )
        with socket.create_connection(("127.0.0.1", port), timeout=HANG_S) as extra:
            status, headers, body = _split(_read_all(extra))
        assert status == 503 and int(headers["retry-after"]) >= 1
        _status(body, 14, "TOO_MANY_CONNECTIONS")
    finally:
        for s in held:
            s.close()
    wait_until(
        lambda: not server.running.rest_runner.server.connections,
        "the server to drop the 20 closed connections",
    )
    _serving(server)


def test_grpc_errors_without_details_get_an_error_info(server):
    # DEADLINE_EXCEEDED made by gRPC itself carries no details: the face adds ErrorInfo(reason=code)
    body = json.dumps(
        {
            "energyModel": {"name": "ising"},
            "shape": ["64", "64"],
            "sampleCount": 4,
            "sampler": {"kind": "SAMPLER_KIND_GIBBS", "steps": 100000},
        }
    ).encode()
    status, headers, answer = _http(server, "POST", "/v1/diffuse", body, {"x-idf-timeout": "0.001"})
    if status == 200:  # a stream: the error is its last line
        last = json.loads(answer.decode().strip().splitlines()[-1])["error"]
        assert last["code"] in (4, 8) and any(
            d["@type"].endswith("ErrorInfo") for d in last["details"]
        )
    else:
        _status(answer, json.loads(answer)["code"])
    _serving(server)


def test_json_body_limit_follows_the_grpc_limit(server):
    t = server.running.transcoder
    assert (
        t.max_body
        == int(server.settings.max_message_bytes * rest.MAX_BODY_FRACTION)
        < server.settings.max_message_bytes
    )
    assert t.budget.limit >= t.max_body
