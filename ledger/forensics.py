"""Forensics: what happened to a ciphertext, a key, or every key at a time,
and the proof that everything the log says was encrypted can still be opened.

All of it reads one consistent snapshot and writes nothing. Only
`prove_decryptable` needs the root key (to unwrap each version's material
and check its KCV); the rest needs only the log and its indexes.

Regions: a key id lives in one region (a multi-Region key's id in each
region of its set); its rows are found by their region scope
(`projections.key_row(key_id, scope)`, "" for the ledger's initial region),
and every answer names the region of each key and record it reports.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from keyledger import crypto
from keyledger import events as ev
from keyledger import keyspecs
from keyledger.errors import InvalidCiphertextException, LedgerError
from keyledger.policy import session_arn
from keyledger.secret import Secret
from keyledger.projections import in_scope, key_row, replay, usage
from keyledger.projections.query import Filter, query
from keyledger.projections.state import KeyState


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _who(record: ev.Record, home: str) -> dict[str, Any]:
    return {"seq": record.seq, "time": _iso(record.time), "principal": record.principal,
            "operation": record.operation, "request_id": record.request_id, "region": record.scope or home}


# -- regions ------------------------------------------------------------------------

def home_region(snapshot: Any) -> str:
    """The ledger's initial region (its rows and records name no region)."""
    return bytes(snapshot.meta()["region"]).decode()


def scope_of(snapshot: Any, region: str) -> str:
    """The row scope of a region name: "" for the initial region."""
    return "" if region == home_region(snapshot) else region


def key_scopes(snapshot: Any, key_id: str) -> list[str]:
    """The region scopes where `key_id` has a key row (deleted keys too),
    the initial region ("") first. A key id names one key in one region;
    only a multi-Region key (mrk-...) has a row in each region of its set.
    Found through the key's records (the key index): a row is made by a
    record of its own region."""
    single = not key_id.startswith("mrk-")
    if single and snapshot.get("keys", key_row(key_id)) is not None:
        return [""]
    seen: set[str] = set()
    found: list[str] = []
    for seq in snapshot.index_seqs("idx_key", key_id.encode()):
        scope = ev.decode(snapshot.raw_record(seq).body).scope
        if scope in seen:
            continue
        seen.add(scope)
        if snapshot.get("keys", key_row(key_id, scope)) is not None:
            found.append(scope)
            if single:
                break
    return sorted(found, key=lambda s: (s != "", s))


def ciphertext_history(snapshot: Any, blob: bytes) -> dict[str, Any]:
    """Which key and version a ciphertext names, the record that produced
    it, and every later Decrypt / ReEncrypt of it (found by its digest)."""
    key_id, version = crypto.parse_header(blob)
    digest = hashlib.sha256(blob).digest()
    home = home_region(snapshot)
    produced, used = None, []
    for seq in snapshot.index_seqs("idx_digest", digest):
        record = ev.decode(snapshot.raw_record(seq).body)
        e = record.event
        made_here = (isinstance(e, (ev.Encrypted, ev.DataKeyGenerated)) and e.ciphertext_digest == digest) or \
            (isinstance(e, ev.ReEncrypted) and e.ciphertext_digest == digest)
        if made_here and produced is None:
            produced = {**_who(record, home), "event": type(e).__name__}
        else:
            used.append({**_who(record, home), "event": type(e).__name__})
    # the region of the key that made it (a multi-Region key's ciphertext opens in every region of its set)
    if produced is not None:
        region = produced["region"]
    else:
        scopes = key_scopes(snapshot, key_id)
        region = (scopes[0] or home) if scopes else home
    return {"key_id": key_id, "key_version": version, "ciphertext_sha256": digest.hex(), "region": region,
            "produced_by": produced, "later_uses": used}


def message_history(snapshot: Any, header: Any) -> dict[str, Any]:
    """An AWS Encryption SDK message (its header, parsed by the ESDK:
    `keyledger.envelope.read_message_header`): for each encrypted data key,
    the `ciphertext_history` of its keyledger ciphertext (who generated or
    wrapped the data key, and every Decrypt of it), or None for a data key
    that is not a keyledger ciphertext (another provider's, a raw key's)."""
    keys = []
    for edk in header.encrypted_data_keys:
        try:
            found = ciphertext_history(snapshot, edk.ciphertext) if edk.provider_id == "aws-kms" else None
        except InvalidCiphertextException:
            found = None
        keys.append({"provider_id": edk.provider_id, "key_info": edk.key_info, "history": found})
    return {"message_id": header.message_id, "algorithm": header.algorithm,
            "encryption_context": dict(header.encryption_context), "frame_length": header.frame_length,
            "encrypted_data_keys": keys}


