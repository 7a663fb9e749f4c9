"""`keyledger forensics`: what happened to a ciphertext, a key, every key at
a moment, and who could use a key at a moment.

    ciphertext   the key, version and record that produced a ciphertext, and every later use
    key KEY      a key's timeline: lifecycle, rotations, aliases, usage by principal and month, signatures
    signature    the key and record that produced a signature (and whether it was over a message)
    at TIME      every key's state at a moment (or after a record seq), as `replay --until` shows it
    who-can      who could perform an action on a key at a moment
    access-key   whose an access key is, its lifecycle, and every request it signed

All of it reads the LMDB file read-only (no root key), so it runs on a copy.
The answers come from `ledger.forensics` (`who-can`: `who_can`, which
replays policies, principals and grants to the moment and evaluates every
principal that could matter with `ledger.policy`) and, for `at`, from
`projections.replay.state_view`, the shape `replay --until` prints. Every
answer is AWS-style PascalCase JSON (hashes in base64, as everywhere);
`--output text` prints readable columns, `--output table` the AWS CLI's boxes.
"""

from __future__ import annotations

from typing import Any

import click

from keyledger import forensics as forensics_
from keyledger.cli import params
from keyledger.cli.audit import Identity, open_readonly, parse_point, request_region, resolve_key_ref
from keyledger.cli.context import settings
from keyledger.cli.output import Failure, LedgerCommand, format_columns, show
from keyledger.cli.replay import keys_table
from keyledger.commands import key_arn
from keyledger.errors import InvalidCiphertextException, LedgerError
from keyledger.projections import replay as rp

# The members of ledger.forensics' answers, by their AWS-style names. Only
# these keys are renamed: the values (principals, aliases, months) are data.
_NAMES = {"seq": "Seq", "time": "Time", "principal": "Principal", "operation": "Operation",
          "request_id": "RequestId", "event": "Event", "rotation_type": "RotationType",
          "new_version": "NewVersion", "alias": "Alias", "error_code": "ErrorCode", "reason": "Reason",
          "region": "Region", "status": "Status", "held": "HeldByLedger", "role": "Role", "session": "Session",
          "expires": "Expires"}


