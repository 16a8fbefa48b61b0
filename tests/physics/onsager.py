"""Exact results for the 2-D Ising model on the infinite square lattice (J = 1, h = 0, k_B = 1):
Onsager (1944) for the energy, Yang (1952) for the spontaneous magnetisation."""

from __future__ import annotations

import math

T_CRITICAL = 2 / math.log(1 + math.sqrt(2))  # 2.269185...


def elliptic_k(k: float) -> float:
    """Complete elliptic integral of the first kind K(k) = pi / (2 AGM(1, sqrt(1 - k^2)))."""
    a, b = 1.0, math.sqrt(max(0.0, 1 - k * k))  # k <= 1; rounding can push it just past
    while abs(a - b) > 1e-15 * a:
        a, b = (a + b) / 2, math.sqrt(a * b)
    return math.pi / (2 * a)


def energy_per_spin(t: float) -> float:
    """u = -coth(2 beta) [1 + (2/pi) (2 tanh^2(2 beta) - 1) K(k)],  k = 2 sinh(2 beta) / cosh^2(2 beta)."""
    b2 = 2 / t
    k = 2 * math.sinh(b2) / math.cosh(b2) ** 2
    return -(1 / math.tanh(b2)) * (1 + (2 / math.pi) * (2 * math.tanh(b2) ** 2 - 1) * elliptic_k(k))


def magnetisation(t: float) -> float:
    """|m| = (1 - sinh(2 beta)^-4)^(1/8) below T_c, 0 above."""
    if t >= T_CRITICAL:
        return 0.0
    return (1 - math.sinh(2 / t) ** -4) ** 0.125
