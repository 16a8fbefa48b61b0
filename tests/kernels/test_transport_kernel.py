"""The fused transport kernel against its torch reference, and the 10^4-step physics checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kernel_checks import DEVICE, assert_matches

from idf.engine.forecast.physics import TransportSpec, physics_forecast
from idf.kernels.transport import transport_step_reference, transport_step_triton

CASES = [
    ((13, 17), (1.0, 0.5), (0.3, -0.2)),  # odd sizes: 221 sites, last block masked
    ((2, 5, 6, 7), (1.0, 1.0, 2.0), (0.1, -0.1, 0.2)),  # batch of 3-D grids
    ((3, 33), (0.9,), (-0.4,)),  # batch of 1-D grids
    ((1, 1), (1.0, 1.0), (0.5, 0.5)),  # a single cell
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("boundary", ["periodic", "zero-flux", "fixed-value"])
@pytest.mark.parametrize("shape, spacing, velocity", CASES)
@pytest.mark.parametrize("with_source", [False, True])
def test_kernel_matches_reference(dtype, boundary, shape, spacing, velocity, with_source):
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(shape, generator=gen, dtype=dtype)
    source = torch.rand(shape[-len(spacing) :], generator=gen, dtype=dtype) if with_source else None
    kw = dict(
        dt=0.1,
        spacing=spacing,
        diffusivity=0.3,
        velocity=velocity,
        boundary=boundary,
        boundary_value=0.7,
    )
    expected = transport_step_reference(u, **kw, source=source)
    actual = transport_step_triton(
        u.to(DEVICE), **kw, source=None if source is None else source.to(DEVICE), block=64
    )
    assert_matches(actual, expected)


@pytest.mark.parametrize("boundary", ["periodic", "zero-flux"])
def test_conservation_over_ten_thousand_steps_float64(boundary):
    u = 1 + np.random.default_rng(1).random((32, 32))
    result = physics_forecast(
        [u],
        100,
        TransportSpec(diffusivity=0.2, velocity=(0.3, -0.5), substeps=100, boundary=boundary),
    )
    start = u.sum()
    assert np.max(np.abs(result.totals - start)) / start <= 1e-10


@pytest.mark.parametrize("boundary", ["periodic", "zero-flux"])
def test_conservation_over_ten_thousand_steps_float32(boundary):
    # Each step rounds every cell update once (<= 2^-24 relative to the value); for a positive
    # field even same-signed roundings move the total by at most steps * 2^-24 = 6.0e-4.
    # Observed: ~1e-7 periodic, ~1e-5 zero-flux (values pile up at the downstream wall).
    steps = 10_000
    u = (1 + np.random.default_rng(1).random((32, 32))).astype(np.float32)
    result = physics_forecast(
        [u],
        100,
        TransportSpec(diffusivity=0.2, velocity=(0.3, -0.5), substeps=100, boundary=boundary),
    )
    start = u.sum(dtype=np.float64)
    assert np.max(np.abs(result.totals - start)) / start <= steps * 2.0**-24


@pytest.mark.skipif(DEVICE != "cuda", reason="the engine's Triton path needs a GPU")
def test_engine_on_gpu_matches_cpu():
    u = np.random.default_rng(2).random((64, 64))
    spec = TransportSpec(diffusivity=0.2, velocity=(0.3, -0.5))
    gpu = physics_forecast([u], 50, spec, device="cuda").frames
    cpu = physics_forecast([u], 50, spec, device="cpu").frames
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=1e-12)


# --- pure advection: the kernel against the exact solution of the upwind scheme --------------------
#
# The cases above all diffuse (kappa = 0.3) and compare the kernel with the reference only: a
# mistake shared by both (say, both taking the downwind cell) passes them. With kappa = 0 on a
# periodic grid n steps multiply each Fourier mode by g^n, g = 1 - |C| (1 - e^{-i sign(v) theta})
# per axis term (C = v dt / h), a closed form independent of both implementations.


def _exact_upwind(u0: np.ndarray, courants, steps: int) -> np.ndarray:
    grid = u0.shape[-len(courants) :]
    g = np.ones(grid, dtype=complex)
    for axis, c in enumerate(courants):
        theta = 2 * np.pi * np.fft.fftfreq(grid[axis])
        theta = theta.reshape([-1 if a == axis else 1 for a in range(len(grid))])
        g = g - abs(c) * (1 - np.exp(-1j * np.sign(c) * theta))
    axes = tuple(range(u0.ndim - len(grid), u0.ndim))
    return np.fft.ifftn(np.fft.fftn(u0, axes=axes) * g**steps, axes=axes).real


ADVECTION_GRIDS = [
    ((2, 24), (0.5,), 0),  # batch of 1-D grids
    ((7, 10), (1.0, 0.5), 0),
    ((7, 10), (1.0, 0.5), 1),
    ((4, 5, 6), (1.0, 2.0, 0.5), 0),
    ((4, 5, 6), (1.0, 2.0, 0.5), 1),
    ((4, 5, 6), (1.0, 2.0, 0.5), 2),
]


@pytest.mark.parametrize("courant", [0.25, 0.5, 0.9, -0.25, -0.5, -0.9])
@pytest.mark.parametrize("shape, spacing, axis", ADVECTION_GRIDS)
def test_kernel_advection_is_the_exact_upwind_scheme(shape, spacing, axis, courant):
    dt, steps = 0.1, 4
    courants = [0.0] * len(spacing)
    courants[axis] = courant
    kw = dict(
        dt=dt,
        spacing=spacing,
        diffusivity=0.0,
        velocity=[c * h / dt for c, h in zip(courants, spacing)],
    )
    u0 = torch.rand(shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    triton_u, reference_u = u0.to(DEVICE), u0
    for _ in range(steps):
        triton_u = transport_step_triton(triton_u, **kw, block=64)
        reference_u = transport_step_reference(reference_u, **kw)
    assert_matches(triton_u, reference_u)
    # float64 rounding over 4 steps of O(1) values: observed <= 1e-15
    exact = torch.from_numpy(_exact_upwind(u0.numpy(), courants, steps))
    torch.testing.assert_close(triton_u.cpu(), exact, rtol=0, atol=1e-12)
