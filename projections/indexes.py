"""Audit indexes: which index rows a record adds.

Every index is a set of keys `<term> || seq` (8-byte big-endian) with empty
values, written in the append transaction, so a filtered query walks only
the rows for its term, newest or oldest first, and its cost grows with the
answer rather than with the log. Times need no index: the log's record times
never decrease, so a time bound becomes a seq bound by bisection.
"""

from __future__ import annotations

import functools
import struct

from keyledger import events as ev

SEQ = struct.Struct(">Q")
SEP = b"\x00"
ERROR_TERM = b"error"

#: index name -> what its term is
INDEXES = {
    "idx_key": "key id (every key the record concerns)",
    "idx_principal": "principal ARN",
    "idx_operation": "AWS operation name (CloudTrail eventName)",
    "idx_error": "the constant term ERROR_TERM (denied and failed requests only)",
    "idx_digest": "SHA-256 of a ciphertext, signature or MAC the record produced or consumed",
}


#: All indexes (and the Merkle nodes) live in one LMDB table, `audit`, each
#: under its own one-byte namespace: an append then dirties one B-tree, not
#: six, which is most of what the audit trail costs a small transaction.
NAMESPACE = {"idx_key": b"K", "idx_principal": b"P", "idx_operation": b"O", "idx_error": b"E",
             "idx_digest": b"D"}
MERKLE_NAMESPACE = b"M"


def term_prefix(index: str, term: bytes) -> bytes:
    return NAMESPACE[index] + term + SEP


def term_key(index: str, term: bytes, seq: int) -> bytes:
    return term_prefix(index, term) + SEQ.pack(seq)


def seq_of(index_key: bytes) -> int:
    seq: int = SEQ.unpack(index_key[-8:])[0]
    return seq


def digests_of(event: ev.Event) -> tuple[bytes, ...]:
    match event:
        case ev.ReEncrypted():
            return (event.source_ciphertext_digest, event.ciphertext_digest)
        case ev.Encrypted() | ev.Decrypted() | ev.DataKeyGenerated() | ev.DataKeyPairGenerated() | \
                ev.SharedSecretEncapsulated() | ev.SharedSecretDecapsulated():
            return (event.ciphertext_digest,)
        case ev.Signed() | ev.SignatureVerified():
            return (event.signature_digest,)
        case ev.MacGenerated() | ev.MacVerified():
            return (event.mac_digest,)
    return ()


#: LMDB keys are at most 511 bytes: a longer term (a caller's garbage KeyId in a
#: denied record) is left out of the index rather than failing the append
MAX_TERM_BYTES = 511 - 1 - len(SEP) - SEQ.size


@functools.lru_cache(maxsize=4096)
def prefixes(principal: str, operation: str) -> tuple[bytes, ...]:
    """The index rows every record of one append shares, as key prefixes
    (computed once per append, not per record; the same few pairs recur)."""
    return tuple(term_prefix(name, term) for name, term in
                 (("idx_principal", principal.encode()), ("idx_operation", operation.encode()))
                 if len(term) <= MAX_TERM_BYTES)


def event_rows(e: ev.Event, seq: bytes) -> list[bytes]:
    """The rows an event adds beyond its append's shared prefixes."""
    out = []
    for k in ev.key_ids_of(e):
        term = k.encode()
        if len(term) <= MAX_TERM_BYTES:
            out.append(b"K" + term + SEP + seq)
    if isinstance(e, ev.RequestDenied):
        out.append(b"E" + ERROR_TERM + SEP + seq)
    for d in digests_of(e):
        out.append(b"D" + d + SEP + seq)
    return out


def rows(record: ev.Record) -> list[bytes]:
    """Every index row of a record (what the append writes)."""
    seq = SEQ.pack(record.seq)
    return [prefix + seq for prefix in prefixes(record.principal, record.operation)] + \
        event_rows(record.event, seq)
