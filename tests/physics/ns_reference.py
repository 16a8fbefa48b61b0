"""An independent 2-D Navier–Stokes solver and the linear theory of Kolmogorov flow, for checking
`idf.engine.flows.navier_stokes` (tests/test_navier_stokes.py).

Same equation and conventions as the product (the periodic box [0, 2π)², arrays indexed [y, x]):

    ∂ω/∂t = −∇·(u ω) + ν∇²ω − αω + f,   u = (∂ψ/∂y, −∂ψ/∂x),  −∇²ψ = ω,  f = −A n cos(n y)

but written differently on purpose, so that a shared mistake is unlikely:
  * numpy, full complex FFTs (the product: torch, real FFTs);
  * advection in conservative (flux) form ∇·(uω) = ∂x(uω) + ∂y(vω) (the product: u·∇ω; the two
    agree because ∇·u = 0, exactly so for band-limited fields, see `band_limit`);
  * classical fourth-order Runge–Kutta on the whole right-hand side (the product: Crank–Nicolson
    for the linear terms, Adams–Bashforth 2 for advection).
The 2/3 dealiasing rule is the same (it defines the discrete system being solved): the nonlinear
term keeps the Fourier modes with |kx| < N/3 and |ky| < N/3.

`advection` scales the nonlinear term (1 is the equation; the tests use −1 and 2 to show how far a
sign or factor mistake would move a trajectory).
"""

from __future__ import annotations

import math

import numpy as np


