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


def rows(record: ev.Record) -> list[tuple[str, bytes]]:
    e, seq = record.event, record.seq
    out = [(name, term_key(term, seq)) for name, term in
           ((name, k.encode()) for name, k in
            [*(("idx_key", k) for k in ev.key_ids_of(e)),
             ("idx_principal", record.principal), ("idx_operation", record.operation)])
           if len(term) <= MAX_TERM_BYTES]
    if isinstance(e, ev.RequestDenied):
        out.append(("idx_error", term_key(ERROR_TERM, seq)))
    out.extend(("idx_digest", term_key(d, seq)) for d in digests_of(e))
    return out
