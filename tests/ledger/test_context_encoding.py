"""The canonical encryption-context encoding, with its cache of recent
encodings (issue 13), is byte for byte the documented encoding whatever the
dict's order, and the cache never answers for another context."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from keyledger import crypto


def reference(context: dict[str, str]) -> bytes:
    pairs = sorted((k.encode(), v.encode()) for k, v in context.items())
    out = bytearray(struct.pack(">H", len(pairs)))
    for k, v in pairs:
        out += struct.pack(">H", len(k)) + k + struct.pack(">H", len(v)) + v
    return bytes(out)


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(text, text, max_size=6), min_size=1, max_size=8), st.randoms())
def test_cached_encoding_is_the_reference(contexts: list[dict[str, str]], rnd: object) -> None:
    for context in contexts + contexts:  # the second pass answers from the cache
        shuffled = list(context.items())
        rnd.shuffle(shuffled)  # type: ignore[attr-defined]
        assert crypto.canonical_context(context) == reference(context)
        assert crypto.canonical_context(dict(shuffled)) == reference(context)


def test_length_prefixes_keep_contexts_apart() -> None:
    assert crypto.canonical_context({"a": "bc"}) != crypto.canonical_context({"ab": "c"})
    assert crypto.canonical_context({}) == b"\x00\x00"


def test_the_cache_stays_bounded() -> None:
    for i in range(10_000):
        assert crypto.canonical_context({"n": str(i)}) == reference({"n": str(i)})
    assert len(crypto._CONTEXTS) <= 4096
