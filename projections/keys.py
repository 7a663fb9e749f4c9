"""Key state: metadata, lifecycle, rotation settings, versions, tags, aliases."""

from __future__ import annotations

from msgspec.structs import replace

from keyledger import events as ev
from keyledger.projections.state import DAY_US, ImportedMaterial, KeyState, VersionInfo


def _version(material: ev.WrappedMaterial, created: int, rotation_type: str | None) -> VersionInfo:
    return VersionInfo(material.version, created, rotation_type, material.wrapped, material.kcv,
                       material.public_key)


def evolve(state: KeyState | None, record: ev.Record, key_id: str) -> KeyState | None:
    """Fold one record into the state of key `key_id`. Pure and total."""
    e, t = record.event, record.time
    match e:
        case ev.KeyCreated() if e.origin == "EXTERNAL":  # no material until ImportKeyMaterial
            return KeyState(
                key_id=e.key_id, created=t, description=e.description,
                key_usage=e.key_usage, key_spec=e.key_spec, origin=e.origin,
                state="PendingImport", state_changed=t, versions=(), tags=dict(e.tags), policy=e.policy,
                region=record.scope, primary_region=_primary(e.key_id, record))
        case ev.KeyCreated():
            return KeyState(
                key_id=e.key_id, created=t, description=e.description,
                key_usage=e.key_usage, key_spec=e.key_spec, origin=e.origin,
                state="Enabled", state_changed=t, versions=(_version(e.material, t, None),),
                tags=dict(e.tags), policy=e.policy, region=record.scope,
                primary_region=_primary(e.key_id, record))
        case ev.AwsManagedKeyCreated():
            return KeyState(
                key_id=e.key_id, created=t, description=e.description, key_usage="ENCRYPT_DECRYPT",
                key_spec="SYMMETRIC_DEFAULT", origin="AWS_KMS", state="Enabled", state_changed=t,
                versions=(_version(e.material, t, None),), aliases=(e.alias_name,), policy=e.policy,
                key_manager="AWS", rotation_enabled=True, rotation_period_days=365, rotation_anchor=t,
                region=record.scope)
        case ev.ReplicaKeyCreated():
            versions = tuple(_version(v.material, v.created, v.rotation_type) for v in e.versions)
            external = e.origin == "EXTERNAL"  # the same material must be imported into the replica
            return KeyState(
                key_id=e.key_id, created=t, description=e.description, key_usage=e.key_usage,
                key_spec=e.key_spec, origin=e.origin, state="PendingImport" if external else "Enabled",
                state_changed=t, versions=versions, tags=dict(e.tags), policy=e.policy,
                rotation_enabled=e.rotation_period_days is not None, rotation_period_days=e.rotation_period_days,
                rotation_anchor=e.rotation_anchor, on_demand_rotations=e.on_demand_rotations,
                imports=tuple(ImportedMaterial(v.version, "PENDING_IMPORT", "KEY_MATERIAL_DOES_NOT_EXPIRE")
                              for v in versions) if external else (),
                region=record.scope, primary_region=e.primary_region, replica_regions=tuple(e.replica_regions))
    if state is None:
        return None
    match e:
        case ev.KeyPolicyPut() | ev.KeyPolicyPrincipalDeleted():
            return replace(state, policy=e.policy)
        case ev.KeyDescriptionUpdated():
            return replace(state, description=e.description)
        case ev.KeyEnabled():
            return state if state.state == "Enabled" else replace(state, state="Enabled", state_changed=t)
        case ev.KeyDisabled():
            return state if state.state == "Disabled" else replace(state, state="Disabled", state_changed=t)
        case ev.KeyDeletionScheduled() if state.replica_regions and not state.is_replica:
            # AWS: a primary waits for its replicas; its own waiting period starts after the last
            return replace(state, state="PendingReplicaDeletion", state_changed=t, deletion_date=None,
                           pending_window_days=e.pending_window_days)
        case ev.KeyDeletionScheduled():
            return replace(state, state="PendingDeletion", state_changed=t,
                           deletion_date=e.deletion_date, pending_window_days=e.pending_window_days)
        case ev.KeyReplicated() | ev.PrimaryRegionUpdated():
            return replace(state, primary_region=e.primary_region, replica_regions=tuple(e.replica_regions))
        case ev.ReplicaKeyRemoved():
            state = replace(state, primary_region=e.primary_region, replica_regions=tuple(e.replica_regions))
            if state.state == "PendingReplicaDeletion" and not state.replica_regions:
                days = state.pending_window_days or 30
                return replace(state, state="PendingDeletion", state_changed=t, deletion_date=t + days * DAY_US)
            return state
        case ev.KeyDeletionCancelled():
            # a key whose imported material is missing goes back to waiting for it
            back = "PendingImport" if missing_material(state) else "Disabled"
            return replace(state, state=back, state_changed=t, deletion_date=None, pending_window_days=None)
        case ev.KeyDeleted():
            return replace(state, state="Deleted", state_changed=t, deleted=t, aliases=())
        case ev.KeyTagged():
            return replace(state, tags={**state.tags, **e.tags})
        case ev.KeyUntagged():
            return replace(state, tags={k: v for k, v in state.tags.items() if k not in e.tag_keys})
        case ev.KeyRotationEnabled():
            # Re-enabling (or changing the period) keeps an existing anchor,
            # so the next date is last automatic rotation + new period, as in AWS.
            anchor = state.rotation_anchor if state.rotation_enabled and state.rotation_anchor is not None else t
            return replace(state, rotation_enabled=True, rotation_period_days=e.rotation_period_days,
                           rotation_anchor=anchor)
        case ev.KeyRotationDisabled():
            return replace(state, rotation_enabled=False, rotation_anchor=None)
        case ev.KeyRotated():
            versions = state.versions + (_version(e.material, e.rotation_date, e.rotation_type),)
            if state.pending_rotation is not None:  # imported material made current (RotateKeyOnDemand)
                state = replace(state, pending_rotation=None)
            if e.rotation_type == "AUTOMATIC":
                return replace(state, versions=versions, rotation_anchor=e.rotation_date)
            return replace(state, versions=versions, on_demand_rotations=state.on_demand_rotations + 1)
        case ev.AliasCreated():
            return replace(state, aliases=tuple(sorted({*state.aliases, e.alias_name})))
        case ev.AliasUpdated():
            if e.key_id == key_id:  # a set: UpdateAlias to the key it names already is a no-op
                return replace(state, aliases=tuple(sorted({*state.aliases, e.alias_name})))
            return replace(state, aliases=tuple(a for a in state.aliases if a != e.alias_name))
        case ev.AliasDeleted():
            return replace(state, aliases=tuple(a for a in state.aliases if a != e.alias_name))
        case ev.KeyMaterialImported() | ev.ImportedKeyMaterialDeleted() | ev.ImportedKeyMaterialExpired():
            return _imported(state, e, t)
    return state


