"""Audit indexes: which index rows a record adds.

Every index is a set of keys `<term> || seq` (8-byte big-endian) with empty
values, written in the append transaction, so a filtered query walks only
the rows for its term, newest or oldest first, and its cost grows with the
answer rather than with the log. Times need no index: the log's record times
never decrease, so a time bound becomes a seq bound by bisection.
"""

from __future__ import annotations

import struct

from ledger import events as ev

SEQ = struct.Struct(">Q")
SEP = b"\x00"
ERROR_TERM = b"error"

#: index name -> what its term is
INDEXES = {
    "idx_key": "key id (every key the record concerns)",
    "idx_principal": "principal ARN",
    "idx_operation": "AWS operation name (CloudTrail eventName)",
    "idx_error": "the constant term ERROR_TERM (denied and failed requests only)",
    "idx_digest": "SHA-256 of a ciphertext the record produced or consumed",
}


def term_key(term: bytes, seq: int) -> bytes:
    return term + SEP + SEQ.pack(seq)


def seq_of(index_key: bytes) -> int:
    return SEQ.unpack(index_key[-8:])[0]


def digests_of(event: ev.Event) -> tuple[bytes, ...]:
    match event:
        case ev.ReEncrypted():
            return (event.source_ciphertext_digest, event.ciphertext_digest)
        case ev.Encrypted() | ev.Decrypted() | ev.DataKeyGenerated():
            return (event.ciphertext_digest,)
    return ()


#: LMDB keys are at most 511 bytes: a longer term (a caller's garbage KeyId in a
#: denied record) is left out of the index rather than failing the append
MAX_TERM_BYTES = 511 - len(SEP) - SEQ.size


def prefixes(principal: str, operation: str) -> list[tuple[str, bytes]]:
    """The index rows every record of one append shares, as key prefixes
    (computed once per append, not per record)."""
    return [(name, term + SEP) for name, term in
            (("idx_principal", principal.encode()), ("idx_operation", operation.encode()))
            if len(term) <= MAX_TERM_BYTES]


def rows(record: ev.Record, shared: list[tuple[str, bytes]] | None = None) -> list[tuple[str, bytes]]:
    e = record.event
    seq = SEQ.pack(record.seq)
    if shared is None:
        shared = prefixes(record.principal, record.operation)
    out = [(name, prefix + seq) for name, prefix in shared]
    for k in ev.key_ids_of(e):
        term = k.encode()
        if len(term) <= MAX_TERM_BYTES:
            out.append(("idx_key", term + SEP + seq))
    if isinstance(e, ev.RequestDenied):
        out.append(("idx_error", ERROR_TERM + SEP + seq))
    for d in digests_of(e):
        out.append(("idx_digest", d + SEP + seq))
    return out
