"""Contracts of the public field ops (laplacian, gradient, total, shannon_entropy,
radial_power_spectrum, stable_dt) as a user meets them: documented defaults (boundary "periodic",
boundary_value 0, 2 grid axes, cfl 0.9), ndim / spacing passed through for 1-D to 3-D grids, batch
axes independent, float64 totals, argument validation with the messages users see. Expected values
are closed forms or exact integer arithmetic written out here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from kernel_checks import DEVICE, assert_matches

from idf.kernels._triton import interpreting
from idf.kernels.diagnostics import (
    radial_power_spectrum,
    shannon_entropy,
    shannon_entropy_triton,
    total,
)
from idf.kernels.stencil import (
    gradient,
    gradient_reference,
    gradient_triton,
    laplacian,
    laplacian_reference,
    laplacian_triton,
)
from idf.kernels.transport import (
    cfl_number,
    stable_dt,
    transport_step,
    transport_step_reference,
    transport_step_triton,
)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# Stencils
# ---------------------------------------------------------------------------------------------

LAPLACIANS = {
    "dispatch": laplacian,
    "reference": laplacian_reference,
    "triton": lambda u, *a, **k: laplacian_triton(u.to(DEVICE), *a, block=64, **k).cpu(),
}
GRADIENTS = {
    "dispatch": gradient,
    "reference": gradient_reference,
    "triton": lambda u, *a, **k: gradient_triton(u.to(DEVICE), *a, block=64, **k).cpu(),
}


def _wave(shape, spacing, modes):
    """u = prod_a sin(k_a x_a + 0.3 a) sampled at x_a = i h_a, k_a = 2 pi m_a / (n_a h_a): a periodic
    field, and its exact discrete Laplacian -sum_a (4 / h_a^2) sin^2(k_a h_a / 2) u (each factor is an
    eigenvector of its axis' second difference)."""
    u = torch.ones(shape, dtype=torch.float64)
    eig = 0.0
    for a, (n, h, m) in enumerate(zip(shape, spacing, modes)):
        k = 2 * math.pi * m / (n * h)
        x = torch.arange(n, dtype=torch.float64) * h
        u = u * torch.sin(k * x + 0.3 * a).reshape([n if i == a else 1 for i in range(len(shape))])
        eig -= 4 / h**2 * math.sin(k * h / 2) ** 2
    return u, eig * u


@pytest.mark.parametrize("path", list(LAPLACIANS))
def test_laplacian_defaults_to_periodic_boundaries(path):
    u, expected = _wave((8, 12), (0.5, 0.25), (1, 2))
    torch.testing.assert_close(LAPLACIANS[path](u, (0.5, 0.25)), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("path", list(LAPLACIANS))
def test_laplacian_fixed_value_defaults_to_zero(path):
    """u = 1 on a (6, 7) grid with the Dirichlet value g: interior 0; an edge cell's ghost is 2g - 1,
    so each edge adds (2g - 2) / h^2. With g left at its default 0: -2 / h^2 per edge touched."""
    h = (0.5, 2.0)
    got = LAPLACIANS[path](torch.ones(6, 7, dtype=torch.float64), h, "fixed-value")
    expected = torch.zeros(6, 7, dtype=torch.float64)
    expected[0] -= 2 / h[0] ** 2
    expected[-1] -= 2 / h[0] ** 2
    expected[:, 0] -= 2 / h[1] ** 2
    expected[:, -1] -= 2 / h[1] ** 2
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("path", list(GRADIENTS))
def test_gradient_defaults(path):
    """Periodic by default: the central difference of sin(k x) is sin(k h) / h cos(k x) exactly.
    fixed-value on u = 1: the edge ghosts are 2 g - 1, so the edge derivatives are
    +-(1 - (2 g - 1)) / (2 h), zero inside: +-1 / h with g left at its default 0, -+1.5 / h for g = 2.5."""
    n, h = 16, 0.5
    k = 2 * math.pi * 3 / (n * h)
    x = torch.arange(n, dtype=torch.float64) * h
    got = GRADIENTS[path](torch.sin(k * x).expand(2, n).contiguous(), (h,))
    torch.testing.assert_close(
        got, (math.sin(k * h) / h * torch.cos(k * x)).expand(1, 2, n), rtol=0, atol=1e-12
    )
    for g in (None, 2.5):
        args = () if g is None else (g,)
        edges = GRADIENTS[path](
            torch.ones(5, 6, dtype=torch.float64), (1.0, 0.25), "fixed-value", *args
        )
        slope = 1 - 2 * (g or 0.0) + 1  # (u[1] - (2 g - u[0])) / 2 per unit spacing, with u = 1
        expected = torch.zeros(2, 5, 6, dtype=torch.float64)
        expected[0, 0], expected[0, -1] = slope / 2, -slope / 2
        expected[1, :, 0], expected[1, :, -1] = slope / 2 / 0.25, -slope / 2 / 0.25
        torch.testing.assert_close(edges, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("spacing", [(0.5,), (0.5, 2.0), (0.5, 1.0, 0.25)])
def test_gradient_of_a_linear_field_along_one_to_three_axes(spacing):
    """u = 1 + sum_a c_a x_a (x_a = i h_a), zero-flux: the central difference is c_a exactly inside
    (the edge ghosts copy the edge value, so there it is c_a / 2)."""
    shape = (4, 5, 6)[: len(spacing)]
    coeffs = (3.0, -2.0, 0.5)[: len(spacing)]
    u = torch.ones(shape, dtype=torch.float64)
    for a, (n, h, c) in enumerate(zip(shape, spacing, coeffs)):
        u = u + c * h * torch.arange(n, dtype=torch.float64).reshape(
            [n if i == a else 1 for i in range(len(shape))]
        )
    g = gradient(u, spacing, "zero-flux")
    assert g.shape == (len(spacing), *shape)
    for a, c in enumerate(coeffs):
        inside = g[a].narrow(a, 1, shape[a] - 2)
        torch.testing.assert_close(inside, torch.full_like(inside, c), rtol=0, atol=1e-12)
        torch.testing.assert_close(
            g[a].narrow(a, 0, 1), torch.full_like(g[a].narrow(a, 0, 1), c / 2), rtol=0, atol=1e-12
        )


def test_stencils_validate_spacing_and_boundary():
    with pytest.raises(ValueError, match=r"^spacing needs 1 to 3 values"):
        laplacian(
            torch.zeros(2, 3, 4, 5), (1.0, 1.0, 1.0, 1.0)
        )  # a 4-D tensor still has at most 3 grid axes
    with pytest.raises(ValueError, match=r"^spacing needs 1 to 3 values"):
        gradient(torch.zeros(4, 4), (1.0, 1.0, 1.0))  # more grid axes than the tensor has
    with pytest.raises(ValueError, match=r"^spacing needs 1 to 3 values"):
        gradient(torch.zeros(4, 4), ())
    with pytest.raises(
        ValueError,
        match=r"^boundary must be one of \('periodic', 'zero-flux', 'fixed-value'\), got 'open'",
    ):
        gradient(torch.zeros(4, 4), (1.0, 1.0), "open")


# ---------------------------------------------------------------------------------------------
# Diagnostics
# ---------------------------------------------------------------------------------------------


def test_total_sums_each_chain_in_float64():
    """2^24 + 1 + 1 + ... is not a float32 number: float32 fields summed per chain must give the
    exact integer total (float64 holds it), for the default 2 grid axes and for 1 and 3."""
    x = torch.ones(3, 4, 8)
    x[:, 0, 0] = 2.0**24
    x[1] *= 2
    exact = [2.0**24 + 31, 2 * (2.0**24 + 31), 2.0**24 + 31]
    assert total(x).dtype == torch.float64 and total(x).tolist() == exact
    assert total(x, ndim=1).tolist() == [
        [2.0**24 + 7, 8, 8, 8],
        [2 * (2.0**24 + 7), 16, 16, 16],
        [2.0**24 + 7, 8, 8, 8],
    ]
    assert total(x, ndim=3).item() == sum(exact)


@pytest.mark.parametrize(
    "ndim, x", [(0, torch.ones(2, 3)), (4, torch.ones(2, 2, 2, 2)), (3, torch.ones(2, 2))]
)
def test_grid_axes_are_one_to_three_and_at_most_the_tensors(ndim, x):
    with pytest.raises(ValueError, match=r"^ndim must be 1\.\.3 and <= x\.ndim, got "):
        total(x, ndim)
    with pytest.raises(ValueError, match=r"^ndim must be 1\.\.3 and <= x\.ndim, got "):
        radial_power_spectrum(x, ndim)


def test_entropy_of_known_distributions():
    """Uniform over N sites: log N; all mass on one site: 0; two sites with masses 1 and 3:
    -(1/4 log 1/4 + 3/4 log 3/4). Whatever the total (0.01 N here), per chain, default 2 grid axes."""
    x = torch.full((3, 8, 8), 0.01)
    x[1] = 0.0
    x[1, 2, 5] = 7.0
    x[2] = 0.0
    x[2, 0, 0], x[2, 7, 7] = 0.25, 0.75
    got = shannon_entropy(x)
    expected = [math.log(64), 0.0, -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("ndim, shape", [(1, (2, 16)), (3, (2, 3, 4, 5))])
def test_entropy_along_one_or_three_axes(ndim, shape):
    got = shannon_entropy(
        torch.rand(shape, generator=torch.Generator().manual_seed(1)) + 1e-3, ndim
    )
    n = math.prod(shape[1:])
    assert got.shape == (2,) and bool(((got > 0) & (got < math.log(n))).all())
    np.testing.assert_allclose(
        shannon_entropy(torch.ones(shape), ndim).numpy(), [math.log(n)] * 2, rtol=1e-12
    )


def test_entropy_does_not_depend_on_batching():
    """A (ny, nx) field is one chain: its entropy is that of the same field as a batch of one, in
    float64 (to float64 rounding of 4096 terms), not a float32 computation."""
    x = torch.rand(64, 64, generator=torch.Generator().manual_seed(2))
    one, batched = shannon_entropy(x), shannon_entropy(x[None])
    assert one.dtype == torch.float64 and one.shape == ()
    assert abs(one.item() - batched.item()) < 1e-12


def test_entropy_needs_a_non_negative_field_with_a_positive_total():
    with pytest.raises(ValueError, match=r"^entropy needs a non-negative field$"):
        shannon_entropy(torch.tensor([[[1.0, -1e-3], [1.0, 1.0]]]))
    with pytest.raises(ValueError, match=r"^entropy needs a field with a positive total$"):
        shannon_entropy(torch.zeros(2, 4, 4))


def test_triton_entropy_of_a_batch_of_chains():
    """4 chains of 4 sites in programs of 2: each chain's two partial sums go to its own row (the
    grid is (blocks, chains) = (2, 4)). The entropy of p_i proportional to i + 1 is exact:
    -sum p_i log p_i with p_i = (i + 1) / (N (N + 1) / 2), whatever the chain's scale."""
    base = torch.arange(1, 5, dtype=torch.float64)
    scale = torch.arange(1, 5, dtype=torch.float64).reshape(4, 1)
    x = (base * scale).reshape(4, 2, 2)
    p = base / base.sum()
    exact = -(p * torch.log(p)).sum().item()
    got = shannon_entropy_triton(x.to(DEVICE), block=2).cpu()
    np.testing.assert_allclose(got.numpy(), [exact] * 4, rtol=1e-12)


def _shell_counts(shape):
    """Modes per shell from exact integer arithmetic: index k_a in [-n_a/2, n_a/2) (n_a // 2 below
    zero), |k|^2 an integer, and its nearest integer radius b = (isqrt(4 |k|^2) + 1) // 2 (|k| is never
    a half-integer, since 4 |k|^2 is an integer and (2b + 1)^2 is odd)."""
    axes = np.meshgrid(*(np.arange(n) - n // 2 for n in shape), indexing="ij")
    k2 = sum(a.astype(np.int64) ** 2 for a in axes).ravel()
    b = (np.array([math.isqrt(int(v)) for v in 4 * k2]) + 1) // 2
    return np.bincount(b)


@pytest.mark.parametrize("shape", [(9, 15), (7,), (5, 6, 7)])
def test_spectrum_shells_on_odd_and_even_grids(shape):
    """Bins are exactly the shells of integer radius: counts from exact integer arithmetic, one
    bin per radius up to the largest, on odd and mixed grids along 1 to 3 axes."""
    x = torch.rand((2, *shape), generator=torch.Generator().manual_seed(3))
    radius, power, counts = radial_power_spectrum(x, len(shape))
    expected = _shell_counts(shape)
    assert counts.tolist() == expected.tolist() and radius.tolist() == list(range(len(expected)))
    # Parseval: sum over modes of |FFT|^2 / N = sum of u^2
    np.testing.assert_allclose(
        (power * counts).sum(-1).numpy(),
        (x.double() ** 2).sum(tuple(range(1, x.ndim))).numpy(),
        rtol=1e-12,
    )


def test_spectrum_shells_far_from_the_origin():
    """At radius ~2601 the shell boundaries need more precision than float32 has:
    |k|^2 = 2601^2 + 51^2 = 2601^2 + 2601 has |k| = 2601.49995..., which rounds to 2601, while
    float32 would make it 2601.5 and round it to 2602. Counts from exact integer arithmetic."""
    shape = (102, 5202)
    _, _, counts = radial_power_spectrum(torch.zeros(1, *shape), 2)
    assert counts.tolist() == _shell_counts(shape).tolist()


def test_spectrum_of_plane_waves_chain_by_chain():
    """Chain 0 a cosine of wavenumber 3 along x, chain 1 of wavenumber 5 along y, on an odd 15 x 15
    grid, given as float32: all of each chain's power |FFT|^2 / N = 2 (N/2)^2 / N = N / 2 sits in its
    own shell (the modes (0, +-3) are both at radius 3), none in the other."""
    n = 15
    i = torch.arange(n, dtype=torch.float64)
    x = torch.stack(
        [
            torch.cos(2 * math.pi * 3 * i / n).expand(n, n),
            torch.cos(2 * math.pi * 5 * i / n).view(n, 1).expand(n, n),
        ]
    )
    _, power, counts = radial_power_spectrum(x.float())
    shell_power = (power * counts).numpy()
    expected = np.zeros_like(shell_power)
    expected[0, 3] = expected[1, 5] = n * n / 2
    np.testing.assert_allclose(
        shell_power, expected, rtol=0, atol=1e-3
    )  # float32 input: ~1e-7 of N/2 per mode


@pytest.mark.parametrize("shape", [(12, 10), (2, 3, 12, 10)])
def test_spectrum_batch_axes_any_number(shape):
    """No batch axis, or two: each (12, 10) field has its own spectrum (a constant field c: all its
    power c^2 N in the mean mode)."""
    c = torch.arange(1, math.prod(shape[:-2]) + 1, dtype=torch.float64).reshape(shape[:-2] + (1, 1))
    x = c.expand(shape)
    _, power, counts = radial_power_spectrum(x)
    assert power.shape == shape[:-2] + counts.shape
    np.testing.assert_allclose(power[..., 0].numpy(), (c[..., 0, 0] ** 2 * 120).numpy(), rtol=1e-12)
    np.testing.assert_allclose(power[..., 1:].numpy(), 0, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Transport time step
# ---------------------------------------------------------------------------------------------


def test_stable_dt_defaults_to_cfl_0_9_and_is_infinite_when_nothing_moves():
    spacing, kappa, velocity = (0.5, 0.25), 0.3, (1.0, -2.0)
    rate = sum(
        2 * kappa / h**2 + abs(v) / h for h, v in zip(spacing, velocity)
    )  # the docstring's C / dt
    assert stable_dt(spacing, kappa, velocity) == pytest.approx(0.9 / rate, rel=1e-15)
    assert cfl_number(
        stable_dt(spacing, kappa, velocity, cfl=0.5), spacing, kappa, velocity
    ) == pytest.approx(0.5, rel=1e-15)
    assert stable_dt((1.0, 1.0), 0.0, (0.0, 0.0)) == math.inf


TRANSPORTS = {
    "dispatch": transport_step,
    "reference": transport_step_reference,
    "triton": lambda u, **k: transport_step_triton(u.to(DEVICE), block=64, **k).cpu(),
}


@pytest.mark.parametrize("path", list(TRANSPORTS))
def test_transport_fixed_value_defaults_to_zero(path):
    """An empty field between walls held at the default value 0 stays empty (no flux anywhere);
    held at 1, the edge cells gain dt kappa (1 - 0) / (h/2) / h = 2 dt kappa / h^2 per wall."""
    u = torch.zeros(6, 5, dtype=torch.float64)
    kw = dict(
        dt=0.1, spacing=(1.0, 0.5), diffusivity=0.2, velocity=(0.0, 0.0), boundary="fixed-value"
    )
    assert TRANSPORTS[path](u, **kw).abs().max().item() == 0
    warmed = TRANSPORTS[path](u, **kw, boundary_value=1.0)
    expected = torch.zeros(6, 5, dtype=torch.float64)
    expected[0] += 2 * 0.1 * 0.2 / 1.0**2
    expected[-1] += 2 * 0.1 * 0.2 / 1.0**2
    expected[:, 0] += 2 * 0.1 * 0.2 / 0.5**2
    expected[:, -1] += 2 * 0.1 * 0.2 / 0.5**2
    torch.testing.assert_close(warmed, expected, rtol=0, atol=1e-15)


def test_triton_transport_takes_the_source_in_the_fields_dtype():
    """A float64 source on a float32 field is added as float32, like every other parameter: the very
    step (bit for bit in the interpreter) of the reference given the source rounded to float32."""
    gen = torch.Generator().manual_seed(4)
    u = torch.rand(2, 9, 11, generator=gen)
    source = torch.rand(9, 11, generator=gen, dtype=torch.float64) / 3
    kw = dict(dt=0.1, spacing=(1.0, 0.5), diffusivity=0.3, velocity=(0.2, -0.1))
    got = transport_step_triton(u.to(DEVICE), **kw, source=source.to(DEVICE), block=64)
    assert got.dtype == torch.float32
    assert_matches(got, transport_step_reference(u, **kw, source=source.float()))


def test_triton_transport_on_a_batch_of_chains():
    """2 chains of 2 x 2 cells in programs of 2 cells: the launch grid is (blocks, chains) = (2, 2)."""
    u = torch.rand(2, 2, 2, generator=torch.Generator().manual_seed(5))
    kw = dict(
        dt=0.1, spacing=(1.0, 1.0), diffusivity=0.3, velocity=(0.2, -0.1), boundary="zero-flux"
    )
    assert_matches(
        transport_step_triton(u.to(DEVICE), **kw, block=2), transport_step_reference(u, **kw)
    )


@pytest.mark.parametrize("path", list(TRANSPORTS))
def test_transport_diffuses_a_sine_mode_by_its_exact_factor(path):
    """Pure diffusion (kappa = 1, no velocity) of u = sin(k y) cos(q x) on a periodic grid: one explicit
    step multiplies it by 1 - dt sum_a (4 kappa / h_a^2) sin^2(k_a h_a / 2), exactly (to rounding)."""
    ny, nx, hy, hx, dt = 8, 12, 1.0, 0.5, 0.05
    k, q = 2 * math.pi * 1 / (ny * hy), 2 * math.pi * 2 / (nx * hx)
    y = torch.arange(ny, dtype=torch.float64).view(-1, 1) * hy
    x = torch.arange(nx, dtype=torch.float64).view(1, -1) * hx
    u = torch.sin(k * y) * torch.cos(q * x)
    factor = 1 - dt * (
        4 / hy**2 * math.sin(k * hy / 2) ** 2 + 4 / hx**2 * math.sin(q * hx / 2) ** 2
    )
    got = TRANSPORTS[path](u, dt=dt, spacing=(hy, hx), diffusivity=1.0, velocity=(0.0, 0.0))
    torch.testing.assert_close(got, factor * u, rtol=0, atol=1e-14)


def test_transport_names_the_boundaries_it_knows():
    for step in (transport_step, transport_step_reference):
        with pytest.raises(
            ValueError,
            match=r"^boundary must be one of \('periodic', 'zero-flux', 'fixed-value'\), got 'open'$",
        ):
            step(
                torch.zeros(4, 4),
                dt=0.1,
                spacing=(1.0, 1.0),
                diffusivity=0.1,
                velocity=(0.0, 0.0),
                boundary="open",
            )


def test_interpreting_reads_triton_interpret(monkeypatch):
    """True exactly when TRITON_INTERPRET is set to something other than "" or "0"."""
    for value, expected in [("1", True), ("yes", True), ("0", False), ("", False)]:
        monkeypatch.setenv("TRITON_INTERPRET", value)
        assert interpreting() is expected
    monkeypatch.delenv("TRITON_INTERPRET")
    assert interpreting() is False
