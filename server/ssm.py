"""SSM Parameter Store on the KMS endpoint: `boto3.client("ssm", endpoint_url=...)`.

SSM speaks the same JSON 1.1 protocol as KMS, with `X-Amz-Target:
AmazonSSM.<Operation>` and SigV4 scoped to the service `ssm`. So the KMS
app routes such requests here only to *plan* them (`plan`): the signature
is checked for `ssm`, the body is decoded against botocore's SSM model
(vendored, trimmed to the parameter store's operations:
`ssm-2014-11-06.json`) by the same document -> keyword-arguments mapping as
KMS requests (`keyledger.operations`), and the request becomes one call of
`kms.parameters` (`keyledger.service.parameters.ParameterStore`) for the
principal the signature proves. Everything after planning (group commit,
the response, errors as `{"__type", "message"}`, the access log, refusal
summaries, internal errors on record) is the KMS app's, unchanged.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, cast

from keyledger import operations
from keyledger.errors import KMSError
from keyledger.service import Planned
from keyledger.service.parameters import ParameterStore
from keyledger.server import protocol

if TYPE_CHECKING:
    from keyledger.server.app import KMSApp

TARGET_PREFIX = "AmazonSSM."
SERVICE = "ssm"
MODEL_FILE = "ssm-2014-11-06.json"
MODEL = operations.load_model(MODEL_FILE)
#: the SSM operations served: those of the model that ParameterStore implements
OPERATIONS: dict[str, operations.Operation] = operations.build_operations(ParameterStore, MODEL)
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")


def is_ssm_target(target: str | None) -> bool:
    return bool(target) and target.startswith(TARGET_PREFIX)  # type: ignore[union-attr]


def operation_name(target: str | None) -> str:
    """A safe name for the log: the target's SSM operation if it looks like one."""
    if target and target.startswith(TARGET_PREFIX) and _NAME.match(target[len(TARGET_PREFIX):]):
        return target[len(TARGET_PREFIX):]
    return "Unknown"


def operation_for(target: str) -> operations.Operation:
    name = target[len(TARGET_PREFIX):]
    op = OPERATIONS.get(name)
    if op is None:
        raise protocol.UnknownOperationException(
            f"keyledger serves the parameter store's SSM operations only ({', '.join(sorted(OPERATIONS))}), "
            f"not {name[:64]}.")
    return op


async def plan(app: "KMSApp", scope: dict[str, Any], receive: Any, headers: dict[str, list[str]],
               target: str | None, name: str,
               entry: dict[str, Any]) -> tuple[str, Planned | None, KMSError | None]:
    """(principal, planned request, refusal), as `KMSApp._plan` gives them
    for KMS: the SSM call; or the record of its refusal and the refusal;
    or, for a caller who proved no identity, no request and the refusal.
    SSM parameters are regional: the request's region is its credential
    scope's (in --auth none mode too, unverified), as for KMS."""
    principal = app_anonymous = "anonymous"
    region = None
    try:
        principal, body, region = await app.authenticate(scope, receive, headers, entry, service_name=SERVICE)
        op = operation_for(cast(str, target))
        document = protocol.decode_body(body)
        if isinstance(document.get("Name"), str):
            entry["parameter"] = document["Name"][:256]  # a name, never a value
        kwargs = operations.request_kwargs(op, document)
    except KMSError as refusal:
        if principal == app_anonymous:
            return principal, None, refusal
        return principal, app._plan_call(principal, "record_denied", name, refusal, region=region,
                                         origin=protocol.origin_of(scope)), refusal
    store = app._caller(principal, region, protocol.origin_of(scope)).parameters
    return principal, cast(Planned, getattr(store, op.method)(**kwargs)), None
