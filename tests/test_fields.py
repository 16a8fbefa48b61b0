"""ndarray <-> Field: exact round trips, zero-copy decode, any layout and byte order in."""

from __future__ import annotations

import numpy as np
import pytest

from idf.client import FieldDecodeError, field_meta, from_field, to_field
from idf.v1 import field_pb2


@pytest.mark.parametrize("dtype", ["<f4", "<f8", ">f4", ">f8", "i1", "<i4", ">i4"])
def test_round_trip_is_exact_for_every_dtype_and_byte_order(dtype):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 5)) * 100).astype(dtype)
    back = from_field(to_field(array))
    assert back.dtype.byteorder in "<|="  # little-endian on the wire and in memory here
    np.testing.assert_array_equal(back, array)


def test_wire_bytes_are_little_endian_c_order():
    array = np.arange(6, dtype=">f4").reshape(2, 3)
    field = to_field(np.asfortranarray(array))
    assert field.data == np.arange(6, dtype="<f4").tobytes()
    assert list(field.shape) == [2, 3]


@pytest.mark.parametrize(
    "make",
    [
        lambda a: np.asfortranarray(a),
        lambda a: a[::2, ::3],
        lambda a: a.T,
        lambda a: a[:, ::-1],
    ],
    ids=["fortran", "strided", "transposed", "reversed"],
)
def test_non_contiguous_input_is_encoded_by_value(make):
    base = np.random.default_rng(1).standard_normal((8, 9))
    view = make(base)
    np.testing.assert_array_equal(from_field(to_field(view)), view)


def test_decode_is_zero_copy_and_read_only():
    field = to_field(np.ones((4, 4), dtype=np.float32))
    array = from_field(field)
    assert not array.flags.writeable
    assert not array.flags.owndata  # a view on the message's bytes


def test_metadata_travels():
    field = to_field(
        np.zeros((2, 2)), spacing=(0.5, 2.0), boundary="fixed-value", boundary_value=3.0, units="K"
    )
    meta = field_meta(field)
    assert meta.spacing == (0.5, 2.0) and meta.boundary == "fixed-value"
    assert meta.boundary_value == 3.0 and meta.units == "K"
    assert field_meta(to_field(np.zeros(3))).spacing == (1.0,)


@pytest.mark.parametrize(
    "mutate, part",
    [
        (lambda f: f.ClearField("shape"), "shape"),
        (lambda f: f.shape.__setitem__(0, 0), "shape"),
        (lambda f: f.shape.__setitem__(0, -2), "shape"),
        (lambda f: setattr(f, "data", f.data[:-1]), "data"),
        (lambda f: setattr(f, "data", f.data + b"\0"), "data"),
        (lambda f: setattr(f, "dtype", field_pb2.DTYPE_UNSPECIFIED), "dtype"),
        (lambda f: setattr(f, "dtype", 99), "dtype"),
        (lambda f: f.spacing.extend([1.0]), "spacing"),
        (lambda f: f.spacing.extend([1.0, -1.0]), "spacing"),
    ],
)
def test_malformed_fields_name_the_part(mutate, part):
    field = to_field(np.zeros((2, 3), dtype=np.float32))
    mutate(field)
    with pytest.raises(FieldDecodeError) as info:
        from_field(field)
    assert info.value.path == part


def test_element_limit():
    with pytest.raises(FieldDecodeError, match="exceed the limit"):
        from_field(to_field(np.zeros((10, 10))), max_elements=99)


def test_unsupported_dtype_is_refused():
    with pytest.raises(TypeError, match="unsupported dtype"):
        to_field(np.zeros(3, dtype=np.complex64))