def _record(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """One record of the trail (who, when, which request, what happened)."""
    return None if entry is None else {_NAMES[k]: v for k, v in entry.items()}


def _print(data: dict[str, Any], text: str) -> None:
    """JSON (or --query / table) by default; the readable columns for --output text."""
    opts = settings()
    if opts.output == "text" and not opts.query:
        click.echo(text)
    else:
        show(data)


_TRAIL = ("SEQ", "TIME", "PRINCIPAL", "OPERATION", "EVENT")


def _trail_rows(entries: list[dict[str, Any]], *extra: str) -> list[list[Any]]:
    return [[e["Seq"], e["Time"], e["Principal"], e["Operation"], e["Event"], *(e.get(x) for x in extra)]
            for e in entries]


@click.group("forensics")
def forensics() -> None:
    """Forensics over the trail: ciphertexts, keys, and every key at a past
    moment. Read-only; runs on a copy of a ledger without the root key."""


def ciphertext_view(found: dict[str, Any], region: str, account: str) -> dict[str, Any]:
    """`region` is the fallback for an answer that names none: the key's own
    region (the one whose request made the ciphertext) is in `found`."""
    return {"KeyId": found["key_id"], "KeyArn": key_arn(found.get("region", region), account, found["key_id"]),
            "KeyVersion": found["key_version"],
            "CiphertextSha256": rp.b64(bytes.fromhex(found["ciphertext_sha256"])),
            "ProducedBy": _record(found["produced_by"]),
            "LaterUses": [_record(u) for u in found["later_uses"]]}


def ciphertext_text(view: dict[str, Any]) -> str:
    made = view["ProducedBy"]
    lines = [f"key:          {view['KeyArn']} (version {view['KeyVersion']})",
             f"sha-256:      {view['CiphertextSha256']}",
             "produced by:  " + (f"{made['Principal']} with {made['Operation']} at {made['Time']} "
                                 f"(seq {made['Seq']}, request {made['RequestId']})" if made else
                                 "no record (not issued by this ledger, or before its index)")]
    if view["LaterUses"]:
        lines += ["", "later uses:", format_columns(_TRAIL, _trail_rows(view["LaterUses"]))]
    else:
        lines.append("later uses:   none")
    return "\n".join(lines)


@forensics.command("ciphertext", cls=LedgerCommand, output_options=True)
@click.argument("file", required=False, metavar="[FILE]")
@click.option("--ciphertext-blob", default=None, metavar="BLOB",
              help="The ciphertext: fileb://PATH (raw bytes) or base64 text.")
def ciphertext(file: str | None, ciphertext_blob: str | None) -> None:
    """Name the key and version a ciphertext is under, the record that
    produced it (who, when, which request), and every later Decrypt or
    ReEncrypt of it, found through the ciphertext digest index. FILE (- for
    stdin) or --ciphertext-blob may also be an AWS Encryption SDK message
    (encrypt-file's output): its header is read by the ESDK and each of its
    encrypted data keys is traced the same way."""
    from keyledger import envelope
    from keyledger.cli import files

    if (file is None) == (ciphertext_blob is None):
        raise click.UsageError("give FILE or --ciphertext-blob (one of them)")
    if file is not None:
        found_in_file = files.read_ciphertext(file)  # an ESDK message's header, or a ciphertext's bytes
        if isinstance(found_in_file, envelope.MessageInfo):
            return files.message_forensics(found_in_file)
        blob = found_in_file
    else:
        blob = params.base64_blob("--ciphertext-blob", ciphertext_blob) or b""
    if envelope.looks_like_message(blob):
        return files.message_forensics(files.read_header(blob))
    with open_readonly() as store, store.snapshot() as snap:
        identity = Identity(snap.meta())
        try:
            found = forensics_.ciphertext_history(snap, blob)
        except InvalidCiphertextException:
            raise click.BadParameter("not a keyledger ciphertext", param_hint="--ciphertext-blob") from None
    view = ciphertext_view(found, identity.region, identity.account)
    _print(view, ciphertext_text(view))


def key_view(found: dict[str, Any], region: str, account: str) -> dict[str, Any]:
    """`region`: the region whose ARN is the KeyArn (the request region when
    the key is there); Regions lists the key in each region (a multi-Region
    key's replicas one by one)."""
    return {"KeyId": found["key_id"], "KeyArn": key_arn(region, account, found["key_id"]),
            "Regions": [{"Region": r["region"], "KeyArn": key_arn(r["region"], account, found["key_id"]),
                         "KeyState": r["key_state"],
                         **({"MultiRegionKeyType": r["multi_region_key_type"]} if r["multi_region_key_type"] else {}),
                         "AliasesNow": r["aliases_now"]} for r in found.get("regions", [])],
            "Timeline": [_record(e) for e in found["timeline"]],
            "AliasesNow": found["aliases_now"],
            "UsageByPrincipal": [{"Principal": p, "Requests": n}
                                 for p, n in sorted(found["usage_by_principal"].items())],
            "UsageByMonth": [{"Month": m, "Requests": n} for m, n in found["usage_by_month"].items()],
            "Signatures": [_signature(s) for s in found.get("signatures", [])]}


def _signature(entry: dict[str, Any]) -> dict[str, Any]:
    """One Sign or Verify record: who, when, and the digests (base64)."""
    return {**(_record({k: entry[k] for k in ("seq", "time", "principal", "operation", "request_id", "region",
                                              "event") if k in entry}) or {}),
            "KeyId": entry["key_id"], "KeyVersion": entry["key_version"],
            "SigningAlgorithm": entry["signing_algorithm"], "MessageType": entry["message_type"],
            "MessageSha256": rp.b64(bytes.fromhex(entry["message_sha256"])),
            "SignatureSha256": rp.b64(bytes.fromhex(entry["signature_sha256"]))}


def signature_view(found: dict[str, Any], region: str, account: str) -> dict[str, Any]:
    made = found["produced_by"]
    view: dict[str, Any] = {"SignatureSha256": rp.b64(bytes.fromhex(found["signature_sha256"])),
                            "KeyArn": key_arn(made.get("region", region), account, made["key_id"]) if made else None,
                            "ProducedBy": _signature(made) if made else None,
                            "Verifications": [_signature(v) for v in found["verifications"]]}
    if "message_matches" in found:
        view["MessageMatches"] = found["message_matches"]
    return view


def signature_text(view: dict[str, Any]) -> str:
    made = view["ProducedBy"]
    if made is None:
        return f"signature {view['SignatureSha256']}: no Sign record in this ledger made it"
    lines = [f"key:          {view['KeyArn']} (version {made['KeyVersion']})",
             f"produced by:  {made['Principal']} with {made['SigningAlgorithm']} ({made['MessageType']}) at "
             f"{made['Time']} (seq {made['Seq']}, request {made['RequestId']})",
             f"message:      sha-256 {made['MessageSha256']}"]
    if "MessageMatches" in view:
        lines.append(f"matches:      {'yes' if view['MessageMatches'] else 'NO: a different message was signed'}")
    lines.append(f"verified:     {len(view['Verifications'])} time(s) by Verify")
    return "\n".join(lines)


@forensics.command("signature", cls=LedgerCommand, output_options=True)
@click.argument("signature", metavar="SIG")
@click.option("--message-digest", default=None, metavar="DIGEST",
              help="The SHA-256 of the signed message (hex or base64; for a DIGEST signature, the digest "
                   "that was signed): also say whether the record was over that message.")
def signature(signature: str, message_digest: str | None) -> None:
    """Which key and record produced signature SIG (fileb://PATH or base64),
    found by its digest, and every later Verify of it. The log holds only
    digests, so the message is matched by its SHA-256."""
    sig = params.base64_blob("SIG", signature)
    wanted = None
    if message_digest is not None:
        try:
            wanted = bytes.fromhex(message_digest)
        except ValueError:
            wanted = params.base64_blob("--message-digest", message_digest)
    with open_readonly() as store, store.snapshot() as snap:
        identity = Identity(snap.meta())
        found = forensics_.signature_history(snap, sig, wanted)  # type: ignore[arg-type]
    if found["produced_by"] is None:
        raise Failure("no Sign record in this ledger produced this signature")
    view = signature_view(found, identity.region, identity.account)
    _print(view, signature_text(view))


def key_text(view: dict[str, Any]) -> str:
    def detail(e: dict[str, Any]) -> str:
        parts = [f"{e['RotationType']} -> version {e['NewVersion']}" if "RotationType" in e else "",
                 e.get("Alias", ""), e.get("ErrorCode", "")]
        return ", ".join(p for p in parts if p)

    lines = [f"key:      {view['KeyArn']}",
             f"aliases:  {', '.join(view['AliasesNow']) or 'none'}"]
    if len(view["Regions"]) > 1:  # a multi-Region key: each region of its set
        lines += [f"region:   {r['Region']}: {r.get('MultiRegionKeyType', '')} {r['KeyState']}, aliases "
                  f"{', '.join(r['AliasesNow']) or 'none'}" for r in view["Regions"]]
    lines += ["",
             format_columns((*_TRAIL, "DETAIL"),
                            [[*row, detail(e)] for row, e in zip(_trail_rows(view["Timeline"]), view["Timeline"])])]
    lines += ["", "cryptographic requests by principal:"]
    lines.append(format_columns(("PRINCIPAL", "REQUESTS"), [[u["Principal"], u["Requests"]]
                                                           for u in view["UsageByPrincipal"]])
                 if view["UsageByPrincipal"] else "none")
    lines += ["", "cryptographic requests by month:"]
    lines.append(format_columns(("MONTH", "REQUESTS"), [[u["Month"], u["Requests"]] for u in view["UsageByMonth"]])
                 if view["UsageByMonth"] else "none")
    return "\n".join(lines)


@forensics.command("key", cls=LedgerCommand, output_options=True)
@click.argument("key")
def key(key: str) -> None:
    """KEY's timeline (key id, key ARN, alias name or alias ARN): lifecycle,
    rotations, aliases pointing at it, refused requests, and its usage by
    principal and by month. A key ARN or an alias (resolved in the request
    region, --region) names the key of one region; a bare key id names it
    in every region where it exists (a multi-Region key's replicas are
    listed per region under Regions)."""
    with open_readonly() as store, store.snapshot() as snap:
        identity = Identity(snap.meta())
        ref = resolve_key_ref(snap, key, identity)
        found = forensics_.key_timeline(snap, ref.key_id, region=ref.regions[0] if ref.pinned else None)
        main = ref.main_region(request_region(identity))
    view = key_view(found, main, identity.account)
    _print(view, key_text(view))


@forensics.command("at", cls=LedgerCommand, output_options=True)
@click.argument("point", metavar="SEQ|TIME")
def at(point: str) -> None:
    """Every key's state at an ISO 8601 TIME (UTC unless it says otherwise),
    or after record SEQ, replayed from the log: the shape `replay --until`
    prints."""
    seq, time = parse_point(point, "SEQ|TIME")
    with open_readonly() as store, store.snapshot() as snap:
        identity = Identity(snap.meta())
        tables, report = rp.state_at(snap, until_seq=seq, until_time=time)
    broken = report.chain_error
    if broken is not None and (seq is None or seq >= broken.seq):
        raise Failure(f"the log does not verify at seq {broken.seq} ({broken.reason}): "
                      "the state there cannot be trusted")
    view = rp.state_view(tables, region=identity.region, account=identity.account, until_seq=seq, until_time=time)
    _print(view, keys_table(view["Keys"]) if view["Keys"] else "no keys")


def who_can_view(found: dict[str, Any], region: str, account: str) -> dict[str, Any]:
    region = found.get("region", region)
    return {"KeyId": found["key_id"], "KeyArn": key_arn(region, account, found["key_id"]), "Region": region,
            "Action": found["action"], "At": found["at"], "KeyState": found["key_state"],
            "Anyone": found["anyone"],
            "Allowed": [_record(a) for a in found["allowed"]],
            "Denied": [_record(d) for d in found["denied"]],
            "Note": found["note"]}


def who_can_text(view: dict[str, Any]) -> str:
    rows = [[a["Principal"], "allowed", a["Reason"]] for a in view["Allowed"]]
    rows += [[d["Principal"], "denied", d["Reason"]] for d in view["Denied"]]
    lines = [f"key:       {view['KeyArn']} ({view['KeyState']} then)",
             f"action:    {view['Action']} at {view['At']}"]
    if view["Anyone"]:
        lines.append("WARNING:   the key policy allows \"*\" (anyone) for some action")
    lines += ["", format_columns(("PRINCIPAL", "DECISION", "REASON"), rows), "", view["Note"]]
    for other in view.get("OtherRegions", []):  # the other replicas of a multi-Region key
        lines += ["", who_can_text(other)]
    return "\n".join(lines)


@forensics.command("who-can", cls=LedgerCommand, output_options=True)
@click.option("--key-id", required=True, help="The key: key id, key ARN, alias name or alias ARN (aliases "
                                              "resolve to the key they name now).")
@click.option("--action", default="kms:Decrypt", show_default=True, help="The action, e.g. kms:Decrypt.")
@click.option("--at", "point", default=None, metavar="TIME",
              help="The moment, an ISO 8601 time (UTC unless it says otherwise; default: now).")
@click.option("--encryption-context", default=None, metavar="CONTEXT",
              help="Evaluate conditions with this encryption context (k=v,k2=v2 or a JSON object).")
def who_can(key_id: str, action: str, point: str | None, encryption_context: str | None) -> None:
    """Who could perform ACTION on a key at a moment: the key policy, IAM
    policies and grants replayed to then, and every principal that could
    matter evaluated as the service would. Whether the key's state let the
    call succeed is shown apart (KeyState). The key is the one of its
    region (an alias resolves in the request region, --region); a bare id
    of a multi-Region key is answered for the request region's replica (or
    its first region) and, under OtherRegions, for every other replica:
    each has its own key policy and grants."""
    seq, time = parse_point(point, "--at") if point is not None else (None, None)
    if seq is not None:
        raise click.BadParameter("expected an ISO 8601 time", param_hint="--at")
    context = params.string_map("--encryption-context", encryption_context)
    with open_readonly() as store, store.snapshot() as snap:
        identity = Identity(snap.meta())
        ref = resolve_key_ref(snap, key_id, identity)
        main = ref.main_region(request_region(identity))
        answers = []
        for where in [main, *(r for r in ref.regions if r != main)]:
            try:
                answers.append(forensics_.who_can(snap, ref.key_id, action, account=identity.account,
                                                  region=where, until_time=time, encryption_context=context))
            except LedgerError:
                if not answers:
                    raise  # the key asked for did not exist then
                # (a replica made after that moment: nobody could use it there)
    view = who_can_view(answers[0], main, identity.account)
    if len(answers) > 1:
        view["OtherRegions"] = [who_can_view(found, main, identity.account) for found in answers[1:]]
    _print(view, who_can_text(view))


COMMANDS = [forensics]


def access_key_view(found: dict[str, Any]) -> dict[str, Any]:
    return {"AccessKeyId": found["access_key_id"], "Owner": found["owner"],
            "Lifecycle": [_record(e) for e in found["lifecycle"]],
            "Requests": found["requests"], "FirstUse": _record(found["first_use"]),
            "LastUse": _record(found["last_use"]),
            "ByOperation": [{"Operation": o, "Requests": n} for o, n in found["by_operation"].items()],
            "ByKey": [{"KeyId": k, "Requests": n} for k, n in found["by_key"].items()],
            "BySourceAddress": [{"SourceAddress": a, "Requests": n} for a, n in found["by_source"].items()],
            "Refused": [_record(e) for e in found["refused"]],
            "UnauthenticatedRefusals": [{"Seq": u["seq"], "Since": u["time"], "SourceAddress": u["source"],
                                         "ErrorCode": u["error_code"], "Requests": u["count"]}
                                        for u in found["unauthenticated"]]}


def access_key_text(view: dict[str, Any]) -> str:
    def counted(title: str, column: str, rows: list[dict[str, Any]], name: str) -> list[str]:
        return ["", f"{title}:", format_columns((column, "REQUESTS"), [[r[name], r["Requests"]] for r in rows])
                if rows else "none"]

    lines = [f"access key: {view['AccessKeyId']}", f"owner:      {view['Owner'] or 'unknown to this log'}",
             f"requests:   {view['Requests']} signed, {len(view['Refused'])} of them refused; "
             f"{len(view['UnauthenticatedRefusals'])} refusal summaries name it (bad signatures, inactive)",
             f"first use:  {view['FirstUse']['Time'] if view['FirstUse'] else 'never'}",
             f"last use:   {view['LastUse']['Time'] if view['LastUse'] else 'never'}",
             "", "lifecycle:", format_columns(_TRAIL, _trail_rows(view["Lifecycle"])) if view["Lifecycle"] else "none"]
    lines += counted("by operation", "OPERATION", view["ByOperation"], "Operation")
    lines += counted("by key", "KEY", view["ByKey"], "KeyId")
    lines += counted("by source address", "ADDRESS", view["BySourceAddress"], "SourceAddress")
    return "\n".join(lines)


@forensics.command("access-key", cls=LedgerCommand, output_options=True)
@click.argument("access_key_id", metavar="ACCESS_KEY_ID")
def access_key(access_key_id: str) -> None:
    """What ACCESS_KEY_ID (a user's AKIA..., or a role session's ASIA...)
    did: whose it is, when it was issued, switched on or off and deleted
    (for a session, the AssumeRole that issued it), and every request it
    signed, by operation, key and source address, with the refused ones and
    the attempts that failed to authenticate. The first question when a
    key leaks."""
    with open_readonly() as store, store.snapshot() as snap:
        found = forensics_.access_key_history(snap, access_key_id.strip())
    view = access_key_view(found)
    _print(view, access_key_text(view))
