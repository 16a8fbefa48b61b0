"""A real server on a loopback port: health, reflection, Predict round trips."""

from __future__ import annotations

import numpy as np
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from idf.client import Client, predict_request
from idf.engine.forecast.physics import TransportSpec, physics_forecast
from idf.server.app import SERVICE_NAMES
from idf.v1 import diffusion_pb2


def test_health_is_serving(client: Client):
    assert client.health() == "SERVING"
    for name in SERVICE_NAMES:
        assert client.health(name) == "SERVING"


def test_reflection_lists_every_service(client: Client):
    stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    response = next(iter(stub.ServerReflectionInfo(iter([request]))))
    listed = {s.name for s in response.list_services_response.service}
    assert set(SERVICE_NAMES) <= listed
    assert "grpc.health.v1.Health" in listed


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (64, 64), (257, 129), (1024, 1024)])
def test_predict_round_trips_and_equals_the_engine(client: Client, dtype, shape):
    u = (1 + np.random.default_rng(0).random(shape)).astype(dtype)
    steps = 2
    forecast = client.predict(u, steps, diffusivity=0.2, velocity=(0.1, -0.3))
    assert forecast.frames.shape == (steps, *shape) and forecast.frames.dtype == dtype
    local = physics_forecast([u], steps, TransportSpec(diffusivity=0.2, velocity=(0.1, -0.3)))
    np.testing.assert_array_equal(forecast.frames, local.frames)  # the wire adds no error
    assert forecast.cfl == pytest.approx(0.9)
    assert forecast.usage.site_updates == u.size * steps
    assert forecast.stddev is None  # deterministic forecaster: no invented uncertainty


@pytest.mark.parametrize(
    "view",
    [lambda a: np.asfortranarray(a), lambda a: a[::2, 1::3], lambda a: a.T[::-1]],
    ids=["fortran", "strided", "transposed-reversed"],
)
def test_non_contiguous_input(client: Client, view):
    base = np.random.default_rng(2).random((40, 60))
    u = view(base)
    forecast = client.predict(u, 1, diffusivity=0.1)
    local = physics_forecast([np.ascontiguousarray(u)], 1, TransportSpec(diffusivity=0.1))
    np.testing.assert_array_equal(forecast.frames, local.frames)


def test_conservation_over_the_wire_1000_periodic_steps_float64(client: Client):
    u = 1 + np.random.default_rng(3).random((64, 64))
    forecast = client.predict(u, 1000, diffusivity=0.3, velocity=(0.5, 0.2), boundary="periodic")
    start = u.sum()
    assert np.max(np.abs(forecast.totals - start)) / start <= 1e-6
    assert forecast.frames[-1].sum() == pytest.approx(start, rel=1e-12)


def test_metadata_is_echoed(client: Client):
    u = np.ones((5, 5), np.float32)
    request = predict_request(
        u,
        1,
        diffusivity=0.1,
        spacing=(0.5, 0.5),
        boundary="fixed-value",
        boundary_value=1.0,
        units="K",
    )
    response = client.call(client.predict_stub.Predict, request)
    frame = response.frames[0]
    assert list(frame.spacing) == [0.5, 0.5] and frame.boundary_value == 1.0 and frame.units == "K"
    assert frame.boundary == request.history[0].boundary
    # dt for kappa = 0.1, h = 0.5 in 2-D at CFL 0.9: 0.9 / (2 axes * 2 kappa / h^2)
    assert response.frame_interval == pytest.approx(0.9 / (2 * 0.1 / 0.25 * 2))


def test_list_models_is_real(client: Client):
    models = client.list_models()
    by_name = {m.name: m for m in models}
    assert by_name["physics-advection-diffusion"].task == "forecast"
    assert by_name["plume-32-edm"].task == "denoise" and by_name["plume-32-edm"].learned
    assert by_name["regime-kolmogorov"].task == "regime"
    assert by_name["regime-kolmogorov"].raw.task == diffusion_pb2.MODEL_TASK_REGIME


def test_a_draining_server_refuses_new_calls_unavailable_and_still_answers_probes():
    """From the moment shutdown begins, new calls are refused before they start (UNAVAILABLE,
    SHUTTING_DOWN, with a retry delay) while health checks and reflection still answer."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from helpers import ServerThread

    from idf.client import UnavailableError

    server = ServerThread()
    try:
        with Client(server.target, max_attempts=1) as c:
            assert c.predict(np.ones((4, 4)), 1, diffusivity=0.1).frames.shape == (1, 4, 4)
            server.running.guard.closing = True
            with pytest.raises(UnavailableError) as info:
                c.predict(np.ones((4, 4)), 1, diffusivity=0.1)
            assert info.value.reason == "SHUTTING_DOWN" and info.value.retry_after == pytest.approx(
                1.0
            )
            assert c.health() == "SERVING"  # the servicer's state; stop() turns it NOT_SERVING
            stub = reflection_pb2_grpc.ServerReflectionStub(c.channel)
            answers = list(
                stub.ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")])
                )
            )
            assert answers and answers[0].list_services_response.service
    finally:
        server.running.guard.closing = False
        server.stop()
