"""Merkle hashing against RFC 6962's published test vectors (the Certificate Transparency
reference leaves, roots, inclusion and consistency proofs), the published tampered variants
rejected, and proofs of every shape round-tripping and failing when tampered with."""

from __future__ import annotations

import base64

import pytest

from idf.client.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

# The RFC 6962 reference tree, copied as data (never computed here) from two independent
# publications that agree on every value below:
#   transparency-dev/merkle  proof/verify_test.go  (vars leaves, roots, inclusionProofs,
#       consistencyProofs), commit 02194e9afb6c1d95b5381350007963aa70fff472
#   google/certificate-transparency  cpp/merkletree/merkle_tree_test.cc  (kInputs,
#       kSHA256Roots, kSHA256Paths, kSHA256Proofs), commit 0e901cacd1388fa16f78b184612f6cd16e5ceec1
# Both write leaf indices 1-based; INCLUSION below is 0-based (their {1, 8} is our (0, 8)).
LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [  # MTH of the first n leaves, n = 1..8
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, path); the published {0, 0} and {1, 1} entries are the empty path
INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (first size, second size, proof). The first four are in both sources; (6, 7) only in
# transparency-dev/merkle (also its testdata/consistency/4/happy-path.json, in base64).
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
# Published tampered consistency cases that a verifier must reject ("wantErr": true), copied
# as published (base64) from transparency-dev/merkle testdata/consistency/, commit
# 65362ac5a212fd079e82284b91b5f87aac41b56a: (file, size1, size2, root1, root2, proof). Each is the
# published happy path of a case above (6-8, 2-5) with one thing altered, as its name says.
PUBLISHED_REJECTS = [
    (
        "2/modified-proof[1]-bit-4.json",
        6,
        8,
        "duZ9rbzfHhDht03cYIq9L5jfsW+851J3tSMqEn8gh+8=",
        "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        [
            "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=",
            "2oVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
            "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
        ],
    ),
    (
        "3/size1-+-1.json",
        3,
        5,
        "+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU=",
        "Tju7H3tHjc/nH7YxYxUZo7yhLJrvyhYSv85ME6hiZNQ=",
        [
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",
        ],
    ),
]
# SHA-256("") (NIST CAVP; also kSHA256EmptyTreeHash / sha256EmptyTreeHash in both sources)
EMPTY_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _reference_tree() -> MerkleTree:
    return MerkleTree([leaf_hash(x) for x in LEAVES])


def _root(size: int) -> bytes:
    return bytes.fromhex(ROOTS[size - 1])


def test_published_roots():
    tree = _reference_tree()
    assert tree.root(0) == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == EMPTY_HEX
    for n in range(1, 9):
        assert tree.root(n).hex() == ROOTS[n - 1]


@pytest.mark.parametrize("index, size, path", INCLUSION)
def test_published_inclusion_proofs(index, size, path):
    tree = _reference_tree()
    assert [p.hex() for p in tree.inclusion_proof(index, size)] == path
    assert verify_inclusion(
        leaf_hash(LEAVES[index]), index, size, [bytes.fromhex(p) for p in path], _root(size)
    )


@pytest.mark.parametrize(
    "first, second, proof", CONSISTENCY, ids=[f"{m}-{n}" for m, n, _ in CONSISTENCY]
)
def test_published_consistency_proofs_are_produced_and_accepted(first, second, proof):
    tree = _reference_tree()
    assert [
        p.hex() for p in tree.consistency_proof(first, second)
    ] == proof  # our prover, hash for hash
    assert verify_consistency(
        first, second, _root(first), _root(second), [bytes.fromhex(p) for p in proof]
    )