def key_timeline(snapshot: Any, key_id: str, *, region: str | None = None) -> dict[str, Any]:
    """A key's lifecycle, rotations, aliases, usage by principal and month,
    and the signatures it made (digests only). `region` (a region name)
    keeps the records made in that region; None: every region where the
    key id exists (a multi-Region key's replicas are listed per region in
    `regions`, each with its state and the aliases naming it there).
    Every entry names the region of its record."""
    home = home_region(snapshot)
    only = None if region is None else scope_of(snapshot, region)
    events: list[dict[str, Any]] = []
    by_principal: Counter[str] = Counter()
    by_month: Counter[str] = Counter()
    signatures: list[dict[str, Any]] = []
    aliases: dict[str, dict[str, str]] = defaultdict(dict)  # scope -> alias name -> when it came
    for seq in snapshot.index_seqs("idx_key", key_id.encode()):
        record = ev.decode(snapshot.raw_record(seq).body)
        scope = record.scope
        if only is not None and scope != only:
            continue
        e = record.event
        if isinstance(e, usage.USES):  # a use: counted, not listed in the timeline
            by_principal[record.principal] += 1
            by_month[_iso(record.time)[:7]] += 1
            if isinstance(e, ev.Signed):
                signatures.append(_signature_entry(record, e, home))
            continue
        if isinstance(e, ev.MetadataRead):
            continue
        entry = {**_who(record, home), "event": type(e).__name__}
        match e:
            case ev.KeyRotated():
                entry["rotation_type"] = e.rotation_type
                entry["new_version"] = e.material.version
            case ev.AliasCreated() | ev.AliasUpdated():
                if e.key_id == key_id:
                    aliases[scope][e.alias_name] = _iso(record.time)
                else:
                    aliases[scope].pop(e.alias_name, None)
                entry["alias"] = e.alias_name
            case ev.AliasDeleted():
                aliases[scope].pop(e.alias_name, None)
                entry["alias"] = e.alias_name
            case ev.RequestDenied():
                entry["error_code"] = e.error_code
        events.append(entry)
    regions: list[dict[str, Any]] = []
    for scope in key_scopes(snapshot, key_id):
        if only is not None and scope != only:
            continue
        state: KeyState = snapshot.get("keys", key_row(key_id, scope))
        kind = None if state.primary_region is None else "REPLICA" if state.is_replica else "PRIMARY"
        regions.append({"region": scope or home, "key_state": state.state, "multi_region_key_type": kind,
                        "aliases_now": sorted(aliases.get(scope, {}))})
    return {"key_id": key_id, "regions": regions, "timeline": events,
            "aliases_now": sorted({name for r in regions for name in r["aliases_now"]}),
            "usage_by_principal": dict(by_principal), "usage_by_month": dict(sorted(by_month.items())),
            "signatures": signatures}


def access_key_lifecycle(snapshot: Any, access_key_id: str) -> tuple[str | None, list[dict[str, Any]]]:
    """(owner, lifecycle) of an access key, from the operation index: the
    principal it signs for (a role session's ARN for an ASIA... key; None
    for a key the log never issued) and its records, oldest first: issued,
    switched on or off, deleted, or for a session the AssumeRole that
    issued it."""
    home = home_region(snapshot)
    lifecycle: list[dict[str, Any]] = []
    owner: str | None = None
    session = access_key_id.startswith("ASIA")
    for operation in ("AssumeRole",) if session else ("CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey"):
        for record in query(snapshot, Filter(operation=operation), newest_first=False):
            e = record.event
            if isinstance(e, ev.RoleAssumed) and e.access_key_id == access_key_id:
                owner = session_arn(e.role, e.session_name)
                lifecycle.append({**_who(record, home), "event": "RoleAssumed", "role": e.role,
                                  "session": owner, "expires": _iso(e.expires)})
            elif isinstance(e, (ev.AccessKeyCreated, ev.AccessKeyStatusChanged, ev.AccessKeyDeleted)) \
                    and e.access_key_id == access_key_id:
                owner = e.principal
                entry = {**_who(record, home), "event": type(e).__name__}
                if isinstance(e, ev.AccessKeyStatusChanged):
                    entry["status"] = e.status
                elif isinstance(e, ev.AccessKeyCreated):
                    entry["held"] = e.held
                lifecycle.append(entry)
    lifecycle.sort(key=lambda entry: entry["seq"])
    return owner, lifecycle


