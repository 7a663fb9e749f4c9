"""The service: every AWS KMS operation as a method of `KeyLedger`, one write each.

A call validates its input, then runs as one work item in the store's write
path: resolve the key (any KeyId form AWS accepts there), append the automatic
rotations or deletion that fell due for it, `decide` (keyledger.commands), and
append the events, which fold into the projections in the same transaction.
A refused call appends a `RequestDenied` record and raises the AWS-named
error. Responses are built from what was decided, never from a re-read.

The operations are grouped by concern, one module each; `KeyLedger` composes
them:

- keys.py          key lifecycle
- aliases_tags.py  aliases and tags
- rotation.py      automatic and on-demand rotation
- access.py        key policies and grants
- iam.py           IAM principals and access keys
- data.py          the data plane (Encrypt, Decrypt, data keys, ...)
- asymmetric.py    asymmetric and HMAC keys (Sign, Verify, GenerateMac, ...)
- maintenance.py   the sweep, checkpoints, the root key
- imports.py       imported key material (Origin EXTERNAL)
- custom_key_stores.py  custom key stores (CloudHSM, external): a ledger has none
- managed.py       AWS managed keys (alias/aws/<service>)
- multi_region.py  multi-Region keys (ReplicateKey, UpdatePrimaryRegion)
- parameters.py    the parameter store, `kms.parameters` (SSM Parameter Store semantics)
- request.py       one request in its transaction, shared helpers
- base.py          the handle, caches and the write path (`_run`)
"""

from __future__ import annotations

from typing import Any

from keyledger import crypto
from keyledger.constraints import validating
from keyledger.envelope import EnvelopeOps
from keyledger.service.access import AccessOps
from keyledger.service.aliases_tags import AliasTagOps
from keyledger.service.asymmetric import AsymmetricOps
from keyledger.service.base import ServiceBase
from keyledger.service.custom_key_stores import CustomKeyStoreOps
from keyledger.service.data import DataOps
from keyledger.service.iam import IamOps
from keyledger.service.imports import ImportOps
from keyledger.service.keys import KeyOps
from keyledger.service.maintenance import MaintenanceOps
from keyledger.service.managed import ManagedKeyOps
from keyledger.service.multi_region import MultiRegionOps
from keyledger.service.parameters import ParameterOps
from keyledger.events import from_us, to_us
from keyledger.service.request import Clock, Planned, Rng
from keyledger.service.rotation import RotationOps

__all__ = ["KeyLedger", "Clock", "Rng", "Planned", "from_us", "to_us"]


class KeyLedger(KeyOps, AliasTagOps, RotationOps, AccessOps, IamOps, DataOps, AsymmetricOps, MaintenanceOps,
                ImportOps, ManagedKeyOps, EnvelopeOps, ParameterOps, MultiRegionOps, CustomKeyStoreOps,
                ServiceBase):
    """The embedded AWS KMS. Obtain one with `keyledger.open(...)`.

    Every public method is one AWS KMS operation (snake_case of its name), or
    one of keyledger's own (checkpoint, rotate_due, simulate_policy, ...). Each
    call is one record in the log, allowed or denied.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # a root-key rotation replicated from another node of a cluster switches this ledger's root key,
        # and so does one another process made on this home (the CLI beside a running server)
        self.store.prepare_root, self.store.adopt_root = self._prepare_root, self._adopt_root
        if self.store.log is None and not self.store.readonly:
            self.store.root_seen, self.store.root_moved = crypto.root_check(self._root), self._follow_root


validating(KeyLedger)  # the model's request constraints, checked first, as AWS checks them
