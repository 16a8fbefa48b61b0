"""The proof log as served: the store's append-only leaves (`idf.store.proof_log`), the RFC 6962
Merkle tree over them (`idf.client.merkle`, the same code offline verifiers run), and the log's
Ed25519 key, which signs every record and every checkpoint.

The tree is held in memory and brought up to the store before each answer (`sync`): other
writers (replicas sharing the store) may have appended since. Methods block (store reads); the
servicer runs them on its store pool.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import timestamp_pb2

from idf.client.merkle import MerkleTree, leaf_hash
from idf.client.proofs import canonical_json, checkpoint_text, key_id
from idf.engine.proofs import records
from idf.server.signing import raw_public_key
from idf.store.proof_log import Leaf, NewLeaf, ProofLog
from idf.v1 import proof_pb2


@dataclass(frozen=True)
class Appended:
    leaf: Leaf
    created: bool  # False: a retry of an earlier request; `leaf` is the first append
    size: int  # the tree size after the append, covering `leaf`


class TransparencyLog:
    def __init__(self, store: ProofLog, key: Ed25519PrivateKey, origin: str) -> None:
        self.store, self.key, self.origin = store, key, origin
        self.public_key = raw_public_key(key)
        self.key_id = key_id(self.public_key)
        self._tree = MerkleTree(store.leaf_hashes())
        self._lock = threading.Lock()

    def sync(self) -> int:
        """Bring the in-memory tree up to the store; the tree size."""
        with self._lock:
            for h in self.store.leaf_hashes(len(self._tree)):
                self._tree.append(h)
            return len(self._tree)

    def append(
        self,
        record: dict,
        *,
        request_id: str | None,
        account: str,
        fingerprint: str,
        tenant: str = "default",
    ) -> Appended:
        """Sign and append `record` (built by `idf.engine.proofs.records.record`). Raises
        ParameterError when it is too large, `IdempotencyKeyReused` when `request_id` was used by
        `account` of `tenant` with another fingerprint. The leaf is `tenant`'s: others cannot
        read or list it (the tree and its checkpoints stay one global log)."""
        body = canonical_json(record)
        records.check_size(body)
        new = NewLeaf(
            record["id"],
            body,
            self.key.sign(body),
            leaf_hash(body),
            record["policy"],
            record["verdict"],
            record["producer"]["name"],
            record["create_time"],
            request_id,
            account,
            fingerprint,
            tenant,
        )
        leaf, created = self.store.append(new)
        return Appended(leaf, created, self.sync())

    def checkpoint(self, size: int) -> proof_pb2.Checkpoint:
        """The signed head of the tree at `size` (at most the synced size)."""
        with self._lock:
            root = self._tree.root(size)
        sign_time = timestamp_pb2.Timestamp()
        sign_time.GetCurrentTime()
        cp = proof_pb2.Checkpoint(
            origin=self.origin, tree_size=size, root_hash=root, sign_time=sign_time
        )
        cp.signature = self.key.sign(checkpoint_text(cp))
        return cp

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        with self._lock:
            return self._tree.inclusion_proof(index, size)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        with self._lock:
            return self._tree.consistency_proof(first, second)
