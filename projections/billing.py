"""What the log says a customer would pay, under the user's price model.

- A customer-managed key costs $1 per key-month, prorated by the hour, for
  every hour it exists and is neither pending deletion nor deleted (a
  cancelled deletion starts the meter again). Rotations add nothing: the
  user's notes price the key, not its versions.
- Requests cost by AWS's price list (`request_price`, the one table of
  request prices): $0.03 per 10,000 in general (symmetric and HMAC keys,
  requests that name no key); cryptographic requests on an asymmetric key
  $0.03 per 10,000 for RSA_2048 and $0.15 for every other spec (ML-KEM's
  Encapsulate and Decapsulate included: AWS's price list names no price
  of their own, so they are priced as the other asymmetric requests);
  GenerateDataKeyPair(WithoutPlaintext) $12.00 per 10,000 for an RSA pair
  and $0.10 for an ECC pair. Every request a customer made counts,
  including refused ones (AWS bills those too); the service's own events
  (automatic rotation, deletion at the end of the waiting period) do not.
- The parameter store is priced as AWS prices Parameter Store's Standard
  tier (the only one keyledger has): Standard parameters and their API
  interactions at standard throughput cost nothing, so its own requests
  (PutParameter, GetParameter, ...) are left out; the KMS requests it makes
  for SecureString values are billed as KMS requests, each one (a
  GetParametersByPath that decrypts five values is five Decrypts). Advanced
  parameters ($0.05 per parameter-month) and higher throughput ($0.05 per
  10,000 interactions) do not exist here.

All arithmetic is in exact fractions until the final rounding to cents.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction

from keyledger import events as ev
from keyledger.projections import key_row, split_row
from keyledger.projections.cloudtrail import EVENT_SOURCES

KEY_MONTH = Fraction(1)  # dollars
PER_10K_REQUESTS = Fraction(3, 100)
HOUR_US = 3_600 * 1_000_000

#: AWS KMS's request prices (us-east-1), dollars per 10,000 requests
PRICES_PER_10K: dict[str, Fraction] = {
    "standard": PER_10K_REQUESTS,  # symmetric and HMAC keys; requests that name no key
    "asymmetric RSA_2048": Fraction(3, 100),  # Sign, Verify, Encrypt, ... on an RSA_2048 key
    "asymmetric": Fraction(15, 100),  # the same on every other asymmetric key
    "data key pair RSA": Fraction(12),  # GenerateDataKeyPair(WithoutPlaintext) of an RSA pair
    "data key pair ECC": Fraction(10, 100),  # ... of an ECC (or any other) pair
}
#: the operations that use an asymmetric key's material (its management is standard)
ASYMMETRIC_OPERATIONS = frozenset({"Sign", "Verify", "Encrypt", "Decrypt", "ReEncrypt", "GetPublicKey",
                                   "DeriveSharedSecret", "Encapsulate", "Decapsulate"})
_SYMMETRIC_SPECS = ("SYMMETRIC_DEFAULT", "HMAC_")


def price_class(operation: str, event: ev.Event, key_spec: str | None) -> str:
    """Which line of PRICES_PER_10K one request is billed on."""
    if isinstance(event, ev.DataKeyPairGenerated):
        return "data key pair RSA" if event.key_pair_spec.startswith("RSA") else "data key pair ECC"
    if operation in ASYMMETRIC_OPERATIONS and key_spec is not None and not key_spec.startswith(_SYMMETRIC_SPECS):
        return "asymmetric RSA_2048" if key_spec == "RSA_2048" else "asymmetric"
    return "standard"


#: the parameter store's own operations (SSM's, not KMS's)
PARAMETER_STORE_OPERATIONS = frozenset({
    "PutParameter", "GetParameter", "GetParameters", "GetParametersByPath", "DeleteParameter",
    "DeleteParameters", "GetParameterHistory", "LabelParameterVersion", "DescribeParameters",
    "UnlabelParameterVersion", "AddTagsToResource", "ListTagsForResource", "RemoveTagsFromResource"})


def parameter_store_request(record: ev.Record) -> bool:
    """A record of the parameter store's own (free at the Standard tier), not of a KMS call it made."""
    return isinstance(record.event, (ev.ParameterPut, ev.ParameterDeleted, ev.ParameterLabeled,
                                     ev.ParameterUnlabeled, ev.ParameterTagged, ev.ParameterUntagged,
                                     ev.ParametersRead)) \
        or (isinstance(record.event, ev.RequestDenied) and record.operation in PARAMETER_STORE_OPERATIONS)


