from __future__ import annotations

import torch

from idf.kernels._triton import interpreting

#: where the Triton kernels run in this session: the GPU when there is one, else the interpreter
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def assert_matches(actual: torch.Tensor, expected: torch.Tensor, ulps: int = 4) -> None:
    """Interpreter: bit-exact (the kernels evaluate the references' expressions in the same
    order, in IEEE arithmetic). Compiled on a GPU: within `ulps` units in the last place of the
    largest magnitude, since the compiler may contract a*b+c into one FMA."""
    actual = actual.cpu()
    expected = expected.cpu()
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    if interpreting():
        assert torch.equal(actual, expected), (actual - expected).abs().max()
    else:
        scale = expected.abs().max().item() or 1.0
        tol = ulps * torch.finfo(expected.dtype).eps * scale
        torch.testing.assert_close(actual, expected, rtol=0, atol=tol)
