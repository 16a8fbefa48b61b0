"""The Merkle tree's edges: default sizes, out-of-range arguments, proofs of the wrong length, and
the subtree cache that makes roots O(log n). Mutation testing (docs/testing.md) found each of
these unchecked; the published vectors are in tests/test_merkle.py."""

from __future__ import annotations

import math

import pytest

import idf.client.merkle as merkle
from idf.client.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion


def _tree(n: int) -> MerkleTree:
    return MerkleTree([leaf_hash(bytes([i % 256, i // 256])) for i in range(n)])


def test_append_returns_the_new_leafs_index():
    tree = MerkleTree()
    assert [tree.append(leaf_hash(bytes([i]))) for i in range(5)] == [0, 1, 2, 3, 4]
    assert len(tree) == 5


def test_sizes_default_to_the_whole_tree():
    tree = _tree(7)
    assert tree.root() == tree.root(7)
    assert tree.inclusion_proof(3) == tree.inclusion_proof(3, 7)
    assert tree.consistency_proof(3) == tree.consistency_proof(3, 7)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t: t.root(8), "tree size 8 outside 0..7"),
        (lambda t: t.root(-1), "tree size -1 outside 0..7"),
        (lambda t: t.inclusion_proof(7), "leaf index 7 outside a tree of size 7"),
        (lambda t: t.inclusion_proof(-1, 7), "leaf index -1 outside a tree of size 7"),
        (lambda t: t.inclusion_proof(0, 0), "leaf index 0 outside a tree of size 0"),
        (lambda t: t.consistency_proof(0, 7), r"need 0 < first \(0\) <= second \(7\)"),
        (lambda t: t.consistency_proof(5, 4), r"need 0 < first \(5\) <= second \(4\)"),
        (lambda t: t.consistency_proof(1, 8), "tree size 8 outside 0..7"),
    ],
)
def test_out_of_range_arguments_are_refused_by_name(call, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        call(_tree(7))


def test_inclusion_verification_refuses_indices_outside_the_tree():
    tree = _tree(6)
    root = tree.root()
    proof = tree.inclusion_proof(5)
    assert verify_inclusion(tree.leaves[5], 5, 6, proof, root)
    # the last leaf's proof, presented as a leaf one past the end or at a negative index
    assert not verify_inclusion(tree.leaves[5], 6, 6, proof, root)
    assert not verify_inclusion(tree.leaves[5], -1, 6, proof, root)
    # a one-leaf tree: the empty proof, and index 1 does not exist
    single = _tree(1)
    assert verify_inclusion(single.leaves[0], 0, 1, [], single.root())
    assert not verify_inclusion(single.leaves[0], 1, 1, [], single.root())


@pytest.mark.parametrize("size", [1, 2, 5, 8, 13])
def test_proofs_with_extra_or_missing_hashes_fail(size):
    tree = _tree(size)
    root = tree.root()
    extra = leaf_hash(b"extra")
    for index in range(size):
        proof = tree.inclusion_proof(index)
        assert verify_inclusion(tree.leaves[index], index, size, proof, root)
        assert not verify_inclusion(tree.leaves[index], index, size, proof + [extra], root)
        assert not verify_inclusion(tree.leaves[index], index, size, proof + [root], root)
        if proof:
            assert not verify_inclusion(tree.leaves[index], index, size, proof[:-1], root)
    for first in range(1, size + 1):
        proof = tree.consistency_proof(first)
        first_root = tree.root(first)
        assert verify_consistency(first, size, first_root, root, proof)
        assert not verify_consistency(first, size, first_root, root, proof + [extra])
        if proof:
            assert not verify_consistency(first, size, first_root, root, proof[:-1])


def test_consistency_verification_refuses_bad_sizes_and_empty_proofs():
    tree = _tree(7)
    r3, r7 = tree.root(3), tree.root(7)
    proof = tree.consistency_proof(3, 7)
    assert verify_consistency(3, 7, r3, r7, proof)
    assert not verify_consistency(0, 7, tree.root(0), r7, proof)
    assert not verify_consistency(7, 3, r7, r3, proof)
    # 3 is not a power of two, so the proof must carry the first node itself: empty never verifies
    assert not verify_consistency(3, 7, r3, r7, [])
    # equal sizes: only the empty proof and equal roots
    assert verify_consistency(7, 7, r7, r7, [])
    assert not verify_consistency(7, 7, r7, r7, [r7])
    assert not verify_consistency(7, 7, r3, r7, [])


def test_roots_after_the_first_cost_logarithmically_many_hashes(monkeypatch):
    """The cache of complete subtrees: the second root of a 1,024-leaf tree needs no hashing, and
    appending one leaf costs about log2(n) node hashes, not n."""
    calls = {"n": 0}
    real = merkle.node_hash

    def counting(left: bytes, right: bytes) -> bytes:
        calls["n"] += 1
        return real(left, right)

    monkeypatch.setattr(merkle, "node_hash", counting)
    tree = _tree(1024)
    first = tree.root()
    assert calls["n"] == 1023  # a full binary tree of 1,024 leaves has 1,023 inner nodes
    calls["n"] = 0
    assert tree.root() == first
    assert calls["n"] == 0
    tree.append(leaf_hash(b"one more"))
    tree.root()
    # MTH(1025) = node(MTH(0..1024) cached, leaf): one hash
    assert calls["n"] <= math.log2(1025) + 1
    calls["n"] = 0
    proof = tree.inclusion_proof(700, 1024)
    assert calls["n"] == 0 and len(proof) == 10