def access_key_history(snapshot: Any, access_key_id: str) -> dict[str, Any]:
    """What one access key did: whose it is, its lifecycle (issued,
    switched on or off, deleted; for a role session's ASIA... key, the
    AssumeRole that issued it), and every request it signed, summed up: by
    operation, by key, by source address, refusals, first and last use.
    A key signs only for its owner, so its requests are read through the
    owner's index; for a key the log never issued, every record is read.
    Failed attempts to sign with the key (a bad signature, the key
    inactive) are in the server's refusal summaries: `unauthenticated`
    lists each summary that names the key id (its count is the summary's,
    of every request it sums up from that address, not only this key's)."""
    home = home_region(snapshot)
    owner, lifecycle = access_key_lifecycle(snapshot, access_key_id)
    operations: Counter[str] = Counter()
    keys: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    refused: list[dict[str, Any]] = []
    first = last = None
    for record in query(snapshot, Filter(principal=owner, access_key=access_key_id), newest_first=False):
        operations[record.operation] += 1
        for key_id in ev.key_ids_of(record.event):
            keys[key_id] += 1
        if isinstance(record.source, str):
            sources[record.source] += 1
        if isinstance(record.event, ev.RequestDenied):
            refused.append({**_who(record, home), "error_code": record.event.error_code})
        first = first or _who(record, home)
        last = _who(record, home)
    unauthenticated = []
    for record in query(snapshot, Filter(operation="UnauthenticatedRequestsRefused"), newest_first=False):
        e = record.event
        if isinstance(e, ev.UnauthenticatedRequestsRefused) and access_key_id in e.access_key_ids:
            unauthenticated.append({"seq": record.seq, "time": _iso(e.first_time), "source": e.source_address,
                                    "error_code": e.error_code, "count": e.count})
    return {"access_key_id": access_key_id, "owner": owner, "lifecycle": lifecycle,
            "requests": sum(operations.values()), "first_use": first, "last_use": last,
            "by_operation": dict(operations.most_common()), "by_key": dict(keys.most_common()),
            "by_source": dict(sources.most_common()), "refused": refused,
            "unauthenticated": unauthenticated}


def _signature_entry(record: ev.Record, e: ev.Signed | ev.SignatureVerified, home: str) -> dict[str, Any]:
    return {**_who(record, home), "event": type(e).__name__, "key_id": e.key_id, "key_version": e.key_version,
            "signing_algorithm": e.signing_algorithm, "message_type": e.message_type,
            "message_sha256": e.message_digest.hex(), "signature_sha256": e.signature_digest.hex()}


def signature_history(snapshot: Any, signature: bytes, message_digest: bytes | None = None) -> dict[str, Any]:
    """Which key and record produced a signature (found by its digest), and
    every later Verify of it. With `message_digest` (the SHA-256 of the
    signed message, or the digest itself for a DIGEST signature) it also
    says whether the record was over that message: the log holds only the
    SHA-256 of what was sent, never the message."""
    digest = hashlib.sha256(signature).digest()
    home = home_region(snapshot)
    produced, verified = None, []
    for seq in snapshot.index_seqs("idx_digest", digest):
        record = ev.decode(snapshot.raw_record(seq).body)
        e = record.event
        if isinstance(e, ev.Signed) and e.signature_digest == digest and produced is None:
            produced = _signature_entry(record, e, home)
        elif isinstance(e, ev.SignatureVerified) and e.signature_digest == digest:
            verified.append(_signature_entry(record, e, home))
    out: dict[str, Any] = {"signature_sha256": digest.hex(), "produced_by": produced, "verifications": verified}
    if message_digest is not None and produced is not None:
        recorded = bytes.fromhex(produced["message_sha256"])
        out["message_matches"] = recorded in (message_digest, hashlib.sha256(message_digest).digest())
    return out


