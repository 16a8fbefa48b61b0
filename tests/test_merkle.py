"""Merkle hashing against RFC 6962's published test vectors (the Certificate Transparency
reference leaves and roots), and proofs of every shape round-tripping and failing when
tampered with."""

from __future__ import annotations

import pytest

from idf.client.merkle import EMPTY_ROOT, MerkleTree, leaf_hash, verify_consistency, verify_inclusion

LEAVES = [bytes.fromhex(h) for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# RFC 6962 reference inclusion proofs (leaf index, tree size, path)
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]


def test_published_roots():
    tree = MerkleTree([leaf_hash(x) for x in LEAVES])
    assert tree.root(0) == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    for n in range(1, 9):
        assert tree.root(n).hex() == ROOTS[n - 1]


@pytest.mark.parametrize("index, size, path", INCLUSION)
def test_published_inclusion_proofs(index, size, path):
    tree = MerkleTree([leaf_hash(x) for x in LEAVES])
    assert [p.hex() for p in tree.inclusion_proof(index, size)] == path
    assert verify_inclusion(leaf_hash(LEAVES[index]), index, size, [bytes.fromhex(p) for p in path], bytes.fromhex(ROOTS[size - 1]))


def _tree(n: int) -> MerkleTree:
    return MerkleTree([leaf_hash(bytes([i % 256, i // 256])) for i in range(n)])


def test_every_inclusion_proof_round_trips_and_tampering_fails():
    tree = _tree(37)
    for size in range(1, 38):
        root = tree.root(size)
        for i in range(size):
            proof = tree.inclusion_proof(i, size)
            assert verify_inclusion(tree.leaves[i], i, size, proof, root)
            assert not verify_inclusion(tree.leaves[(i + 1) % size] if size > 1 else b"x" * 32, i, size, proof, root)
            if proof:
                bad = list(proof)
                bad[0] = bytes(32)
                assert not verify_inclusion(tree.leaves[i], i, size, bad, root)


def test_every_consistency_proof_round_trips_and_rewrites_fail():
    tree = _tree(37)
    other = _tree(37)
    other.leaves[4] = leaf_hash(b"rewritten history")
    other._full.clear()
    for n in range(1, 38):
        for m in range(1, n + 1):
            proof = tree.consistency_proof(m, n)
            assert verify_consistency(m, n, tree.root(m), tree.root(n), proof)
            if m > 4:  # the rewritten leaf is inside both trees: no proof can link old to new
                assert not verify_consistency(m, n, tree.root(m), other.root(n), other.consistency_proof(m, n))
            if m < n:
                assert not verify_consistency(m, n, tree.root(m), tree.root(n - 1) if n - 1 >= m else b"", proof)


def test_root_cache_matches_a_fresh_computation():
    tree = _tree(100)
    roots = [tree.root(n) for n in range(101)]
    assert roots == [_tree(100).root(n) for n in range(101)]