def _primary(key_id: str, record: ev.Record) -> str | None:
    """A multi-Region key (an `mrk-` id) is created as the primary of its set."""
    return record.scope if key_id.startswith("mrk-") else None


def missing_material(state: KeyState) -> bool:
    """An EXTERNAL key lacks some material permanently associated with it
    (never imported, deleted or expired): it cannot be used (PendingImport)."""
    if state.origin != "EXTERNAL":
        return False
    n = len(state.versions)
    return n == 0 or any(m.import_state != "IMPORTED" for m in state.imports[:n])


def _imported(state: KeyState,
              e: ev.KeyMaterialImported | ev.ImportedKeyMaterialDeleted | ev.ImportedKeyMaterialExpired,
              t: int) -> KeyState:
    """Fold an import, deletion or expiry of imported key material."""
    imports = {m.version: m for m in state.imports}
    versions, pending = state.versions, state.pending_rotation
    if isinstance(e, ev.KeyMaterialImported):
        previous = imports.get(e.version)
        imports[e.version] = ImportedMaterial(
            e.version, "IMPORTED", e.expiration_model, e.valid_to,
            e.description or (previous.description if previous is not None else ""))
        if e.material is not None and e.pending_rotation:
            pending = _version(e.material, t, "ON_DEMAND")
        elif e.material is not None:
            versions = versions + (_version(e.material, t, None),)
    elif pending is not None and e.version == pending.version:  # not associated yet: dropped
        imports.pop(e.version, None)
        pending = None
    elif e.version in imports:
        imports[e.version] = replace(imports[e.version], import_state="PENDING_IMPORT", valid_to=None)
    changed = replace(state, versions=versions, pending_rotation=pending,
                      imports=tuple(imports[v] for v in sorted(imports)))
    if changed.state in ("PendingDeletion", "Deleted"):
        return changed  # AWS: deleting or expiring material leaves a key pending deletion as it is
    if missing_material(changed):
        return changed if changed.state == "PendingImport" else replace(changed, state="PendingImport",
                                                                          state_changed=t)
    if changed.state == "PendingImport":
        return replace(changed, state="Enabled", state_changed=t)
    return changed