def request_price(operation: str, event: ev.Event, key_spec: str | None) -> Fraction:
    """The dollars one request costs."""
    return PRICES_PER_10K[price_class(operation, event, key_spec)] / 10_000


def month_bounds(month: str) -> tuple[int, int]:
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=timezone.utc)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return int(start.timestamp()) * 1_000_000, int(end.timestamp()) * 1_000_000


@dataclass
class KeyBill:
    key_id: str
    billable_hours: Fraction = Fraction(0)
    key_cost: Fraction = Fraction(0)
    requests: Counter[str] = field(default_factory=Counter)
    region: str = ""  # the key's region scope ("" for the initial region): a replica is a key of its own


@dataclass
class Bill:
    month: str
    hours_in_month: int
    keys: dict[str, KeyBill]
    requests: Counter[str]  # by operation, all keys and none

    @property
    def request_count(self) -> int:
        return sum(self.requests.values())

    @property
    def key_cost(self) -> Fraction:
        return sum((k.key_cost for k in self.keys.values()), Fraction(0))

    request_charges: Fraction = Fraction(0)  # the sum of each request's price

    @property
    def request_cost(self) -> Fraction:
        return self.request_charges

    @property
    def total(self) -> Fraction:
        return self.key_cost + self.request_cost


def dollars(amount: Fraction) -> str:
    cents = (amount * 100).__round__()
    return f"${cents // 100}.{cents % 100:02d}"


def compute(records: Iterable[ev.Record], month: str) -> Bill:
    start, end = month_bounds(month)
    hours_in_month = (end - start) // HOUR_US
    billing_since: dict[str, int | None] = {}  # key -> start of its current billable stretch
    hours: dict[str, Fraction] = defaultdict(Fraction)
    per_key: dict[str, Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    seen_requests: set[str] = set()
    key_specs: dict[str, str] = {}
    charges = Fraction(0)

    def close(key_id: str, at: int) -> None:
        since = billing_since.get(key_id)
        if since is not None:
            lo, hi = max(since, start), min(at, end)
            if hi > lo:
                hours[key_id] += Fraction(hi - lo, HOUR_US)
        billing_since[key_id] = None

    for record in records:
        e, t = record.event, record.time
        # keys are billed per region: each replica of a multi-Region key is a key ($1/month), as in AWS
        key_id = getattr(e, "key_id", None)  # (not every event names a key)
        name = key_row(key_id, record.scope).decode() if isinstance(key_id, str) else ""
        match e:
            case ev.KeyCreated() | ev.ReplicaKeyCreated():
                billing_since[name] = t
                key_specs[name] = e.key_spec
            case ev.KeyDeletionScheduled() | ev.KeyDeleted():
                close(name, t)
            case ev.KeyDeletionCancelled():
                billing_since[name] = t
        if isinstance(e, ev.AwsManagedKeyCreated):  # AWS managed keys are free, and made by the service
            continue
        if parameter_store_request(record):  # Parameter Store's Standard tier is free
            continue
        if record.operation in EVENT_SOURCES:  # IAM's and STS's own requests: free in AWS, no KMS request
            continue
        # one request may append several records; each KMS call an integrated service makes is its own
        request = record.request_id if getattr(e, "via_service", None) is None else f"{record.request_id}#{record.seq}"
        if record.principal != ev.SERVICE_PRINCIPAL and start <= t < end \
                and request not in seen_requests:
            seen_requests.add(request)
            totals[record.operation] += 1
            named = [key_row(k, record.scope).decode() for k in ev.key_ids_of(e)]
            charges += request_price(record.operation, e, key_specs.get(named[0]) if named else None)
            for key_id in ev.key_ids_of(e)[:1]:
                if len(key_id) == 36 or key_id.startswith("mrk-"):
                    per_key[named[0]][record.operation] += 1
    for key_id in list(billing_since):
        close(key_id, end)
    keys = {}
    for name in sorted(set(hours) | set(per_key)):  # a key's row name: its id, or ~<region>/<id>
        h = hours.get(name, Fraction(0))
        scope, key_id = split_row(name.encode())
        keys[name] = KeyBill(key_id, h, KEY_MONTH * h / hours_in_month, per_key.get(name, Counter()), scope)
    return Bill(month, hours_in_month, keys, totals, charges)
