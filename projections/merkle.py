"""RFC 6962 / RFC 9162 Merkle tree over the log, from stored subtree hashes.

Leaf i is the canonical bytes of record i: leaf hash = SHA-256(0x00 || bytes),
interior node = SHA-256(0x01 || left || right). The store keeps the hash of
every *complete* aligned interior subtree, addressed by (level, index): the
subtree of leaves [index * 2^level, (index + 1) * 2^level), and the right
edge of the tree (the frontier) with the log's head, so an append needs no
reads and about one write. A leaf hash (level 0) is recomputed from its
record when asked for. From those, the root of any prefix and the inclusion
and consistency proofs of RFC 9162 section 2.1 need O(log^2 n) reads, never
the whole log.

Everything here is pure: `node(level, index)` is the only way in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

Node = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


Frontier = tuple[tuple[int, bytes], ...]  # the right edge: (level, hash), levels decreasing


def push(frontier: Frontier, size: int, leaf: bytes) -> tuple[Frontier, list[tuple[int, int, bytes]]]:
    """Append leaf number `size` to a tree whose right edge is `frontier`:
    the new right edge, and the complete interior subtrees (level >= 1,
    index, hash) it finishes. The store keeps only those: a leaf hash is
    recomputed from its record when a proof needs it."""
    stack = list(frontier)
    level, h, made = 0, leaf, []
    while stack and stack[-1][0] == level:
        h = node_hash(stack.pop()[1], h)
        level += 1
        made.append((level, size >> level, h))
    stack.append((level, h))
    return tuple(stack), made


def frontier_of(size: int, node: Node) -> Frontier:
    """The right edge of the tree of `size` leaves, from stored subtrees."""
    out, offset = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, node(level, offset >> level)))
            offset += 1 << level
    return tuple(out)


def root_of_frontier(frontier: Frontier) -> bytes:
    if not frontier:
        return EMPTY_ROOT
    h = frontier[-1][1]
    for _, left in reversed(frontier[:-1]):
        h = node_hash(left, h)
    return h


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def subtree(start: int, end: int, node: Node) -> bytes:
    """MTH(D[start:end]) for start aligned as RFC 6962's recursion leaves it."""
    size = end - start
    if size & (size - 1) == 0 and start % size == 0:
        level = size.bit_length() - 1
        return node(level, start >> level)
    k = _largest_power_of_two_below(size)
    return node_hash(subtree(start, start + k, node), subtree(start + k, end, node))


def root(n: int, node: Node) -> bytes:
    return EMPTY_ROOT if n == 0 else subtree(0, n, node)


def inclusion_proof(m: int, n: int, node: Node) -> list[bytes]:
    """PATH(m, D[0:n]) of RFC 6962 section 2.1.1."""
    if not 0 <= m < n:
        raise ValueError("leaf index out of range")
    return _path(m, 0, n, node)


def _path(m: int, start: int, end: int, node: Node) -> list[bytes]:
    size = end - start
    if size == 1:
        return []
    k = _largest_power_of_two_below(size)
    if m < k:
        return _path(m, start, start + k, node) + [subtree(start + k, end, node)]
    return _path(m - k, start + k, end, node) + [subtree(start, start + k, node)]


def consistency_proof(m: int, n: int, node: Node) -> list[bytes]:
    """PROOF(m, D[0:n]) of RFC 6962 section 2.1.2."""
    if not 0 < m <= n:
        raise ValueError("need 0 < old size <= new size")
    return _subproof(m, 0, n, True, node)


def _subproof(m: int, start: int, end: int, whole: bool, node: Node) -> list[bytes]:
    size = end - start
    if m == size:
        return [] if whole else [subtree(start, end, node)]
    k = _largest_power_of_two_below(size)
    if m <= k:
        return _subproof(m, start, start + k, whole, node) + [subtree(start + k, end, node)]
    return _subproof(m - k, start + k, end, False, node) + [subtree(start, start + k, node)]


# -- verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2) --------------------

def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The root an inclusion proof implies, or None if it is malformed."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes) -> bool:
    return root_from_inclusion(index, size, leaf, proof) == expected_root


def verify_consistency(m: int, n: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    if not 0 < m <= n:
        return False
    if m == n:
        return not proof and old_root == new_root
    proof = list(proof)
    if m & (m - 1) == 0:  # m is a power of two: the old root is the first node
        proof = [old_root] + proof
    if not proof:
        return False
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root
