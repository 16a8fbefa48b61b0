"""Laplacian and gradient: Triton against the reference, and against exact results."""

from __future__ import annotations

import math

import pytest
import torch
from kernel_checks import DEVICE, assert_matches

from idf.kernels.stencil import (
    gradient_reference,
    gradient_triton,
    laplacian,
    laplacian_reference,
    laplacian_triton,
)

CASES = [
    ((13, 17), (1.0, 0.3)),
    ((2, 5, 6, 7), (1.0, 0.7, 2.0)),
    ((3, 33), (0.9,)),
    ((9, 11), (0.25, 4.0)),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("boundary", ["periodic", "zero-flux", "fixed-value"])
@pytest.mark.parametrize("shape, spacing", CASES)
def test_triton_matches_reference(dtype, boundary, shape, spacing):
    u = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    assert_matches(
        laplacian_triton(u.to(DEVICE), spacing, boundary, 0.7, block=64),
        laplacian_reference(u, spacing, boundary, 0.7),
    )
    assert_matches(
        gradient_triton(u.to(DEVICE), spacing, boundary, 0.7, block=64),
        gradient_reference(u, spacing, boundary, 0.7),
    )


@pytest.mark.parametrize("hy, hx", [(1.0, 1.0), (0.5, 2.0)])
def test_fourier_modes_are_eigenvectors(hy, hx):
    """On a periodic grid, sin(k_y y + k_x x) is an eigenvector of the 5-point Laplacian with
    eigenvalue -sum_a (4 / h_a^2) sin^2(k_a h_a / 2): exact, to rounding."""
    ny, nx = 16, 24
    ky, kx = 2 * math.pi * 3 / (ny * hy), 2 * math.pi * 5 / (nx * hx)
    y = torch.arange(ny, dtype=torch.float64).view(-1, 1) * hy
    x = torch.arange(nx, dtype=torch.float64).view(1, -1) * hx
    u = torch.sin(ky * y + kx * x)
    eig = -(4 / hy**2) * math.sin(ky * hy / 2) ** 2 - (4 / hx**2) * math.sin(kx * hx / 2) ** 2
    torch.testing.assert_close(laplacian(u, (hy, hx)), eig * u, rtol=0, atol=1e-12)


def test_gradient_of_a_linear_field_is_exact_inside():
    y = torch.arange(8, dtype=torch.float64).view(-1, 1) * 0.5
    x = torch.arange(10, dtype=torch.float64).view(1, -1) * 0.25
    u = 3 * y - 2 * x + 1
    g = gradient_reference(u, (0.5, 0.25), "zero-flux")
    torch.testing.assert_close(g[0][1:-1], torch.full((6, 10), 3.0, dtype=torch.float64))
    torch.testing.assert_close(g[1][:, 1:-1], torch.full((8, 8), -2.0, dtype=torch.float64))


def test_boundaries():
    u = torch.rand(12, 12, dtype=torch.float64)
    # zero-flux: the Laplacian sums to zero (no flux leaves), like periodic
    assert abs(laplacian(u, (1.0, 1.0), "zero-flux").sum().item()) < 1e-12
    assert abs(laplacian(u, (1.0, 1.0), "periodic").sum().item()) < 1e-12
    # fixed-value: a field equal to the boundary value everywhere has zero Laplacian
    g = 2.5
    assert (
        laplacian(torch.full((7, 9), g, dtype=torch.float64), (1.0, 0.5), "fixed-value", g)
        .abs()
        .max()
        == 0
    )


def test_bad_arguments():
    with pytest.raises(ValueError):
        laplacian(torch.zeros(4, 4), (1.0, 1.0), "open")
    with pytest.raises(ValueError):
        laplacian(torch.zeros(4, 4), (1.0, 1.0, 1.0, 1.0))