def _tampered(size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]):  # noqa: ANN202
    """transparency-dev/merkle proof/verify_test.go corruptConsistencyProof (same commit), the
    probes upstream runs against every published proof: each must be rejected."""
    flips = []
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]  # upstream flips bit 4 of byte 0
        flips.append((f"modified proof[{i}] bit 4", size1, size2, root1, root2, bad))
    return [
        ("size1 - 1", size1 - 1, size2, root1, root2, proof),
        ("size1 + 1", size1 + 1, size2, root1, root2, proof),
        ("size1 ^ 2", size1 ^ 2, size2, root1, root2, proof),
        ("size2 * 2", size1, size2 * 2, root1, root2, proof),
        ("size2 / 2", size1, size2 // 2, root1, root2, proof),
        ("wrong root1", size1, size2, b"WrongRoot", root2, proof),
        ("wrong root2", size1, size2, root1, b"WrongRoot", proof),
        ("swapped roots", size1, size2, root2, root1, proof),
        ("empty proof", size1, size2, root1, root2, []),
        ("trailing garbage", size1, size2, root1, root2, [*proof, b""]),
        ("trailing root1", size1, size2, root1, root2, [*proof, root1]),
        ("trailing root2", size1, size2, root1, root2, [*proof, root2]),
        ("preceding garbage", size1, size2, root1, root2, [b"", *proof]),
        ("preceding root1", size1, size2, root1, root2, [root1, *proof]),
        ("preceding root2", size1, size2, root1, root2, [root2, *proof]),
        ("preceding proof[0]", size1, size2, root1, root2, [proof[0], *proof]),
        ("truncated proof", size1, size2, root1, root2, proof[:-1]),
        # and ours: the empty-tree hash in place of each element (the C++ test's wrong_proof[j])
        *[
            (
                f"proof[{i}] = SHA-256('')",
                size1,
                size2,
                root1,
                root2,
                [bytes.fromhex(EMPTY_HEX) if j == i else p for j, p in enumerate(proof)],
            )
            for i in range(len(proof))
        ],
        *flips,
    ]


@pytest.mark.parametrize(
    "first, second, proof",
    [c for c in CONSISTENCY if c[2]],
    ids=[f"{m}-{n}" for m, n, p in CONSISTENCY if p],
)
def test_published_consistency_proofs_fail_when_one_hash_or_size_is_altered(first, second, proof):
    hashes = [bytes.fromhex(p) for p in proof]
    assert verify_consistency(first, second, _root(first), _root(second), hashes)
    accepted = [
        desc
        for desc, m, n, r1, r2, p in _tampered(first, second, _root(first), _root(second), hashes)
        if verify_consistency(m, n, r1, r2, p)
    ]
    assert accepted == []


def test_equal_sizes_need_equal_roots_and_an_empty_proof():
    # transparency-dev/merkle TestVerifyConsistency's fixed probes (same commit) at size 1
    one, other = _root(1), _root(2)
    assert verify_consistency(1, 1, one, one, [])
    assert not verify_consistency(1, 1, one, other, [])
    assert not verify_consistency(
        1, 1, bytes.fromhex(EMPTY_HEX), bytes.fromhex(EMPTY_HEX), [bytes.fromhex(EMPTY_HEX)]
    )
    assert not verify_consistency(2, 1, other, one, [])  # time travel to the past
    assert not verify_consistency(1, 2, one, other, [])  # a growing tree needs a proof


@pytest.mark.parametrize(
    "name, size1, size2, root1, root2, proof",
    PUBLISHED_REJECTS,
    ids=[r[0] for r in PUBLISHED_REJECTS],
)
def test_published_tampered_consistency_cases_are_rejected(name, size1, size2, root1, root2, proof):
    r1, r2 = base64.b64decode(root1), base64.b64decode(root2)
    assert (
        r1.hex() in ROOTS and r2.hex() == ROOTS[size2 - 1]
    )  # the base64 roots are the hex vectors' roots
    assert not verify_consistency(size1, size2, r1, r2, [base64.b64decode(p) for p in proof])


def _tree(n: int) -> MerkleTree:
    return MerkleTree([leaf_hash(bytes([i % 256, i // 256])) for i in range(n)])


def test_every_inclusion_proof_round_trips_and_tampering_fails():
    tree = _tree(37)
    for size in range(1, 38):
        root = tree.root(size)
        for i in range(size):
            proof = tree.inclusion_proof(i, size)
            assert verify_inclusion(tree.leaves[i], i, size, proof, root)
            assert not verify_inclusion(
                tree.leaves[(i + 1) % size] if size > 1 else b"x" * 32, i, size, proof, root
            )
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
                assert not verify_consistency(
                    m, n, tree.root(m), other.root(n), other.consistency_proof(m, n)
                )
            if m < n:
                assert not verify_consistency(
                    m, n, tree.root(m), tree.root(n - 1) if n - 1 >= m else b"", proof
                )


def test_root_cache_matches_a_fresh_computation():
    tree = _tree(100)
    roots = [tree.root(n) for n in range(101)]
    assert roots == [_tree(100).root(n) for n in range(101)]