def keys_at(snapshot: Any, *, until_seq: int | None = None, until_time: int | None = None) -> list[dict[str, Any]]:
    tables, report = replay.state_at(snapshot, until_seq=until_seq, until_time=until_time)
    broken = report.chain_error
    if broken is not None and (until_seq is None or until_seq >= broken.seq):
        raise LedgerError(f"the log does not verify at seq {broken.seq} ({broken.reason}): "
                          "the state there cannot be trusted")
    home = home_region(snapshot)
    out = []
    for state in tables.rows["keys"].values():
        out.append({"key_id": state.key_id, "region": state.region or home, "state": state.state, "versions": len(state.versions),
                    "rotation_enabled": state.rotation_enabled,
                    "rotation_period_days": state.rotation_period_days,
                    "aliases": list(state.aliases), "description": state.description,
                    "created": _iso(state.created),
                    "deletion_date": _iso(state.deletion_date) if state.deletion_date else None})
    return sorted(out, key=lambda k: k["created"])


# -- the decryptability proof ---------------------------------------------------------

@dataclass
class VersionVerdict:
    version: int
    ciphertexts: int
    ok: bool
    reason: str = ""


@dataclass
class KeyVerdict:
    key_id: str
    state: str
    shredded: bool
    versions: list[VersionVerdict] = field(default_factory=list)
    region: str = ""  # the region of this key (a multi-Region key has one verdict per region that issued)
    scope: str = ""  # its row scope: "" for the ledger's initial region

    @property
    def ok(self) -> bool:
        return self.shredded or all(v.ok for v in self.versions)


@dataclass
class DecryptabilityReport:
    keys: list[KeyVerdict]
    corpus_total: int = 0
    corpus_opened: int = 0
    corpus_failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(k.ok for k in self.keys) and not self.corpus_failures


def _issued(records: Iterable[ev.Record]) -> dict[tuple[str, str], Counter[int]]:
    """(scope, key id) -> version -> ciphertexts issued: a record uses the
    keys of its own region."""
    issued: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
    for record in records:
        e = record.event
        if isinstance(e, (ev.Encrypted, ev.DataKeyGenerated, ev.DataKeyPairGenerated, ev.ReEncrypted)):
            issued[(record.scope, e.key_id)][e.key_version] += 1
    return issued


def _kek_name(key_id: str, scope: str) -> str:
    return key_row(key_id, scope).decode()  # a KEK row is named as its key's row


def _open_rsa(snapshot: Any, root: Secret, blob: bytes) -> str | None:
    """Open an RSA ciphertext this ledger's log says it produced (found by
    its digest: an RSA ciphertext names no key): None when it opens, else
    why not. The plaintext is discarded at once."""
    digest = hashlib.sha256(blob).digest()
    for seq in snapshot.index_seqs("idx_digest", digest):
        record = ev.decode(snapshot.raw_record(seq).body)
        e = record.event
        if isinstance(e, ev.Encrypted):
            algorithm = e.encryption_algorithm
        elif isinstance(e, ev.ReEncrypted):  # re-encrypted to an RSA key
            algorithm = e.destination_encryption_algorithm
        else:
            continue
        if e.ciphertext_digest != digest or algorithm == keyspecs.SYMMETRIC_DEFAULT:
            continue
        # the key of the record's region (a multi-Region replica shares the primary's material)
        state = snapshot.get("keys", key_row(e.key_id, record.scope))
        info = state.version(e.key_version) if state else None
        wrapped_kek = snapshot.kek(_kek_name(e.key_id, record.scope))
        if info is None or wrapped_kek is None:
            return f"names key {e.key_id}, whose material is gone (crypto-shredded)"
        try:
            material = crypto.material_for(crypto.unwrap_kek(root, e.key_id, wrapped_kek), e.key_id,
                                           e.key_version, info)
        except LedgerError as exc:
            return str(exc)
        key = crypto.load_private_key(keyspecs.spec(state.key_spec), material)
        try:
            crypto.private_decrypt(key, keyspecs.ENCRYPTION_ALGORITHMS[algorithm], blob)
        except InvalidCiphertextException:
            return "does not open (altered)"
        return None
    return "not a keyledger ciphertext"


