"""The RFC 6962 Merkle tree (projections.merkle), against published vectors
and by property.

Vectors: the 8-leaf tree of the certificate-transparency test data, as
carried by transparency-dev/merkle in proof/verify_test.go (commit
02194e9afb6c1d95b5381350007963aa70fff472: `leaves`, `roots`,
`inclusionProofs`, `consistencyProofs`; there the leaf numbers of the
inclusion vectors are 1-based). The same values are in
certificate-transparency's merkle_tree_test.cc.

Properties (hypothesis): for random logs of distinct leaves and random
n <= m, the inclusion proof of every leaf and the consistency proof n -> m
verify, and every altered proof fails: a changed hash, a dropped or extra
element, a wrong index, and a wrong size (checked against the true root of
the size claimed, as a signed checkpoint binds them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keyledger
from keyledger.store import Store
from keyledger.projections import merkle

LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]

#: MTH(D[0:n]) for n = 1..8
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]

#: (0-based leaf index, tree size, audit path)
INCLUSION = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]

#: (old size, new size, proof)
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]

EMPTY_TREE = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def stored_nodes(leaves: list[bytes]) -> Callable[[int, int], bytes]:
    """The node lookup the store offers: every complete subtree, built leaf
    by leaf with `merkle.push` exactly as the append transaction does (leaves
    come from their records, as `Snapshot.node` recomputes them)."""
    nodes: dict[tuple[int, int], bytes] = {}
    frontier: merkle.Frontier = ()
    for i, data in enumerate(leaves):
        nodes[(0, i)] = merkle.leaf_hash(data)
        frontier, made = merkle.push(frontier, i, nodes[(0, i)])
        for level, index, h in made:
            nodes[(level, index)] = h

    def node(level: int, index: int) -> bytes:
        return nodes[(level, index)]
    return node


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 MTH, written out directly (the reference)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


# -- the published vectors ----------------------------------------------------------

def test_hashes_of_the_empty_tree_and_of_leaves() -> None:
    assert merkle.EMPTY_ROOT == EMPTY_TREE == mth([])
    assert merkle.root(0, stored_nodes([])) == EMPTY_TREE
    # RFC 6962 leaf hash of the empty leaf is the root of the 1-leaf tree
    assert merkle.leaf_hash(b"") == ROOTS[0]


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_of_every_prefix(size: int) -> None:
    node = stored_nodes(LEAVES)
    assert merkle.root(size, node) == ROOTS[size - 1]
    assert mth(LEAVES[:size]) == ROOTS[size - 1]  # the reference agrees with the vectors


@pytest.mark.parametrize("index, size, path", INCLUSION)
def test_known_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    proof = merkle.inclusion_proof(index, size, stored_nodes(LEAVES))
    assert [h.hex() for h in proof] == path
    leaf = merkle.leaf_hash(LEAVES[index])
    assert merkle.verify_inclusion(index, size, leaf, proof, ROOTS[size - 1])
    assert merkle.root_from_inclusion(index, size, leaf, proof) == ROOTS[size - 1]


@pytest.mark.parametrize("old, new, path", CONSISTENCY)
def test_known_consistency_proofs(old: int, new: int, path: list[str]) -> None:
    proof = merkle.consistency_proof(old, new, stored_nodes(LEAVES))
    assert [h.hex() for h in proof] == path
    assert merkle.verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)


@pytest.mark.parametrize("index, size, path", [v for v in INCLUSION if v[2]])
def test_known_inclusion_proofs_altered(index: int, size: int, path: list[str]) -> None:
    """transparency-dev's corruptInclusionProof probes, on the vectors."""
    proof = [bytes.fromhex(h) for h in path]
    leaf, root = merkle.leaf_hash(LEAVES[index]), ROOTS[size - 1]
    some = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    probes = [
        (index - 1, size, leaf, proof, root), (index + 1, size, leaf, proof, root),
        (index ^ 2, size, leaf, proof, root), (index, size * 2, leaf, proof, root),
        (index, size // 2, leaf, proof, root), (index, size, b"WrongLeaf", proof, root),
        (index, size, leaf, proof, EMPTY_TREE), (index, size, leaf, proof, some),
        (index, size, leaf, proof + [b""], root), (index, size, leaf, proof + [root], root),
        (index, size, leaf, [b""] + proof, root), (index, size, leaf, [root] + proof, root),
        (index, size, leaf, proof[:-1], root),
    ]
    if len(proof) > 1:
        probes.append((index, size, leaf, [proof[0], some, *proof[1:]], root))
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        probes.append((index, size, leaf, bad, root))
    for probe in probes:
        assert not merkle.verify_inclusion(*probe), probe[:2]


@pytest.mark.parametrize("old, new, path", [v for v in CONSISTENCY if v[2]])
def test_known_consistency_proofs_altered(old: int, new: int, path: list[str]) -> None:
    """transparency-dev's corruptConsistencyProof probes, on the vectors."""
    proof = [bytes.fromhex(h) for h in path]
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    probes = [
        (old - 1, new, r1, r2, proof), (old + 1, new, r1, r2, proof), (old ^ 2, new, r1, r2, proof),
        (old, new * 2, r1, r2, proof), (old, new // 2, r1, r2, proof),
        (old, new, b"WrongRoot", r2, proof), (old, new, r1, b"WrongRoot", proof), (old, new, r2, r1, proof),
        (old, new, r1, r2, []), (old, new, r1, r2, proof + [b""]), (old, new, r1, r2, proof + [r1]),
        (old, new, r1, r2, proof + [r2]), (old, new, r1, r2, [b""] + proof), (old, new, r1, r2, [r1] + proof),
        (old, new, r1, r2, [r2] + proof), (old, new, r1, r2, [proof[0]] + proof),
        (old, new, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
        probes.append((old, new, r1, r2, bad))
    for probe in probes:
        assert not merkle.verify_consistency(*probe), probe[:2]


def test_degenerate_consistency() -> None:
    r = ROOTS[0]
    assert merkle.verify_consistency(1, 1, r, r, [])
    assert not merkle.verify_consistency(1, 1, r, ROOTS[1], [])  # same size, different roots
    assert not merkle.verify_consistency(1, 1, r, r, [EMPTY_TREE])  # roots match, proof not empty
    assert not merkle.verify_consistency(2, 1, r, r, [])  # time travel
    assert not merkle.verify_consistency(0, 1, EMPTY_TREE, r, [])  # sizes start at 1 here
    with pytest.raises(ValueError):
        merkle.consistency_proof(0, 3, stored_nodes(LEAVES))
    with pytest.raises(ValueError):
        merkle.inclusion_proof(3, 3, stored_nodes(LEAVES))


# -- properties ------------------------------------------------------------------------

logs = st.lists(st.binary(max_size=24), min_size=1, max_size=70, unique=True)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def flipped(h: bytes, bit: int) -> bytes:
    out = bytearray(h)
    out[(bit // 8) % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


def inclusion_alterations(proof: list[bytes], data: st.DataObject) -> list[list[bytes]]:
    out = []
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        out.append(proof[:i] + [flipped(proof[i], bit)] + proof[i + 1:])  # a changed hash
        out.append(proof[:i] + proof[i + 1:])  # a dropped element
    extra = data.draw(st.binary(min_size=32, max_size=32), label="extra")
    at = data.draw(st.integers(0, len(proof)), label="at")
    out.append(proof[:at] + [extra] + proof[at:])  # an extra element
    if proof:
        out.append(proof + [proof[-1]])  # a repeated element
    return out


@PROPERTY
@given(leaves=logs, data=st.data())
def test_inclusion_proofs_verify_and_altered_ones_fail(leaves: list[bytes], data: st.DataObject) -> None:
    node = stored_nodes(leaves)
    n = data.draw(st.integers(1, len(leaves)), label="n")
    root = merkle.root(n, node)
    assert root == mth(leaves[:n])
    for i in range(n):
        leaf = merkle.leaf_hash(leaves[i])
        proof = merkle.inclusion_proof(i, n, node)
        assert merkle.verify_inclusion(i, n, leaf, proof, root)
    i = data.draw(st.integers(0, n - 1), label="i")
    leaf = merkle.leaf_hash(leaves[i])
    proof = merkle.inclusion_proof(i, n, node)
    for bad in inclusion_alterations(proof, data):
        assert not merkle.verify_inclusion(i, n, leaf, bad, root)
    # a wrong index: the same leaf hash and root, another position
    j = data.draw(st.integers(0, n + 2).filter(lambda j: j != i), label="wrong index")
    assert not merkle.verify_inclusion(j, n, leaf, proof, root)
    # another leaf's hash at this position
    if n > 1:
        assert not merkle.verify_inclusion(i, n, merkle.leaf_hash(leaves[(i + 1) % n]), proof, root)
    # a wrong size, against the true root of the size claimed (what a signed
    # checkpoint binds): only a proof that is that tree's own proof passes
    sizes = [m for m in range(i + 1, len(leaves) + 1) if m != n]
    if sizes:
        m = data.draw(st.sampled_from(sizes), label="wrong size")
        assert merkle.verify_inclusion(i, m, leaf, proof, merkle.root(m, node)) == \
            (proof == merkle.inclusion_proof(i, m, node))


@PROPERTY
@given(leaves=logs, data=st.data())
def test_consistency_proofs_verify_and_altered_ones_fail(leaves: list[bytes], data: st.DataObject) -> None:
    node = stored_nodes(leaves)
    m = data.draw(st.integers(1, len(leaves)), label="m")
    n = data.draw(st.integers(1, m), label="n")
    old, new = merkle.root(n, node), merkle.root(m, node)
    assert (old, new) == (mth(leaves[:n]), mth(leaves[:m]))
    proof = merkle.consistency_proof(n, m, node)
    assert merkle.verify_consistency(n, m, old, new, proof)
    for k in range(1, m + 1):  # every older size is consistent with m
        assert merkle.verify_consistency(k, m, merkle.root(k, node), new, merkle.consistency_proof(k, m, node))
    if n == m:
        assert proof == []
        assert not merkle.verify_consistency(n, m, old, new, [data.draw(st.binary(min_size=32, max_size=32))])
        return
    for bad in inclusion_alterations(proof, data):
        assert not merkle.verify_consistency(n, m, old, new, bad)
    assert not merkle.verify_consistency(n, m, new, old, proof)  # swapped roots
    assert not merkle.verify_consistency(n, m, flipped(old, 3), new, proof)
    assert not merkle.verify_consistency(n, m, old, flipped(new, 200), proof)
    # wrong sizes, against the true roots of the sizes claimed
    n2 = data.draw(st.integers(1, len(leaves)), label="wrong old size")
    m2 = data.draw(st.integers(max(n2, 1), len(leaves)), label="wrong new size")
    if (n2, m2) != (n, m):
        expected = n2 <= m2 and proof == merkle.consistency_proof(n2, m2, node)
        assert merkle.verify_consistency(n2, m2, merkle.root(n2, node), merkle.root(m2, node), proof) == expected


# -- the store keeps the same tree ----------------------------------------------------------

def test_the_stored_tree_of_a_real_ledger_is_rfc6962(tmp_path) -> None:
    with keyledger.open(tmp_path / "ledger", create=True, durability="relaxed") as kms:
        key = kms.create_key().key_metadata.key_id
        for i in range(20):
            kms.encrypt(key, b"%d" % i)
    store = Store(str(tmp_path / "ledger"), readonly=True)
    try:
        with store.snapshot() as snap:
            bodies = [raw.body for raw in snap.raw_records()]
            assert len(bodies) == 21
            for n in range(1, len(bodies) + 1):
                assert merkle.root(n, snap.node) == mth(bodies[:n])
            for i in range(len(bodies)):
                proof = merkle.inclusion_proof(i, len(bodies), snap.node)
                assert merkle.verify_inclusion(i, len(bodies), merkle.leaf_hash(bodies[i]), proof, mth(bodies))
    finally:
        store.close()
