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


# Regions. Keys, aliases, grants and usage belong to a region. The rows of
# the ledger's initial region keep the names they always had (so ledgers made
# before regions need no migration); another region's rows are prefixed
# "~<region>/", which sorts after every key id ([0-9a-f], "mrk-") and alias
# name ("alias/"), so the initial region's rows come first and each other
# region's rows are one contiguous prefix. A *scope* is "" for the initial
# region, else the region's name; the records carry it (Record.scope).
REGION_MARK = "~"


def scoped(scope: str, name: str) -> bytes:
    return f"{REGION_MARK}{scope}/{name}".encode() if scope else name.encode()


def scope_prefix(scope: str) -> bytes:
    """The row prefix of a region's rows (b"" for the initial region's,
    which end where the first b"~" row begins: see `in_scope`)."""
    return f"{REGION_MARK}{scope}/".encode() if scope else b""


def in_scope(row: bytes, scope: str) -> bool:
    return row.startswith(scope_prefix(scope)) if scope else not row.startswith(REGION_MARK.encode())


def split_row(row: bytes) -> tuple[str, str]:
    """(scope, name) of a region-scoped row key (a key id, alias name, ...)."""
    text = row.decode()
    if text.startswith(REGION_MARK):
        scope, _, name = text[1:].partition("/")
        return scope, name
    return "", text


def key_row(key_id: str, scope: str = "") -> bytes:
    """A key's row; also the name of its KEK row in `keks`."""
    return scoped(scope, key_id)


#: the prefix of an access key's row in `keks` (its secret, wrapped under the root key)
ACCESS_KEY_ROW_PREFIX = "iam/"


def access_key_row(access_key_id: str) -> str:
    """The name of a held access key's secret row in `keks` ("iam/AKIA...":
    never a key row's name, which is a key id or "~<region>/<id>")."""
    return ACCESS_KEY_ROW_PREFIX + access_key_id


def usage_row(key_id: str, version: int, scope: str = "") -> bytes:
    return scoped(scope, f"{key_id}#{version:010d}")


def alias_row(alias_name: str, scope: str = "") -> bytes:
    return scoped(scope, alias_name)


def principal_row(principal: str) -> bytes:
    return principal.encode()


def grant_row(key_id: str, grant_id: str, scope: str = "") -> bytes:
    return scoped(scope, f"{key_id}#{grant_id}")


def parameter_row(name: str, scope: str = "") -> bytes:
    """A parameter's row: SSM parameters are regional, scoped like keys (a
    parameter name never holds "~", so the initial region's rows come first)."""
    return scoped(scope, name)


Fold = Callable[[Any, ev.Record], Any]


def _key(key_id: str, scope: str) -> tuple[str, bytes, Fold]:
    return "keys", key_row(key_id, scope), lambda s, r: keys.evolve(s, r, key_id)


def _usage(key_id: str, version: int, scope: str) -> tuple[str, bytes, Fold]:
    return "usage", usage_row(key_id, version, scope), lambda s, r: usage.evolve(s, r, key_id, version)


def _alias(name: str, scope: str) -> tuple[str, bytes, Fold]:
    return "aliases", alias_row(name, scope), aliases.evolve


def touched(event: ev.Event, scope: str = "") -> list[tuple[str, bytes, Fold]]:
    """Which rows of which tables an event changes, with the fold for each;
    `scope` is its record's region scope."""
    if isinstance(event, usage.SINGLE_KEY_USES):
        return [_usage(event.key_id, event.key_version, scope)]
    match event:
        case ev.ReEncrypted():
            src = (event.source_key_id, event.source_key_version)
            dst = (event.key_id, event.key_version)
            return [_usage(*src, scope)] if src == dst else [_usage(*src, scope), _usage(*dst, scope)]
        case ev.AliasCreated() | ev.AliasDeleted():
            return [_alias(event.alias_name, scope), _key(event.key_id, scope)]
        case ev.AwsManagedKeyCreated():  # the key and its alias/aws/<service>, in one event
            return [_key(event.key_id, scope), _alias(event.alias_name, scope)]
        case ev.ImportParametersIssued():
            return []
        case ev.AliasUpdated():
            rows = [_alias(event.alias_name, scope), _key(event.key_id, scope)]
            if event.previous_key_id != event.key_id:
                rows.append(_key(event.previous_key_id, scope))
            return rows
        case ev.PrincipalCreated() | ev.PrincipalPolicyPut() | ev.PrincipalPolicyDeleted() | \
                ev.AccessKeyCreated() | ev.AccessKeyStatusChanged() | ev.AccessKeyDeleted() | \
                ev.PrincipalDeleted() | ev.RoleTrustPolicyUpdated() | ev.PrincipalTagged() | ev.PrincipalUntagged() | \
                ev.RoleUpdated():
            return [("principals", principal_row(event.principal), principals.evolve)]
        case ev.GrantCreated() | ev.GrantRetired() | ev.GrantRevoked() | ev.GrantPrincipalDeleted():
            return [("grants", grant_row(event.key_id, event.grant_id, scope), grants.evolve)]
        case ev.ParameterPut() | ev.ParameterDeleted() | ev.ParameterLabeled() | ev.ParameterUnlabeled() | \
                ev.ParameterTagged() | ev.ParameterUntagged():
            return [("parameters", parameter_row(event.name, scope), parameters.evolve)]
        case ev.ParametersRead():
            return []
        case ev.RandomGenerated() | ev.MetadataRead() | ev.RequestDenied() | ev.RootKeyRotated() | \
                ev.UnauthenticatedRequestsRefused() | ev.RoleAssumed():
            return []
        case ev.KeyReplicated() | ev.PrimaryRegionUpdated() | ev.ReplicaKeyRemoved():
            # every key of the multi-Region set learns the set (a new replica's row is made by
            # its ReplicaKeyCreated; a removed replica's row is Deleted and keeps its last view)
            return [_key(event.key_id, region) for region in (event.primary_region, *event.replica_regions)]
    return [_key(event.key_id, scope)]


class Tables(Protocol):
    def get(self, table: str, row: bytes) -> Any: ...
    def put(self, table: str, row: bytes, value: Any) -> None: ...  # None deletes


def apply(tables: Tables, record: ev.Record) -> None:
    for table, row, fold in touched(record.event, record.scope):
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