def _verdict(snapshot: Any, root: Secret, key_id: str, scope: str, home: str, counts: Counter[int],
             materials: dict[tuple[str, str, int], Secret]) -> KeyVerdict:
    """One key (in one region): unwrap each issued version's material and
    check its KCV; the materials that check out go into `materials`."""
    state: KeyState | None = snapshot.get("keys", key_row(key_id, scope))
    wrapped_kek = snapshot.kek(_kek_name(key_id, scope))
    verdict = KeyVerdict(key_id, state.state if state else "Unknown", shredded=wrapped_kek is None,
                         region=scope or home, scope=scope)
    if wrapped_kek is None:
        verdict.versions = [VersionVerdict(v, n, False, "crypto-shredded") for v, n in sorted(counts.items())]
        return verdict
    try:
        kek = crypto.unwrap_kek(root, key_id, wrapped_kek)
    except LedgerError as exc:
        verdict.versions = [VersionVerdict(v, n, False, str(exc)) for v, n in sorted(counts.items())]
        return verdict
    for version, n in sorted(counts.items()):
        info = state.version(version) if state else None
        if info is None:
            verdict.versions.append(VersionVerdict(version, n, False, "version missing from the projection"))
            continue
        material, why = crypto.material_or_reason(kek, key_id, version, info)
        if material is None:
            verdict.versions.append(VersionVerdict(version, n, False, why))
            continue
        materials[(scope, key_id, version)] = material
        verdict.versions.append(VersionVerdict(version, n, True))
    return verdict


def _open_in_some_region(snapshot: Any, root: Secret, key_id: str, version: int, scopes: list[str],
                         materials: dict[tuple[str, str, int], Secret]) -> tuple[Secret | None, str]:
    """The material of (key id, version) from the first region of `scopes`
    that still holds it (every replica of a multi-Region key holds the same
    material; a single-region key has one scope): (material, "") or (None,
    why not), why being "shredded" when every region's KEK is gone."""
    why = ""
    live = [scope for scope in scopes if snapshot.kek(_kek_name(key_id, scope)) is not None]
    if scopes and not live:
        return None, "shredded"
    for scope in live:
        found = materials.get((scope, key_id, version))
        if found is not None:
            return found, ""
        state = snapshot.get("keys", key_row(key_id, scope))
        info = state.version(version) if state else None
        if info is None:
            why = why or f"names key {key_id} version {version}, which this ledger never had"
            continue
        try:
            material = crypto.material_for(crypto.unwrap_kek(root, key_id, snapshot.kek(_kek_name(key_id, scope))),
                                           key_id, version, info)
        except LedgerError as exc:
            why = why or str(exc)
            continue
        materials[(scope, key_id, version)] = material
        return material, ""
    return None, why or f"names key {key_id} version {version}, which this ledger never had"


def prove_decryptable(snapshot: Any, root: Secret, *, corpus: Iterable[tuple[bytes, dict[str, str]]] = (),
                      progress: Callable[[int], None] | None = None) -> DecryptabilityReport:
    """Replay the log; for every key version any Encrypt / ReEncrypt /
    GenerateDataKey record used, unwrap its material and check its KCV.
    With a corpus, open each ciphertext in memory (the plaintext is
    discarded at once: this proves, it does not use). Crypto-shredded keys
    are reported as shredded, not as failures.

    Keys are judged in the region whose records used them, with that
    region's row and KEK: a multi-Region key gets one verdict per region
    that issued ciphertexts (each replica has its own KEK, so shredding one
    replica shreds only its copy), and a corpus ciphertext of such a key
    opens with the material of any region of its set that still holds it."""
    report_chain = replay.Report()
    records = []
    for record in replay.verified(snapshot.raw_records(), report_chain):
        records.append(record)
        if progress is not None and record.seq % 10_000 == 0:
            progress(record.seq)
    if report_chain.chain_error is not None:
        raise LedgerError(f"the log does not verify at seq {report_chain.chain_error.seq}: "
                          f"{report_chain.chain_error.reason}")
    home = home_region(snapshot)
    issued = _issued(records)
    # where each key id lives: the scopes of the records about it that have its row
    seen: dict[str, set[str]] = defaultdict(set)
    for record in records:
        for key_id in ev.key_ids_of(record.event):
            seen[key_id].add(record.scope)
    scopes_of = {key_id: sorted((s for s in scopes if snapshot.get("keys", key_row(key_id, s)) is not None),
                                key=lambda s: (s != "", s)) for key_id, scopes in seen.items()}
    materials: dict[tuple[str, str, int], Secret] = {}
    verdicts = [_verdict(snapshot, root, key_id, scope, home, counts, materials)
                for (scope, key_id), counts in sorted(issued.items(), key=lambda i: (i[0][1], i[0][0] != "", i[0][0]))]
    report = DecryptabilityReport(verdicts)
    for i, (blob, context) in enumerate(corpus):
        report.corpus_total += 1
        try:
            key_id, version = crypto.parse_header(blob)
        except InvalidCiphertextException:  # perhaps an RSA ciphertext the log knows by its digest
            refused = _open_rsa(snapshot, root, blob)
            if refused is None:
                report.corpus_opened += 1
            else:
                report.corpus_failures.append(f"line {i + 1}: {refused}")
            continue
        material, why = _open_in_some_region(snapshot, root, key_id, version, scopes_of.get(key_id, []), materials)
        if material is None:
            if why == "shredded":
                report.corpus_total -= 1  # cannot open by design: counted with the shredded key
            else:
                report.corpus_failures.append(f"line {i + 1}: {why}")
            continue
        try:
            crypto.open_(material, blob, crypto.canonical_context(context))
        except InvalidCiphertextException:
            report.corpus_failures.append(f"line {i + 1}: does not open (wrong context or altered)")
            continue
        report.corpus_opened += 1
    return report


