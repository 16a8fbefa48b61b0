"""Limits every request passes before a servicer sees it: a decodable message, bounded strings.

String fields are names, ids and tokens; none needs to be long, and every one of them may be
stored (the proof log is append-only), logged or echoed. So every string field of every request
is at most `MAX_STRING_CHARS` characters, page tokens `MAX_TOKEN_CHARS` (they are opaque and this
server issues them). The rule is generic: it walks the request by its descriptor, so a new field
is covered the day it is added. docs/api.md and the proto comments state the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from idf.server.errors import invalid_argument

MAX_STRING_CHARS = 128
MAX_TOKEN_CHARS = 512
_LONGER = {"page_token": MAX_TOKEN_CHARS}
# Entries of a repeated field (or map). Checked on the event loop before anything iterates them:
# a million one-element history frames (13 MB) kept health from answering for 9.7 s on main.
MAX_REPEATED = 65_536
REPEATED_LIMITS = {
    "idf.v1.PredictRequest.history": 64,  # forecasters read one or two frames
    "idf.v1.DetectRegimeRequest.frames": 1024,
    "idf.v1.CreateProofRequest.sequence": 256,
    "idf.v1.ReconstructRequest.observations": 16_384,  # more than every site of the shipped model
    "idf.v1.SamplerSpec.temperatures": 64,
    "idf.v1.EnergyModelSpec.parameters": 64,
    "idf.v1.EnergyModelSpec.constraints": 16,
}


@dataclass(frozen=True)
class Undecodable:
    """What the request deserializer returns for bytes that are not the method's request message;
    the RPC boundary answers INVALID_ARGUMENT for it (gRPC itself would answer UNKNOWN)."""

    message_type: str
    size: int
    error: str


def deserializer(cls: Any) -> Any:
    def decode(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except Exception as e:  # noqa: BLE001 - DecodeError, RecursionError, ...: all the caller's bytes
            return Undecodable(cls.DESCRIPTOR.full_name, len(data), type(e).__name__)

    return decode


@lru_cache(maxsize=None)
def _has_strings(descriptor: Descriptor) -> bool:
    """Whether a message type holds a string anywhere below it (recursion-safe)."""
    stack, seen = [descriptor], set()
    while stack:
        d = stack.pop()
        if d.full_name in seen:
            continue
        seen.add(d.full_name)
        for f in d.fields:
            if f.type == FieldDescriptor.TYPE_STRING:
                return True
            if f.type == FieldDescriptor.TYPE_MESSAGE:
                stack.append(f.message_type)
    return False


def limit(field: FieldDescriptor) -> int:
    return _LONGER.get(field.name, MAX_STRING_CHARS)


def check_counts(message: Any, path: str = "") -> None:
    """INVALID_ARGUMENT naming the first repeated field (at any depth) with more entries than its
    limit. Looks at lengths only, so it is cheap whatever the request holds."""
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE and not field.is_repeated:
            continue
        name = f"{path}{field.name}"
        if field.is_repeated:
            n = REPEATED_LIMITS.get(field.full_name, MAX_REPEATED)
            if len(value) > n:
                raise invalid_argument(
                    name, f"at most {n} entries, got {len(value)}", reason="TOO_MANY_ENTRIES"
                )
            if (
                field.type == FieldDescriptor.TYPE_MESSAGE
                and not field.message_type.GetOptions().map_entry
            ):
                for i, item in enumerate(value):
                    check_counts(item, f"{name}[{i}].")
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            check_counts(value, f"{name}.")


def check_strings(message: Any, path: str = "") -> None:
    """INVALID_ARGUMENT naming the first string field longer than its limit."""
    if not _has_strings(message.DESCRIPTOR):
        return
    for field, value in message.ListFields():
        name = f"{path}{field.name}"
        if field.type == FieldDescriptor.TYPE_STRING:
            for i, text in enumerate(value if field.is_repeated else (value,)):
                _check(text, field, f"{name}[{i}]" if field.is_repeated else name)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            entry = field.message_type
            if entry.GetOptions().map_entry:
                key, val = entry.fields_by_name["key"], entry.fields_by_name["value"]
                for k, v in value.items():
                    if key.type == FieldDescriptor.TYPE_STRING:
                        _check(k, key, f"{name} key")
                    if val.type == FieldDescriptor.TYPE_STRING:
                        _check(v, val, f"{name}[{k[:32]!r}]")
                    elif val.type == FieldDescriptor.TYPE_MESSAGE:
                        check_strings(v, f"{name}[{k[:32]!r}].")
            elif field.is_repeated:
                if _has_strings(entry):
                    for i, item in enumerate(value):
                        check_strings(item, f"{name}[{i}].")
            else:
                check_strings(value, f"{name}.")


def _check(text: str, field: FieldDescriptor, path: str) -> None:
    n = limit(field)
    if len(text) > n:
        raise invalid_argument(
            path, f"at most {n} characters, got {len(text)}", reason="STRING_TOO_LONG"
        )
