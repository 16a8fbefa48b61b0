"""Canonical proof formats and offline verification — no trust in the server.

Formats (docs/metrics.md has the full description):
- array digest: SHA-256 over b"idf.array.v1\\n" + canonical JSON {"dtype", "shape"} + b"\\n"
  + the little-endian C-order bytes;
- a proof record is canonical JSON (sorted keys, no spaces, ASCII, no NaN) signed with Ed25519;
  the record bytes are the Merkle leaf (RFC 6962 leaf hash);
- a checkpoint is the text "<origin>\\n<tree size>\\n<base64 root>\\n<RFC 3339 time>\\n",
  signed with the same key.

`verify_proof` checks, with only the public key: the record's signature, that the Proof's
fields say what the signed record says, the inclusion of the record in the checkpoint's tree,
the checkpoint's signature, and optionally that a newer checkpoint extends it (consistency)
and that local arrays are the ones the record names.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf import json_format

from idf.client.merkle import leaf_hash, verify_consistency, verify_inclusion
from idf.client.results import Proof
from idf.v1 import proof_pb2

ARRAY_DOMAIN = b"idf.array.v1\n"


def canonical_json(value: Any) -> bytes:
    """The one serialisation that is signed: sorted keys, no whitespace, ASCII, finite numbers."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def array_digest(array: np.ndarray) -> str:
    """Hex SHA-256 of an array's canonical header and little-endian C-order bytes."""
    array = np.asarray(array)
    le = array.dtype.newbyteorder("<") if array.dtype.byteorder in "<>=" else array.dtype
    data = np.ascontiguousarray(array, dtype=le)
    header = canonical_json({"dtype": le.str, "shape": list(data.shape)})
    return hashlib.sha256(ARRAY_DOMAIN + header + b"\n" + data.tobytes()).hexdigest()


def checkpoint_text(checkpoint: proof_pb2.Checkpoint) -> bytes:
    sign_time = checkpoint.sign_time.ToJsonString()
    root = base64.b64encode(checkpoint.root_hash).decode()
    return f"{checkpoint.origin}\n{checkpoint.tree_size}\n{root}\n{sign_time}\n".encode()


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()


def load_public_key(data: bytes | str | Path) -> Ed25519PublicKey:
    """A public key from PEM, or 64 hex characters of the raw 32-byte key, or a path to either."""
    if isinstance(data, Path) or (isinstance(data, str) and Path(data).is_file()):
        data = Path(data).read_bytes()
    raw = data.encode() if isinstance(data, str) else data
    text = raw.strip()
    if text.startswith(b"-----BEGIN"):
        key = serialization.load_pem_public_key(text)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.decode()))
    except ValueError as e:
        raise ValueError("a public key is PEM or 64 hex characters") from e


def public_key_pem(raw: bytes) -> bytes:
    return Ed25519PublicKey.from_public_bytes(raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _message(proof: proof_pb2.Proof | Proof) -> proof_pb2.Proof:
    return proof.raw if isinstance(proof, Proof) else proof


def proof_to_json(proof: proof_pb2.Proof | Proof) -> str:
    return json_format.MessageToJson(_message(proof), preserving_proto_field_name=True, indent=2)


def proof_from_json(text: str) -> proof_pb2.Proof:
    """Parse a proof file; ValueError when it is not a Proof."""
    try:
        return json_format.Parse(text, proof_pb2.Proof())
    except json_format.ParseError as e:
        raise ValueError(f"not a proof file: {e}") from None


@dataclass
class Verification:
    """What was checked; `ok` only when every check passed. `failures` says which failed."""

    checks: dict[str, bool] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and not self.failures

    def check(self, name: str, passed: bool, why: str = "") -> bool:
        self.checks[name] = passed
        if not passed:
            self.failures.append(f"{name}: {why}" if why else name)
        return passed


def _signed(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
        return True
    except InvalidSignature:
        return False


def verify_proof(
    proof: proof_pb2.Proof | Proof,
    public_key: Ed25519PublicKey,
    *,
    newer_checkpoint: proof_pb2.Checkpoint | None = None,
    consistency: Sequence[bytes] = (),
    arrays: Mapping[str, np.ndarray] | None = None,
) -> Verification:
    """Verify a proof offline (see the module docstring); `proof` is a Proof message or the SDK's
    decoded `Proof`."""
    proof = _message(proof)
    v = Verification()
    v.check(
        "record signature",
        _signed(public_key, proof.signature, proof.record),
        "the record was altered or signed by another key",
    )
    try:
        record = json.loads(proof.record)
        v.record = record
    except ValueError:
        v.check("record format", False, "the record is not JSON")
        return v
    v.check(
        "record format",
        canonical_json(record) == proof.record,
        "the record is not in canonical form",
    )
    v.check(
        "name",
        proof.name == f"proofs/{record.get('id')}",
        "the proof's name differs from the signed record's id",
    )
    v.check(
        "verdict",
        proof_pb2.Verdict.Name(proof.verdict) == f"VERDICT_{record.get('verdict')}",
        "the verdict differs from the signed record",
    )
    v.check(
        "policy", proof.policy == record.get("policy"), "the policy differs from the signed record"
    )
    v.check(
        "metrics",
        {m.name: m.value for m in proof.metrics} == record.get("metrics"),
        "the metrics differ from the signed record",
    )
    v.check(
        "input digests",
        dict(proof.input_digests) == record.get("inputs"),
        "the input digests differ from the signed record",
    )
    cp = proof.checkpoint
    v.check(
        "checkpoint signature",
        _signed(public_key, cp.signature, checkpoint_text(cp)),
        "the checkpoint was altered or signed by another key",
    )
    ip = proof.inclusion_proof
    v.check(
        "inclusion",
        ip.tree_size == cp.tree_size
        and verify_inclusion(
            leaf_hash(proof.record), ip.leaf_index, ip.tree_size, list(ip.hashes), cp.root_hash
        ),
        "the record is not in the checkpoint's tree at its index",
    )
    if newer_checkpoint is not None:
        v.check(
            "newer checkpoint signature",
            _signed(public_key, newer_checkpoint.signature, checkpoint_text(newer_checkpoint)),
        )
        v.check(
            "consistency",
            newer_checkpoint.origin == cp.origin
            and verify_consistency(
                cp.tree_size,
                newer_checkpoint.tree_size,
                cp.root_hash,
                newer_checkpoint.root_hash,
                list(consistency),
            ),
            "the newer log head does not extend the proof's checkpoint (history rewritten?)",
        )
    for role, array in (arrays or {}).items():
        v.check(
            f"digest of {role}",
            record.get("inputs", {}).get(role) == array_digest(array),
            f"{role} is not the array the record names",
        )
    return v
