"""RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs — generation and
verification. Pure hashlib: the server builds proofs with it and anyone checks them with it.

    leaf hash  SHA-256(0x00 || leaf)
    node hash  SHA-256(0x01 || left || right)
    MTH({})    SHA-256("")
    MTH(D[n])  split at k, the largest power of two < n:  node(MTH(D[0:k]), MTH(D[k:n]))
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """Leaf hashes plus a cache of complete aligned subtrees (they never change once full), so
    roots and proofs of any size cost O(log n) hashes after the first computation."""

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        self.leaves: list[bytes] = list(leaf_hashes)
        self._full: dict[tuple[int, int], bytes] = {}

    def __len__(self) -> int:
        return len(self.leaves)

    def append(self, leaf_hash_: bytes) -> int:
        self.leaves.append(leaf_hash_)
        return len(self.leaves) - 1

    def _mth(self, start: int, size: int) -> bytes:
        if size == 0:
            return EMPTY_ROOT
        if size == 1:
            return self.leaves[start]
        full = size & (size - 1) == 0
        if full and (start, size) in self._full:
            return self._full[(start, size)]
        k = _split(size)
        h = node_hash(self._mth(start, k), self._mth(start + k, size - k))
        if full:
            self._full[(start, size)] = h
        return h

    def root(self, size: int | None = None) -> bytes:
        size = len(self.leaves) if size is None else size
        self._check_size(size)
        return self._mth(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.3.1: PATH(m, D[n])."""
        size = len(self.leaves) if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} outside a tree of size {size}")
        return self._path(index, 0, size)

    def _path(self, m: int, start: int, n: int) -> list[bytes]:
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return self._path(m, start, k) + [self._mth(start + k, n - k)]
        return self._path(m - k, start + k, n - k) + [self._mth(start, k)]

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.4.1: PROOF(m, D[n])."""
        second = len(self.leaves) if second is None else second
        self._check_size(second)
        if not 0 < first <= second:
            raise ValueError(f"need 0 < first ({first}) <= second ({second})")
        return self._subproof(first, 0, second, True)

    def _subproof(self, m: int, start: int, n: int, complete: bool) -> list[bytes]:
        if m == n:
            return [] if complete else [self._mth(start, n)]
        k = _split(n)
        if m <= k:
            return self._subproof(m, start, k, complete) + [self._mth(start + k, n - k)]
        return self._subproof(m - k, start + k, n - k, False) + [self._mth(start, k)]

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= len(self.leaves):
            raise ValueError(f"tree size {size} outside 0..{len(self.leaves)}")


def verify_inclusion(
    leaf_hash_: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash_
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2."""
    if not 0 < first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    proof = list(proof)
    if first & (first - 1) == 0:  # a power of two: first_root is the first node
        proof = [first_root] + proof
    if not proof:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0
