"""Per key version usage counts and last use."""

from __future__ import annotations

from msgspec.structs import replace

from keyledger import events as ev
from keyledger.projections.state import UsageState


#: the events that use one version of one key (each folds into that
#: version's usage row); ReEncrypted uses two, and USES lists them all
SINGLE_KEY_USES = (
    ev.Encrypted, ev.Decrypted, ev.DataKeyGenerated, ev.DataKeyPairGenerated, ev.Signed, ev.SignatureVerified,
    ev.MacGenerated, ev.MacVerified, ev.SharedSecretDerived, ev.SharedSecretEncapsulated,
    ev.SharedSecretDecapsulated)
USES: tuple[type, ...] = (*SINGLE_KEY_USES, ev.ReEncrypted)


def evolve(state: UsageState | None, record: ev.Record, key_id: str, version: int) -> UsageState:
    s = state or UsageState()
    e, t = record.event, record.time
    match e:
        case ev.Encrypted():
            return replace(s, encrypt=s.encrypt + 1, last_used=t)
        case ev.Decrypted():
            return replace(s, decrypt=s.decrypt + 1, last_used=t)
        case ev.DataKeyGenerated():
            return replace(s, generate_data_key=s.generate_data_key + 1, last_used=t)
        case ev.Signed():
            return replace(s, sign=s.sign + 1, last_used=t)
        case ev.SignatureVerified():
            return replace(s, verify=s.verify + 1, last_used=t)
        case ev.MacGenerated():
            return replace(s, generate_mac=s.generate_mac + 1, last_used=t)
        case ev.MacVerified():
            return replace(s, verify_mac=s.verify_mac + 1, last_used=t)
        case ev.SharedSecretDerived():
            return replace(s, derive_shared_secret=s.derive_shared_secret + 1, last_used=t)
        case ev.SharedSecretEncapsulated():
            return replace(s, encapsulate=s.encapsulate + 1, last_used=t)
        case ev.SharedSecretDecapsulated():
            return replace(s, decapsulate=s.decapsulate + 1, last_used=t)
        case ev.DataKeyPairGenerated():
            return replace(s, generate_data_key_pair=s.generate_data_key_pair + 1, last_used=t)
        case ev.ReEncrypted():
            if (key_id, version) == (e.source_key_id, e.source_key_version):
                s = replace(s, reencrypt_from=s.reencrypt_from + 1, last_used=t)
            if (key_id, version) == (e.key_id, e.key_version):
                s = replace(s, reencrypt_to=s.reencrypt_to + 1, last_used=t)
            return s
    return s


#: the event of each tracked operation (KeyLastUsageTrackingOperation) that
#: names one key; ReEncrypt and the two with a WithoutPlaintext twin aside
_TRACKED: dict[type, str] = {
    ev.Encrypted: "Encrypt", ev.Decrypted: "Decrypt", ev.Signed: "Sign", ev.SignatureVerified: "Verify",
    ev.MacGenerated: "GenerateMac", ev.MacVerified: "VerifyMac", ev.SharedSecretDerived: "DeriveSharedSecret",
    ev.SharedSecretEncapsulated: "Encapsulate", ev.SharedSecretDecapsulated: "Decapsulate",
}


def tracked_operation(event: ev.Event, key_id: str) -> str | None:
    """The operation GetKeyLastUsage names for an event that used `key_id`
    (one of AWS's KeyLastUsageTrackingOperation values), or None when the
    event is not a successful cryptographic use of that key. Named from the
    event, not the record: a parameter store request's Encrypt is an Encrypt."""
    if isinstance(event, ev.ReEncrypted):
        return "ReEncrypt" if key_id in (event.source_key_id, event.key_id) else None
    if isinstance(event, ev.DataKeyGenerated):
        name: str | None = "GenerateDataKey" if event.plaintext_returned else "GenerateDataKeyWithoutPlaintext"
    elif isinstance(event, ev.DataKeyPairGenerated):
        name = "GenerateDataKeyPair" if event.plaintext_returned else "GenerateDataKeyPairWithoutPlaintext"
    else:
        name = _TRACKED.get(type(event))
    return name if name is not None and getattr(event, "key_id", None) == key_id else None
