"""Access: key policies (Put/Get/ListKeyPolicies, the lockout check, policy
simulation) and grants (Create/List/Retire/RevokeGrant)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from keyledger import commands as cmd
from keyledger import events as ev
from keyledger import policy as authz
from keyledger import responses as r
from keyledger.errors import (
    AccessDeniedException,
    NotFoundException,
    ValidationException,
)
from keyledger.projections import grant_row, in_scope, principal_row, scope_prefix
from keyledger.service.base import ServiceBase
from keyledger.events import from_us
from keyledger.service.request import (
    _check_grant_tokens,
    _check_policy_name,
    _decode_marker,
    _dry_run,
    _encode_marker,
    _grant_token,
    _lockout_check,
    _principals_exist,
    _missing,
    _parse_grant_token,
    _Request,
)


class AccessOps(ServiceBase):
    """Key policies and grants."""

    def put_key_policy(self, key_id: str, policy: str, *, policy_name: str = "default",
                       bypass_policy_lockout_safety_check: bool = False) -> None:
        """PutKeyPolicy: replace the key's policy (`policy_name` "default"; RAM
        manages "AWS_RAM", which is refused after authorization), in any key
        state: AWS's key-state table lets a key pending deletion take a new
        policy too. The lockout check refuses a policy that would stop you
        from changing it again, unless `bypass_policy_lockout_safety_check`.

        Raises NotFoundException, MalformedPolicyDocumentException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> None:
            _check_policy_name(policy_name)
            state = req.key(key_id)  # a missing key or a caller who may not put its policy learns
            req.authorize("kms:PutKeyPolicy", state,  # nothing about the document
                          extra={"kms:bypasspolicylockoutsafetycheck": bypass_policy_lockout_safety_check,
                                 "kms:policyname": policy_name})
            if policy_name == "AWS_RAM":
                raise ValidationException("The AWS_RAM policy can only be managed by the RAM service.")
            _principals_exist(req, authz.parse(policy))
            if not bypass_policy_lockout_safety_check:
                _lockout_check(req, state.key_id, policy)
            req.emit([ev.KeyPolicyPut(state.key_id, policy_name, policy)])
        return self._run("PutKeyPolicy", body, key_hint=key_id)

    def get_key_policy(self, key_id: str, *, policy_name: str = "default") -> r.GetKeyPolicyResponse:
        """GetKeyPolicy: the key's policy document (AWS's default key policy if
        none was ever set). "AWS_RAM", the policy RAM manages for a shared key,
        is NotFoundException: a ledger shares no key through RAM.

        Raises NotFoundException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.GetKeyPolicyResponse:
            _check_policy_name(policy_name)
            state = req.key(key_id)
            req.authorize("kms:GetKeyPolicy", state, extra={"kms:policyname": policy_name})
            if policy_name == "AWS_RAM":
                raise NotFoundException("No such policy exists: 'AWS_RAM' (the key is not shared through RAM, so "
                                        "RAM manages no policy for it)")
            req.emit([ev.MetadataRead("GetKeyPolicy", state.key_id)])
            return r.GetKeyPolicyResponse(state.policy or authz.default_key_policy(self.account), policy_name)
        return self._run("GetKeyPolicy", body, key_hint=key_id)

    def list_key_policies(self, key_id: str, *, limit: int | None = None,
                          marker: str | None = None) -> r.ListKeyPoliciesResponse:
        """ListKeyPolicies: the key's policy names, which is always ["default"]
        (as in AWS); kept for clients that ask. The one page is never
        truncated, so no marker is ever issued; one given is not read (AWS
        lists no InvalidMarkerException for ListKeyPolicies).

        Raises NotFoundException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.ListKeyPoliciesResponse:
            cmd.check_limit(limit, 1000)
            state = req.key(key_id)
            req.authorize("kms:ListKeyPolicies", state)
            req.emit([ev.MetadataRead("ListKeyPolicies", state.key_id)])
            return r.ListKeyPoliciesResponse(["default"])
        return self._run("ListKeyPolicies", body, key_hint=key_id)

    def simulate_policy(self, principal: str, action: str, *, key_id: str | None = None,
                        encryption_context: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The decision for `principal` doing `action` (on `key_id`, with
        `encryption_context`) and every statement or grant that applied:
        `keyledger policy simulate`. Changes nothing; the query is logged."""
        def body(req: _Request) -> dict[str, Any]:
            cmd.check_principal_arn("principal", principal)
            if not isinstance(action, str) or ":" not in action:
                raise ValidationException("action must look like kms:Decrypt")
            context = cmd.check_context("encryptionContext", encryption_context) \
                if encryption_context is not None else None
            req.authorize("iam:SimulatePrincipalPolicy", None, resource=principal)
            state = req.key(key_id) if key_id is not None else None
            who = _Request(self.as_caller(principal), req.view, req.operation, req.now, req.request_id)
            who.request_alias = req.request_alias
            request = authz.Request(principal, action, req.arn(state.key_id) if state else "*",
                                    who.conditions(state, context, None), context)
            # an assumed-role session has its role's identity policies
            found = req.view.get("principals", principal_row(authz.role_of(principal) or principal))
            iam = {name: authz.parse(doc, key_policy=False) for name, doc in found.policies.items()} \
                if found is not None else {}
            key_policy = authz.parse(state.policy or authz.default_key_policy(self.account)) if state else None
            decision, matches = authz.explain(request, key_policy=key_policy, iam_policies=iam,
                                              grants=who.grants(state.key_id) if state else ())
            req.emit([ev.MetadataRead("SimulatePrincipalPolicy", state.key_id if state else None)])
            return {"Principal": principal, "Action": action, "Resource": request.resource,
                    "Decision": "allowed" if decision.allowed else "denied",
                    "Reason": decision.reason,
                    "MatchedStatements": [{"Source": m.source, "Statement": m.statement, "Effect": m.effect,
                                           "Via": m.via} for m in matches]}
        return self._run("SimulatePrincipalPolicy", body, key_hint=key_id)

    # -- grants -------------------------------------------------------------------

    def create_grant(self, key_id: str, grantee_principal: str | None = None, operations: list[str] | None = None,
                     *, retiring_principal: str | None = None, constraints: Mapping[str, Any] | None = None,
                     name: str | None = None, grant_tokens: list[str] | None = None,
                     dry_run: bool | None = None, grantee_service_principal: str | None = None,
                     retiring_service_principal: str | None = None) -> r.CreateGrantResponse:
        """CreateGrant: let `grantee_principal` perform `operations` on the key,
        optionally only with an encryption context (`constraints`:
        EncryptionContextEquals or EncryptionContextSubset) or only on behalf
        of an AWS resource (`SourceArn`). Effective at once. A grant can only
        grant what it holds; the same `name` and grant again return the
        existing grant (idempotent, as AWS). `dry_run`: every check, then
        DryRunOperationException; no grant is made.

        The grantee may instead be an AWS service principal
        (`grantee_service_principal`, with a SourceArn constraint and a
        retiring principal or `retiring_service_principal`), as in AWS. Such
        a grant is kept, listed, retired and revoked like any other, but no
        keyledger caller is a service principal acting for an AWS resource,
        so it allows nobody anything here.

        Raises NotFoundException, KMSInvalidStateException, InvalidGrantTokenException,
        DryRunOperationException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.CreateGrantResponse:
            if operations is None:
                raise _missing("operations")
            ops = cmd.check_grant_operations(operations)
            equals, subset, source_arn = cmd.check_grant_constraints(constraints, ops)
            cmd.check_grantee(grantee_principal, grantee_service_principal, retiring_principal,
                              retiring_service_principal, source_arn)
            if name is not None:
                cmd.check_grant_name(name)
            _check_grant_tokens(grant_tokens)
            state = req.key(key_id)
            kinds = [kind for kind, value in zip(("EncryptionContextEquals", "EncryptionContextSubset", "SourceArn"),
                                                 (equals, subset, source_arn)) if value is not None]
            req.authorize("kms:CreateGrant", state, extra={
                "kms:grantoperations": ops, "kms:granteeprincipal": grantee_principal,
                "kms:granteeserviceprincipal": grantee_service_principal,
                "kms:retiringprincipal": retiring_principal, "kms:grantconstrainttype": kinds,
                "kms:grantconstraintsourcearn": source_arn, "kms:grantisforawsresource": False},
                new_grant_constraints=(equals, subset), new_grant_operations=tuple(ops))
            cmd.require_not_pending(state, req.arn(state.key_id))
            cmd.check_grant_constraints_for_key(state, equals, subset)
            _dry_run(dry_run)
            made = ev.GrantCreated(state.key_id, "", grantee_principal, ops, retiring_principal, name, equals,
                                   subset, grantee_service_principal, retiring_service_principal, source_arn)
            if name is not None:  # CreateGrant is idempotent on a name with the same grant
                for _, g in req.view.scan("grants", prefix=grant_row(state.key_id, "", req.scope)):
                    if _same_grant(g, made):
                        req.emit([ev.MetadataRead("CreateGrant", state.key_id)])
                        return r.CreateGrantResponse(_grant_token(state.key_id, g.grant_id, self._rng(8)),
                                                     g.grant_id)
            grant_id = self._rng(32).hex()
            req.emit([msgspec.structs.replace(made, grant_id=grant_id)])
            return r.CreateGrantResponse(_grant_token(state.key_id, grant_id, self._rng(8)), grant_id)
        return self._run("CreateGrant", body, key_hint=key_id)

    def _grant_entry(self, g: Any) -> r.GrantListEntry:
        constraints = None
        if g.context_equals is not None or g.context_subset is not None or g.source_arn is not None:
            constraints = r.GrantConstraints(g.context_subset, g.context_equals, g.source_arn)
        return r.GrantListEntry(
            key_id=self._arn(g.key_id), grant_id=g.grant_id, grantee_principal=g.grantee_principal,
            operations=list(g.operations), issuing_account=authz.root_of(self.account),
            creation_date=from_us(g.created), name=g.name, retiring_principal=g.retiring_principal,
            constraints=constraints, grantee_service_principal=g.grantee_service_principal,
            retiring_service_principal=g.retiring_service_principal)

    def list_grants(self, key_id: str, *, limit: int | None = None, marker: str | None = None,
                    grant_id: str | None = None, grantee_principal: str | None = None,
                    grantee_service_principal: str | None = None) -> r.ListGrantsResponse:
        """ListGrants: the key's grants (optionally one `grant_id`, one
        `grantee_principal` or one `grantee_service_principal`), `limit` at a
        time; pass `next_marker` back as `marker`.

        Raises NotFoundException, InvalidMarkerException, AccessDeniedException,
        ValidationException."""
        def body(req: _Request) -> r.ListGrantsResponse:
            n = cmd.check_limit(limit, 100)
            after = _decode_marker(marker, lambda v: len(v) == 64)
            state = req.key(key_id)
            req.authorize("kms:ListGrants", state, extra={"kms:granteeprincipal": grantee_principal,
                                                          "kms:grantisforawsresource": False})
            prefix = grant_row(state.key_id, "", req.scope)
            rows = [g for _, g in req.view.scan("grants", prefix=prefix,
                                                 after=prefix + after if after else None)
                    if (grant_id is None or g.grant_id == grant_id)
                    and (grantee_principal is None or g.grantee_principal == grantee_principal)
                    and (grantee_service_principal is None
                         or g.grantee_service_principal == grantee_service_principal)]
            page = rows[:n]
            req.emit([ev.MetadataRead("ListGrants", state.key_id)])
            truncated = len(rows) > n
            return r.ListGrantsResponse([self._grant_entry(g) for g in page], truncated,
                                        _encode_marker(page[-1].grant_id.encode()) if truncated else None)
        return self._run("ListGrants", body, key_hint=key_id)

    def list_retirable_grants(self, retiring_principal: str | None = None, *, limit: int | None = None,
                              marker: str | None = None,
                              retiring_service_principal: str | None = None) -> r.ListGrantsResponse:
        """ListRetirableGrants: every grant, across keys, that `retiring_principal`
        (or `retiring_service_principal`: one of the two) may retire, `limit`
        at a time; pass `next_marker` back as `marker`.

        Raises InvalidMarkerException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.ListGrantsResponse:
            n = cmd.check_limit(limit, 100)
            if (retiring_principal is None) == (retiring_service_principal is None):
                raise ValidationException("You must specify either RetiringPrincipal or RetiringServicePrincipal, "
                                          "but not both.")
            if retiring_principal is not None:
                cmd.check_principal_arn("retiringPrincipal", retiring_principal)
            after = _decode_marker(marker, lambda v: b"#" in v)
            req.authorize("kms:ListRetirableGrants", None)
            prefix = scope_prefix(req.scope)  # the request region's grants only
            rows = [(row[len(prefix):], g)
                    for row, g in req.view.scan("grants", prefix=prefix, after=prefix + after if after else None)
                    if in_scope(row, req.scope) and (g.retiring_principal, g.retiring_service_principal)
                    == (retiring_principal, retiring_service_principal)]
            page = rows[:n]
            req.emit([ev.MetadataRead("ListRetirableGrants")])
            truncated = len(rows) > n
            return r.ListGrantsResponse([self._grant_entry(g) for _, g in page], truncated,
                                        _encode_marker(page[-1][0]) if truncated else None)
        return self._run("ListRetirableGrants", body)

    def retire_grant(self, *, grant_token: str | None = None, key_id: str | None = None,
                     grant_id: str | None = None, dry_run: bool | None = None) -> None:
        """RetireGrant: end a grant as its retiring principal, its grantee (if the
        grant allows RetireGrant) or the account root. Name it by `grant_token`,
        or by `key_id` and `grant_id`. `dry_run`: every check, then
        DryRunOperationException; the grant stays.

        Raises NotFoundException, InvalidGrantTokenException, DryRunOperationException,
        AccessDeniedException, ValidationException."""
        def body(req: _Request) -> None:
            if grant_token is not None:
                token_key, token_grant = _parse_grant_token(grant_token)
                if grant_id is not None and grant_id != token_grant:
                    raise ValidationException("GrantId does not match the grant token")
                target_key, target_grant = token_key, token_grant
            elif key_id is not None and grant_id is not None:
                target_key, target_grant = req.key(key_id).key_id, grant_id
            else:
                raise ValidationException("Specify GrantToken, or KeyId and GrantId")
            req.key_hint = target_key
            grant = req.view.get("grants", grant_row(target_key, target_grant, req.scope))
            if grant is None:
                raise NotFoundException(f"Grant ID {target_grant} not found")
            caller = self.caller
            role = authz.role_of(caller)  # a session is named by its role's ARN too
            callers = (caller,) if role is None else (caller, role)
            allowed = caller == authz.root_of(self.account) or grant.retiring_principal in callers or \
                (grant.grantee_principal in callers and "RetireGrant" in grant.operations)
            if not allowed:
                raise AccessDeniedException(
                    f"User: {caller} is not authorized to perform: kms:RetireGrant on resource: "
                    f"{req.arn(target_key)} because it is not the grant's retiring principal or grantee")
            _dry_run(dry_run)
            req.emit([ev.GrantRetired(target_key, target_grant)])
        return self._run("RetireGrant", body, key_hint=key_id)

    def revoke_grant(self, key_id: str, grant_id: str, *, dry_run: bool | None = None) -> None:
        """RevokeGrant: end a grant as someone the key's policy allows to
        (kms:RevokeGrant), unlike RetireGrant, which is for the grant's own parties.
        `dry_run`: every check, then DryRunOperationException; the grant stays.

        Raises NotFoundException, DryRunOperationException, AccessDeniedException,
        ValidationException."""
        def body(req: _Request) -> None:
            state = req.key(key_id)
            req.authorize("kms:RevokeGrant", state, extra={"kms:grantisforawsresource": False})
            if req.view.get("grants", grant_row(state.key_id, grant_id, req.scope)) is None:
                raise NotFoundException(f"Grant ID {grant_id} not found")
            _dry_run(dry_run)
            req.emit([ev.GrantRevoked(state.key_id, grant_id)])
        return self._run("RevokeGrant", body, key_hint=key_id)


def _same_grant(row: Any, made: ev.GrantCreated) -> bool:
    """Whether a grant row is the grant a named CreateGrant would make again."""
    return (row.name, row.grantee_principal, set(row.operations), row.retiring_principal, row.context_equals,
            row.context_subset, row.grantee_service_principal, row.retiring_service_principal, row.source_arn) == \
        (made.name, made.grantee_principal, set(made.operations), made.retiring_principal, made.context_equals,
         made.context_subset, made.grantee_service_principal, made.retiring_service_principal, made.source_arn)
