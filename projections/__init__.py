"""Projections: pure folds of the log into the tables the service reads.

`apply(tables, record)` is the one entry point: the store calls it inside the
append transaction with LMDB-backed tables, replay calls it with in-memory
ones. Either way the same pure `evolve` functions run, so the live tables are
exactly `fold(evolve, log)`, which `projections.replay` checks.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol

import msgspec

from keyledger import events as ev
from keyledger.projections import aliases, grants, keys, parameters, principals, usage
from keyledger.projections.state import AliasState, GrantState, KeyState, ParameterState, PrincipalState, UsageState

#: table name -> the struct type its rows hold
TABLES: dict[str, type] = {"keys": KeyState, "aliases": AliasState, "usage": UsageState,
                           "principals": PrincipalState, "grants": GrantState, "parameters": ParameterState}


def key_row(key_id: str) -> bytes:
    return key_id.encode()


def usage_row(key_id: str, version: int) -> bytes:
    return f"{key_id}#{version:010d}".encode()


def alias_row(alias_name: str) -> bytes:
    return alias_name.encode()


def principal_row(principal: str) -> bytes:
    return principal.encode()


def grant_row(key_id: str, grant_id: str) -> bytes:
    return f"{key_id}#{grant_id}".encode()


def parameter_row(name: str) -> bytes:
    return name.encode()


Fold = Callable[[Any, ev.Record], Any]


def _key(key_id: str) -> tuple[str, bytes, Fold]:
    return "keys", key_row(key_id), lambda s, r: keys.evolve(s, r, key_id)


def _usage(key_id: str, version: int) -> tuple[str, bytes, Fold]:
    return "usage", usage_row(key_id, version), lambda s, r: usage.evolve(s, r, key_id, version)


def _alias(name: str) -> tuple[str, bytes, Fold]:
    return "aliases", alias_row(name), aliases.evolve


def touched(event: ev.Event) -> list[tuple[str, bytes, Fold]]:
    """Which rows of which tables an event changes, with the fold for each."""
    match event:
        case ev.Encrypted() | ev.Decrypted() | ev.DataKeyGenerated() | ev.DataKeyPairGenerated() | \
                ev.Signed() | ev.SignatureVerified() | ev.MacGenerated() | ev.MacVerified() | \
                ev.SharedSecretDerived():
            return [_usage(event.key_id, event.key_version)]
        case ev.ReEncrypted():
            src = (event.source_key_id, event.source_key_version)
            dst = (event.key_id, event.key_version)
            return [_usage(*src)] if src == dst else [_usage(*src), _usage(*dst)]
        case ev.AliasCreated() | ev.AliasDeleted():
            return [_alias(event.alias_name), _key(event.key_id)]
        case ev.AwsManagedKeyCreated():  # the key and its alias/aws/<service>, in one event
            return [_key(event.key_id), _alias(event.alias_name)]
        case ev.ImportParametersIssued():
            return []
        case ev.AliasUpdated():
            rows = [_alias(event.alias_name), _key(event.key_id)]
            if event.previous_key_id != event.key_id:
                rows.append(_key(event.previous_key_id))
            return rows
        case ev.PrincipalCreated() | ev.PrincipalPolicyPut() | ev.PrincipalPolicyDeleted() | \
                ev.AccessKeyCreated() | ev.AccessKeyDeleted():
            return [("principals", principal_row(event.principal), principals.evolve)]
        case ev.GrantCreated() | ev.GrantRetired() | ev.GrantRevoked():
            return [("grants", grant_row(event.key_id, event.grant_id), grants.evolve)]
        case ev.ParameterPut() | ev.ParameterDeleted() | ev.ParameterLabeled():
            return [("parameters", parameter_row(event.name), parameters.evolve)]
        case ev.ParametersRead():
            return []
        case ev.RandomGenerated() | ev.MetadataRead() | ev.RequestDenied() | ev.RootKeyRotated() | \
                ev.AccessKeyStatusChanged() | ev.UnauthenticatedRequestsRefused():
            return []
    return [_key(event.key_id)]


class Tables(Protocol):
    def get(self, table: str, row: bytes) -> Any: ...
    def put(self, table: str, row: bytes, value: Any) -> None: ...  # None deletes


def apply(tables: Tables, record: ev.Record) -> None:
    for table, row, fold in touched(record.event):
        tables.put(table, row, fold(tables.get(table, row), record))


class MemoryTables:
    """Tables held in dicts: what replay folds into."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[bytes, Any]] = {name: {} for name in TABLES}

    def get(self, table: str, row: bytes) -> Any:
        return self.rows[table].get(row)

    def put(self, table: str, row: bytes, value: Any) -> None:
        if value is None:
            self.rows[table].pop(row, None)
        else:
            self.rows[table][row] = value


def fold(records: Iterable[ev.Record]) -> MemoryTables:
    tables = MemoryTables()
    for record in records:
        apply(tables, record)
    return tables


_encoder = msgspec.msgpack.Encoder(order="deterministic")
DECODERS: dict[str, msgspec.msgpack.Decoder[Any]] = {
    name: msgspec.msgpack.Decoder(cls) for name, cls in TABLES.items()}


def encode_row(value: Any) -> bytes:
    return _encoder.encode(value)


def decode_row(table: str, data: bytes) -> Any:
    return DECODERS[table].decode(data)
