"""Key policies and grants: their commands are built from the model
(`cli.kms`); what stays here is their parameter syntax, for callers that
parse it themselves.

Policy documents go to the service as text (`file://PATH` or the literal
JSON) and are checked there, so a bad one is the service's
MalformedPolicyDocumentException naming the problem, as AWS reports it.
Grant constraints take the AWS CLI's shorthand
(`EncryptionContextSubset={k=v,k2=v2}`) or a JSON object.
"""

from __future__ import annotations

from keyledger.cli import params
from keyledger.cli.kms import BY_OPERATION

OPERATIONS = ("PutKeyPolicy", "GetKeyPolicy", "ListKeyPolicies", "CreateGrant", "ListGrants",
              "ListRetirableGrants", "RetireGrant", "RevokeGrant")
COMMANDS = [BY_OPERATION[name] for name in OPERATIONS]


def grant_constraints(param: str, value: str | None) -> dict[str, dict[str, str]] | None:
    """--constraints: `EncryptionContextSubset={k=v,k2=v2}` (the AWS CLI's
    shorthand), a JSON object, or file:// of either. Which members may be
    combined is the service's to say."""
    return params.structure(param, "GrantConstraints", value)