# -- who could? -----------------------------------------------------------------------

def who_can(snapshot: Any, key_id: str, action: str, *, account: str, region: str,
            until_time: int | None = None, encryption_context: dict[str, str] | None = None,
            ) -> dict[str, Any]:
    """Who could do `action` with the key at `until_time` (default: now),
    from the policies, principals and grants replayed to that moment. Each
    known principal (the account root, every IAM user and role, everyone a
    key-policy statement or grant names) is evaluated with the same pure
    evaluator the service uses; a key policy that allows "*" is reported.

    `region` is the key's region (its ARN names it): the key policy and
    grants are that region's (a multi-Region replica has its own); IAM
    principals and their policies belong to the account, every region."""
    from keyledger import policy as authz

    tables, report = replay.state_at(snapshot, until_time=until_time)
    if report.chain_error is not None:
        raise LedgerError(f"the log does not verify at seq {report.chain_error.seq}")
    scope = scope_of(snapshot, region)
    key = tables.rows["keys"].get(key_row(key_id, scope))
    if key is None:
        raise LedgerError(f"key {key_id} did not exist in {region} at that time")
    key_policy = authz.parse(key.policy or authz.default_key_policy(account))
    principals = tables.rows["principals"]
    grants = [authz.Grant.of(g)
              for row, g in tables.rows["grants"].items() if g.key_id == key_id and in_scope(row, scope)]
    candidates = {authz.root_of(account)} | {p.principal for p in principals.values()}
    # a grant whose grantee IAM deleted names its unique id, which is no caller
    candidates |= {g.grantee for g in grants if g.grantee is not None and not authz.UNIQUE_ID.fullmatch(g.grantee)}
    anyone = False
    for s in key_policy.statements:
        for name in s.principals or ():
            if name == "*":
                anyone = anyone or s.effect == "Allow"
            elif name.startswith("arn:"):
                candidates.add(name)
    when = datetime.fromtimestamp(until_time / 1_000_000, tz=timezone.utc) if until_time is not None \
        else datetime.now(timezone.utc)
    arn = f"arn:aws:kms:{region}:{account}:key/{key_id}"
    allowed: list[dict[str, str]] = []
    denied: list[dict[str, str]] = []
    for principal in sorted(candidates):
        found = principals.get((authz.role_of(principal) or principal).encode())  # a session: its role's
        iam = [authz.parse(doc, key_policy=False) for doc in found.policies.values()] if found else []
        req = authz.Request(principal, action, arn,
                            authz.request_context(principal, when, key, encryption_context=encryption_context,
                                                  principal_tags=found.tags if found else None,
                                                  principal_id=found.unique_id if found else None),
                            encryption_context)
        decision = authz.evaluate(req, key_policy=key_policy, iam_policies=iam, grants=grants)
        (allowed if decision.allowed else denied).append({"principal": principal, "reason": decision.reason})
    return {"key_id": key_id, "region": region, "action": action, "key_state": key.state,
            "at": _iso(until_time) if until_time is not None else "now",
            "anyone": anyone, "allowed": allowed, "denied": denied,
            "note": "conditions were evaluated with the encryption context given"
                    + (f" {encryption_context}" if encryption_context else " (none)")}
