"""Per key version usage counts and last use."""

from __future__ import annotations

from msgspec.structs import replace

from keyledger import events as ev
from keyledger.projections.state import UsageState


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


def tracked_operation(event: ev.Event, key_id: str) -> str | None:
    """The operation GetKeyLastUsage names for an event that used `key_id`
    (one of AWS's KeyLastUsageTrackingOperation values), or None when the
    event is not a successful cryptographic use of that key. Named from the
    event, not the record: a parameter store request's Encrypt is an Encrypt."""
    match event:
        case ev.Encrypted():
            name = "Encrypt"
        case ev.Decrypted():
            name = "Decrypt"
        case ev.ReEncrypted():
            return "ReEncrypt" if key_id in (event.source_key_id, event.key_id) else None
        case ev.DataKeyGenerated():
            name = "GenerateDataKey" if event.plaintext_returned else "GenerateDataKeyWithoutPlaintext"
        case ev.DataKeyPairGenerated():
            name = "GenerateDataKeyPair" if event.plaintext_returned else "GenerateDataKeyPairWithoutPlaintext"
        case ev.Signed():
            name = "Sign"
        case ev.SignatureVerified():
            name = "Verify"
        case ev.MacGenerated():
            name = "GenerateMac"
        case ev.MacVerified():
            name = "VerifyMac"
        case ev.SharedSecretDerived():
            name = "DeriveSharedSecret"
        case ev.SharedSecretEncapsulated():
            name = "Encapsulate"
        case ev.SharedSecretDecapsulated():
            name = "Decapsulate"
        case _:
            return None
    return name if getattr(event, "key_id", None) == key_id else None