def wavenumbers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(ky, kx) as broadcastable integer-valued arrays for an n×n complex FFT, axis 0 = y."""
    k = np.fft.fftfreq(n, d=1.0 / n)
    return k[:, None], k[None, :]


def band(n: int) -> np.ndarray:
    """The 2/3-rule mask: True where |kx| < n/3 and |ky| < n/3."""
    ky, kx = wavenumbers(n)
    return (np.abs(kx) < n / 3) & (np.abs(ky) < n / 3)


def band_limit(w: np.ndarray) -> np.ndarray:
    """w with every Fourier mode outside the 2/3 band removed. For such fields every quadratic
    product is alias-free inside the band (a product's modes reach |k| ≤ 2K, its aliases land at
    |k| ≥ N − 2K > K for K < N/3), so the dealiased pseudo-spectral system is the exact Galerkin
    truncation of the PDE and conserves its quadratic invariants."""
    return np.fft.ifft2(np.fft.fft2(w) * band(w.shape[-1])).real


def rhs(
    w_hat: np.ndarray, nu: float, alpha: float, f_hat: np.ndarray, advection: float = 1.0
) -> np.ndarray:
    """dω̂/dt for the complex spectrum ω̂ (n×n)."""
    n = w_hat.shape[-1]
    ky, kx = wavenumbers(n)
    k2 = kx**2 + ky**2
    psi_hat = np.zeros_like(w_hat)
    np.divide(w_hat, k2, out=psi_hat, where=k2 > 0)
    u = np.fft.ifft2(1j * ky * psi_hat).real
    v = np.fft.ifft2(-1j * kx * psi_hat).real
    w = np.fft.ifft2(w_hat).real
    flux_div = 1j * kx * np.fft.fft2(u * w) + 1j * ky * np.fft.fft2(v * w)
    return -advection * flux_div * band(n) - (nu * k2 + alpha) * w_hat + f_hat


def kolmogorov_forcing(n: int, wavenumber: int, amplitude: float) -> np.ndarray:
    """f = ∂F_y/∂x − ∂F_x/∂y of the body force F = (A sin(n y), 0): −A n cos(n y), on the grid."""
    y = np.arange(n)[:, None] * (2 * math.pi / n) * np.ones((1, n))
    return -amplitude * wavenumber * np.cos(wavenumber * y)


def integrate(
    w0: np.ndarray,
    times: list[float],
    dt: float,
    *,
    nu: float = 0.0,
    alpha: float = 0.0,
    forcing: np.ndarray | None = None,
    advection: float = 1.0,
) -> list[np.ndarray]:
    """Classical RK4 with a step of at most `dt`, landing exactly on each of the increasing `times`;
    returns the vorticity at each."""
    w_hat = np.fft.fft2(np.asarray(w0, dtype=np.float64))
    f_hat = np.fft.fft2(forcing) if forcing is not None else np.zeros_like(w_hat)

    def deriv(z: np.ndarray) -> np.ndarray:
        return rhs(z, nu, alpha, f_hat, advection)

    out, now = [], 0.0
    for target in times:
        steps = max(1, math.ceil((target - now) / dt - 1e-9))
        h = (target - now) / steps
        for _ in range(steps):
            k1 = deriv(w_hat)
            k2 = deriv(w_hat + 0.5 * h * k1)
            k3 = deriv(w_hat + 0.5 * h * k2)
            k4 = deriv(w_hat + h * k3)
            w_hat = w_hat + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
        now = target
        out.append(np.fft.ifft2(w_hat).real)
    return out


# --- linear stability of Kolmogorov flow ---------------------------------------------------------
#
# Base flow (the laminar solution of the forced, damped equation): U(y) = U0 sin(n y), V = 0,
# Ω = −U0 n cos(n y), U0 = A / (ν n² + α). Linearise: ∂ω'/∂t = −U ∂x ω' − v' ∂yΩ + ν∇²ω' − αω',
# v' = −∂x ψ', ∂yΩ = U0 n² sin(n y). Insert ω' = Σ_m ω_m e^{i(kx x + m y)}, ψ_m = ω_m / K_m²
# (K_m² = kx² + m²), sin(n y) = (e^{iny} − e^{−iny}) / 2i, and collect e^{imy}:
#   −U ∂x ω'   → −(U0 kx / 2)(ω_{m−n} − ω_{m+n})
#   −v' ∂yΩ    → +(U0 kx n² / 2)(ω_{m−n} / K²_{m−n} − ω_{m+n} / K²_{m+n})
# so
#   dω_m/dt = −(ν K_m² + α) ω_m − (U0 kx/2)(1 − n²/K²_{m−n}) ω_{m−n} + (U0 kx/2)(1 − n²/K²_{m+n}) ω_{m+n}.
# Each (kx, m mod n) is its own block, a real tridiagonal matrix in m. The dealiased product
# keeps |kx|, |m| < N/3: truncating the chain there is exactly the solver's discrete system.


def kolmogorov_block(
    kx: int,
    residue: int,
    *,
    forcing_wavenumber: int,
    u0: float,
    nu: float,
    alpha: float,
    max_mode: int,
) -> tuple[np.ndarray, list[int]]:
    """The linear operator on the modes m ≡ residue (mod n), |m| ≤ max_mode, at wavenumber kx ≠ 0."""
    n = forcing_wavenumber
    ms = [m for m in range(-max_mode, max_mode + 1) if (m - residue) % n == 0]
    row = {m: i for i, m in enumerate(ms)}
    a = np.zeros((len(ms), len(ms)))
    for m in ms:
        a[row[m], row[m]] = -(nu * (kx * kx + m * m) + alpha)
        for q, sign in ((m - n, -1.0), (m + n, 1.0)):
            if q in row:
                a[row[m], row[q]] = sign * 0.5 * u0 * kx * (1 - n * n / (kx * kx + q * q))
    return a, ms


def kolmogorov_growth_rates(
    resolution: int,
    *,
    forcing_wavenumber: int,
    amplitude: float,
    nu: float,
    alpha: float,
    kxs: list[int] | None = None,
) -> dict[tuple[int, int], float]:
    """Largest real part of the eigenvalues of each block (kx, residue), kx ≥ 1 inside the band."""
    n = forcing_wavenumber
    u0 = amplitude / (nu * n * n + alpha)
    max_mode = math.ceil(resolution / 3) - 1  # the largest |k| with |k| < N/3
    rates = {}
    for kx in kxs or range(1, max_mode + 1):
        for r in range(n):
            a, _ = kolmogorov_block(
                kx, r, forcing_wavenumber=n, u0=u0, nu=nu, alpha=alpha, max_mode=max_mode
            )
            rates[(kx, r)] = float(np.linalg.eigvals(a).real.max())
    return rates
