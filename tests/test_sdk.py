"""The Python SDK: async twin, typed errors with details, retries on UNAVAILABLE only, TLS."""

from __future__ import annotations

import asyncio
import datetime
from concurrent import futures

import grpc
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers import ServerThread

from idf.client import AsyncClient, Client, InvalidArgumentError, UnavailableError
from idf.v1 import diffusion_pb2, predict_pb2, predict_pb2_grpc


def test_async_client_matches_sync(server):
    u = np.random.default_rng(0).random((32, 32))

    async def run():
        async with AsyncClient(server.target, max_attempts=1) as c:
            assert await c.health() == "SERVING"
            forecasts = await asyncio.gather(*(c.predict(u, 3, diffusivity=0.2) for _ in range(4)))
            with pytest.raises(InvalidArgumentError) as info:
                await c.predict(u, 0)
            assert info.value.violations[0].field == "steps"
            with pytest.raises(
                InvalidArgumentError
            ) as info:  # the shipped denoiser makes 32x32 fields
                reverse = diffusion_pb2.SampleRequest(
                    energy_model=diffusion_pb2.EnergyModelSpec(name="phi4"),
                    shape=[8, 8],
                    sampler=diffusion_pb2.SamplerSpec(
                        kind=diffusion_pb2.SAMPLER_KIND_REVERSE_DIFFUSION
                    ),
                )
                async for _ in c.sample(reverse):
                    pass
            assert info.value.violations[0].field == "shape"
            return forecasts, await c.list_models()

    forecasts, models = asyncio.run(run())
    with Client(server.target) as c:
        expected = c.predict(u, 3, diffusivity=0.2).frames
        assert models == c.list_models()
    for f in forecasts:
        np.testing.assert_array_equal(f.frames, expected)


def test_errors_carry_reason_and_violations(client):
    with pytest.raises(InvalidArgumentError) as info:
        client.predict(np.ones((4, 4)), 1, dt=9.0, diffusivity=1.0)
    error = info.value
    assert error.reason == "INVALID_FIELD" and error.domain
    assert error.violations[0].field == "transport.dt"
    assert "largest stable dt" in error.violations[0].description


class _Flaky(predict_pb2_grpc.PredictServiceServicer):
    """A stand-in network peer that fails the first `failures` calls with `code`."""

    def __init__(self, failures: int, code: grpc.StatusCode) -> None:
        self.calls = 0
        self.failures = failures
        self.code = code

    def Predict(self, request, context):
        self.calls += 1
        if self.calls <= self.failures:
            context.abort(self.code, "try again")
        return predict_pb2.PredictResponse(model="flaky")


def _flaky_server(failures: int, code: grpc.StatusCode):
    servicer = _Flaky(failures, code)
    server = grpc.server(futures.ThreadPoolExecutor(2))
    predict_pb2_grpc.add_PredictServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, servicer, f"127.0.0.1:{port}"


def test_unavailable_is_retried_with_backoff():
    server, servicer, target = _flaky_server(2, grpc.StatusCode.UNAVAILABLE)
    try:
        with Client(target, max_attempts=4) as c:
            c._call(c.predict_stub.Predict, predict_pb2.PredictRequest(), 10)
        assert servicer.calls == 3
    finally:
        server.stop(None)


def test_retries_give_up_after_max_attempts():
    server, servicer, target = _flaky_server(10, grpc.StatusCode.UNAVAILABLE)
    try:
        with Client(target, max_attempts=3) as c, pytest.raises(UnavailableError):
            c._call(c.predict_stub.Predict, predict_pb2.PredictRequest(), 10)
        assert servicer.calls == 3
    finally:
        server.stop(None)


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ],
)
def test_other_errors_are_not_retried(code):
    server, servicer, target = _flaky_server(1, code)
    try:
        with Client(target, max_attempts=4) as c, pytest.raises(Exception):
            c._call(c.predict_stub.Predict, predict_pb2.PredictRequest(), 10)
        assert servicer.calls == 1
    finally:
        server.stop(None)


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_pem


def test_tls_and_call_credentials(tmp_path):
    cert = _self_signed(tmp_path)
    secure = ServerThread(tls_cert_file=tmp_path / "cert.pem", tls_key_file=tmp_path / "key.pem")
    try:
        target = f"localhost:{secure.running.port}"
        creds = grpc.ssl_channel_credentials(root_certificates=cert)
        token = grpc.access_token_call_credentials("secret-token")
        with Client(target, credentials=creds, call_credentials=token, max_attempts=1) as c:
            assert c.health() == "SERVING"
            assert c.predict(np.ones((4, 4)), 1, diffusivity=0.1).frames.shape == (1, 4, 4)
        with Client(target, max_attempts=1, timeout=5) as plain, pytest.raises(UnavailableError):
            plain.health()  # plaintext cannot talk to a TLS port
    finally:
        secure.stop()


def test_call_credentials_need_tls():
    with pytest.raises(ValueError, match="secure channel"):
        Client("localhost:1", call_credentials=grpc.access_token_call_credentials("t"))
