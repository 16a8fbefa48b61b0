"""Triton, when installed, without touching a GPU at import time.

Kernel modules do `from idf.kernels._triton import tl, triton` and decorate with `triton.jit`.
Where Triton is missing (macOS, Windows, a base SDK install), `triton.jit` returns a stub that
raises when launched, so the torch references and the CPU paths still work.

Tests on machines without a GPU set TRITON_INTERPRET=1 *before* these modules are imported:
Triton then runs kernels on CPU tensors through its interpreter.

Typing: a kernel's parameters stay unannotated but for `tl.constexpr` (Triton reads annotations:
they choose compile-time parameters and specialisations), so each `@triton.jit` definition carries
`# type: ignore[no-untyped-def]`; triton.jit itself is untyped (pyproject.toml's mypy override for
the kernels allows that decorator). Everything else in the kernels is strictly typed.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["AVAILABLE", "interpreting", "tl", "triton", "use_triton"]

try:
    import triton
    import triton.language as tl

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised only where triton is absent
    AVAILABLE = False

    class _Missing:
        """Stands in for triton.language so kernel signatures (`x: tl.constexpr`) still parse."""

        def __getattr__(self, name: str) -> Any:
            return None

    class _Stub:
        def __init__(self, fn: Any) -> None:
            self.fn = fn

        def __getitem__(self, grid: Any) -> Any:
            raise RuntimeError(f"Triton is not installed; cannot launch {self.fn.__name__}")

    class _TritonShim:
        @staticmethod
        def jit(fn: Any = None, **_: Any) -> Any:
            return _Stub(fn) if fn is not None else _Stub

        @staticmethod
        def cdiv(a: int, b: int) -> int:
            return -(-a // b)

    triton = _TritonShim()  # type: ignore[assignment, unused-ignore]
    tl = _Missing()  # type: ignore[assignment, unused-ignore]


def interpreting() -> bool:
    """True when Triton runs kernels through its CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def use_triton(tensor: Any) -> bool:
    """The dispatch rule of every op: CUDA tensors go to Triton, everything else to torch."""
    return AVAILABLE and tensor.is_cuda
