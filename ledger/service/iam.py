"""IAM principals and access keys: users, roles, their identity policies, and the
access keys the HTTP server authenticates (ledger state, changed only by events)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, TypeVar

from keyledger import commands as cmd
from keyledger import crypto
from keyledger import events as ev
from keyledger import policy as authz
from keyledger import responses as r
from keyledger.errors import (
    AlreadyExistsException,
    DeleteConflictException,
    KMSError,
    LimitExceededException,
    NotFoundException,
    ValidationException,
)
from keyledger.projections import access_key_row, principal_row, split_row
from keyledger.projections.state import PrincipalState
from keyledger.secret import Secret
from keyledger.service.base import ServiceBase
from keyledger.events import from_us
from keyledger.service.request import (
    _principal_id,
    _Request,
)


T = TypeVar("T")

#: AWS IAM's quota of access keys per user
ACCESS_KEYS_PER_USER = 2


class IamOps(ServiceBase):
    """IAM users, roles, identity-based policies and access keys."""

    def _iam_arn(self, kind: str, name: str) -> str:
        cmd.check_iam_name(name)
        return f"arn:aws:iam::{self.account}:{kind}/{name}"

    def create_user(self, user_name: str) -> r.User:
        """CreateUser (IAM): a principal `arn:aws:iam::<account>:user/<name>`, with
        no permissions until an identity policy or key policy gives it some.

        Raises AlreadyExistsException, AccessDeniedException, ValidationException."""
        return self._create_principal("user", user_name)

    def create_role(self, role_name: str) -> r.User:
        """CreateRole (IAM): a principal `arn:aws:iam::<account>:role/<name>`; like
        CreateUser, it can do nothing until a policy allows it.

        Raises AlreadyExistsException, AccessDeniedException, ValidationException."""
        return self._create_principal("role", role_name)

    def _create_principal(self, kind: str, name: str) -> r.User:
        operation = "CreateUser" if kind == "user" else "CreateRole"

        def body(req: _Request) -> r.User:
            arn = self._iam_arn(kind, name)
            req.authorize(f"iam:{operation}", None, resource=arn)
            prefix = principal_row(arn[:-len(name)])
            if any(p.principal[len(prefix):].lower() == name.lower()  # IAM: names are not told apart by case
                   for _, p in req.view.scan("principals", prefix=prefix)):
                raise AlreadyExistsException(f"{kind.capitalize()} with name {name} already exists.")
            req.emit([ev.PrincipalCreated(arn, kind)])
            return r.User(name, arn, from_us(req.now), user_id=_principal_id(arn))
        return self._run(operation, body)

    def delete_user(self, user_name: str) -> None:
        """DeleteUser (IAM). The user must have no access keys and no identity
        policies left (IAM's DeleteConflictException otherwise). Every key
        policy and grant that names the user names its unique id afterwards,
        as AWS shows it: a user made later with the same name inherits none
        of the deleted one's rights. All of it is one record batch.

        Raises NotFoundException, DeleteConflictException, AccessDeniedException,
        ValidationException."""
        return self._delete_principal("user", user_name)

    def delete_role(self, role_name: str) -> None:
        """DeleteRole (IAM): as DeleteUser, for a role (which holds no access
        keys; its identity policies must be deleted first).

        Raises NotFoundException, DeleteConflictException, AccessDeniedException,
        ValidationException."""
        return self._delete_principal("role", role_name)

    def _delete_principal(self, kind: str, name: str) -> None:
        operation = "DeleteUser" if kind == "user" else "DeleteRole"

        def body(req: _Request) -> None:
            arn = self._iam_arn(kind, name)
            req.authorize(f"iam:{operation}", None, resource=arn)
            found = self._named(req, kind, arn)
            if found.access_keys:
                raise DeleteConflictException("Cannot delete entity, must delete access keys first.")
            if found.policies:
                raise DeleteConflictException("Cannot delete entity, must delete policies first.")
            unique_id = _principal_id(arn)
            req.emit([ev.PrincipalDeleted(arn, kind, unique_id)])
            for row, key in req.view.scan("keys", prefix=b""):
                if key.state == cmd.DELETED or cmd.deletion_due(key, req.now) or \
                        (arn not in key.policy and "\\u" not in key.policy):
                    continue  # most policies never name it (a JSON escape could spell it: those are parsed)
                policy = authz.without_principal(key.policy, arn, unique_id)
                if policy is not None:
                    req.elsewhere(split_row(row)[0]).emit([ev.KeyPolicyPrincipalDeleted(key.key_id, arn, policy)])
            for row, grant in req.view.scan("grants", prefix=b""):
                if arn in (grant.grantee_principal, grant.retiring_principal):
                    req.elsewhere(split_row(row)[0]).emit(
                        [ev.GrantPrincipalDeleted(grant.key_id, grant.grant_id, arn, unique_id)])
        return self._run(operation, body)

    def _named(self, req: _Request, kind: str, arn: str) -> PrincipalState:
        """The row of the user or role (`kind`) `arn`, or IAM's NoSuchEntity wording."""
        found: PrincipalState | None = req.view.get("principals", principal_row(arn))
        if found is None or found.kind != kind:
            raise NotFoundException(f"The {kind} with name {arn.split('/', 1)[-1]} cannot be found.")
        return found

    @staticmethod
    def _entity(found: PrincipalState) -> r.User:
        """A user or role as IAM answers it, from its row."""
        return r.User(found.principal.split("/", 1)[-1], found.principal, from_us(found.created),
                      user_id=_principal_id(found.principal))

    def _principal(self, req: _Request, principal: str) -> Any:
        """A user's or role's row (the account root's row holds only its access keys)."""
        found = req.view.get("principals", principal_row(principal))
        if found is None or found.kind == "root":
            raise NotFoundException(f"The principal {principal} cannot be found.")
        return found

    def put_principal_policy(self, principal: str, policy_name: str, policy_document: str) -> None:
        """Attach (or replace) a named identity-based policy (`keyledger iam attach-policy`)."""
        def body(req: _Request) -> None:
            cmd.check_iam_name(policy_name)
            authz.parse(policy_document, key_policy=False)
            req.authorize("iam:PutUserPolicy", None, resource=principal)
            self._principal(req, principal)
            req.emit([ev.PrincipalPolicyPut(principal, policy_name, policy_document)])
        return self._run("PutUserPolicy", body)

    def delete_principal_policy(self, principal: str, policy_name: str) -> None:
        """Detach a named identity-based policy (`keyledger iam detach-policy`)."""
        def body(req: _Request) -> None:
            req.authorize("iam:DeleteUserPolicy", None, resource=principal)
            found = self._principal(req, principal)
            if policy_name not in found.policies:
                raise NotFoundException(f"The policy {policy_name} of {principal} cannot be found.")
            req.emit([ev.PrincipalPolicyDeleted(principal, policy_name)])
        return self._run("DeleteUserPolicy", body)

    def get_user(self, principal: str) -> r.User:
        """GetUser (IAM): a user, or the account root, which AWS answers with
        the account id as its UserId, no name or path, and the account's
        creation date (here: the ledger's first record).

        Raises NotFoundException, AccessDeniedException."""
        def body(req: _Request) -> r.User:
            req.authorize("iam:GetUser", None, resource=principal)
            if self._account_root(principal):
                first = req.view.record(0)
                user = r.User("", principal, from_us(req.now if first is None else first.time), path="",
                              user_id=self.account)
            else:
                user = self._entity(self._named(req, "user", principal))
            req.emit([ev.MetadataRead("GetUser")])
            return user
        return self._run("GetUser", body)

    def list_users(self) -> r.ListUsersResponse:
        """ListUsers (IAM): the ledger's IAM users (not roles), in name order.

        Raises AccessDeniedException."""
        return self._list_principals("user", r.ListUsersResponse)

    def get_role(self, role_name: str) -> r.User:
        """GetRole (IAM): a role, as `create_role` answered it.

        Raises NotFoundException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.User:
            arn = self._iam_arn("role", role_name)
            req.authorize("iam:GetRole", None, resource=arn)
            role = self._entity(self._named(req, "role", arn))
            req.emit([ev.MetadataRead("GetRole")])
            return role
        return self._run("GetRole", body)

    def list_roles(self) -> r.ListRolesResponse:
        """ListRoles (IAM): the ledger's IAM roles, in name order.

        Raises AccessDeniedException."""
        return self._list_principals("role", r.ListRolesResponse)

    def _list_principals(self, kind: str, answer: Callable[[list[r.User]], T]) -> T:
        operation = "ListUsers" if kind == "user" else "ListRoles"

        def body(req: _Request) -> T:
            req.authorize(f"iam:{operation}", None)
            prefix = principal_row(f"arn:aws:iam::{self.account}:{kind}/")
            found = [self._entity(p) for _, p in req.view.scan("principals", prefix=prefix) if p.kind == kind]
            req.emit([ev.MetadataRead(operation)])
            return answer(found)
        return self._run(operation, body)  # (planned by the server: the answer is made in the body)

    def list_principal_policies(self, principal: str) -> r.ListUserPoliciesResponse:
        """ListUserPolicies (IAM): the names of a user's or role's inline identity
        policies (`principal` is its ARN).

        Raises NotFoundException, AccessDeniedException."""
        def body(req: _Request) -> r.ListUserPoliciesResponse:
            req.authorize("iam:ListUserPolicies", None, resource=principal)
            found = self._principal(req, principal)
            req.emit([ev.MetadataRead("ListUserPolicies")])
            return r.ListUserPoliciesResponse(sorted(found.policies))
        return self._run("ListUserPolicies", body)

    def get_principal_policy(self, principal: str, policy_name: str) -> r.GetUserPolicyResponse:
        """GetUserPolicy (IAM): one inline identity policy of a user or role, by name.

        Raises NotFoundException, AccessDeniedException."""
        def body(req: _Request) -> r.GetUserPolicyResponse:
            req.authorize("iam:GetUserPolicy", None, resource=principal)
            found = self._principal(req, principal)
            if policy_name not in found.policies:
                raise NotFoundException(f"The policy {policy_name} of {principal} cannot be found.")
            req.emit([ev.MetadataRead("GetUserPolicy")])
            return r.GetUserPolicyResponse(principal.split("/", 1)[-1], policy_name, found.policies[policy_name])
        return self._run("GetUserPolicy", body)

    def create_access_key(self, principal: str) -> r.NewAccessKey:
        """CreateAccessKey (IAM): a new access key for a user, whose secret
        the ledger holds (wrapped under the root key, outside the log) and
        whose status it keeps, so `keyledger serve` on this ledger, and every
        node of its cluster, authenticates it at once. The answer is the
        only time the secret is shown. At most two keys per user, as in AWS.

        Raises NotFoundException, LimitExceededException,
        ValidationException, AccessDeniedException."""
        def body(req: _Request) -> r.NewAccessKey:
            req.authorize("iam:CreateAccessKey", None, resource=principal)
            found = self._holder(req, principal)
            if found.kind == "role":
                raise ValidationException(f"Access keys are issued to users, not to a role: {principal}")
            if len(found.access_keys) >= ACCESS_KEYS_PER_USER:
                raise LimitExceededException(f"Cannot exceed quota for AccessKeysPerUser: {ACCESS_KEYS_PER_USER}")
            access_key_id = "AKIA" + base64.b32encode(self._rng(10)).decode()
            while access_key_id in found.access_keys:  # (10 random bytes: never, but never twice either)
                access_key_id = "AKIA" + base64.b32encode(self._rng(10)).decode()
            secret = Secret(base64.b64encode(self._rng(30)))  # 40 characters, as AWS's
            req.view.put_kek(access_key_row(access_key_id), crypto.wrap_access_secret(
                self._root, access_key_id, secret, nonce=self._rng(crypto.NONCE_BYTES)))
            req.emit([ev.AccessKeyCreated(principal, access_key_id, held=True)])
            user_name = None if self._account_root(principal) else principal.split("/", 1)[-1]
            return r.NewAccessKey(user_name, access_key_id, secret, from_us(req.now))
        return self._run("CreateAccessKey", body)

    def held_access_key(self, access_key_id: str) -> tuple[str, Secret, bool] | None:
        """(principal, secret, active) of an access key whose secret the
        ledger holds, or None: what the HTTP server's SigV4 check asks. Not
        an operation (nothing is recorded: the signed request is). The
        secret is unwrapped once per wrapped row and cached like a KEK."""
        name = access_key_row(access_key_id)
        with self.store.snapshot() as snap:
            wrapped = snap.kek(name)
            if wrapped is None:
                return None
            holder = self._holders.get(access_key_id)
            state = None if holder is None else snap.get("principals", principal_row(holder))
            if state is None or access_key_id not in state.held_keys:
                # ids are never issued twice, so the holder found once stays the holder
                state = next((p for _, p in snap.scan("principals") if access_key_id in p.held_keys), None)
                if state is None:
                    return None
                self._holders[access_key_id] = state.principal
        with self._cache_lock:
            cached = self._keks.get(name)
        if cached is not None and cached[0] == wrapped:
            secret = cached[1]
        else:
            secret = crypto.unwrap_access_secret(self._root, access_key_id, wrapped)
            with self._cache_lock:
                self._keks[name] = (wrapped, secret)
        return state.principal, secret, state.held_keys[access_key_id].status == "Active"

    def record_access_key(self, principal: str, access_key_id: str) -> None:
        """Log that an access key id was issued to a principal (the secret
        lives only in the server's credentials file, never in the log)."""
        def body(req: _Request) -> None:
            req.authorize("iam:CreateAccessKey", None, resource=principal)
            self._principal(req, principal)
            req.emit([ev.AccessKeyCreated(principal, access_key_id)])
        return self._run("CreateAccessKey", body)

    def _account_root(self, principal: str) -> bool:
        return principal == f"arn:aws:iam::{self.account}:root"

    def _holder(self, req: _Request, principal: str) -> Any:
        """The principal's row, as one that may hold access keys: a user's
        (or role's), or the account root's, which has a row only once the
        ledger holds a key of its (an empty one until then)."""
        if self._account_root(principal):
            found = req.view.get("principals", principal_row(principal))
            return found if found is not None else PrincipalState(principal, "root", req.now)
        return self._principal(req, principal)

    def _access_key_of(self, req: _Request, principal: str, access_key_id: str) -> None:
        if access_key_id in self._holder(req, principal).access_keys:
            return
        if self._account_root(principal):
            return  # a root key of a credentials file: the ledger never recorded it, nothing to check against
        raise NotFoundException(f"The Access Key with id {access_key_id[:128]} cannot be found.")

    def update_access_key(self, principal: str, access_key_id: str, status: str) -> None:
        """Log that an access key was made Active or Inactive (the server's
        credentials file is changed by the caller, `keyledger iam update-access-key`)."""
        def body(req: _Request) -> None:
            if status not in ("Active", "Inactive"):
                raise ValidationException(
                    f"1 validation error detected: Value '{status[:40]}' at 'status' failed to satisfy "
                    "constraint: Member must satisfy enum value set: [Active, Inactive]")
            req.authorize("iam:UpdateAccessKey", None, resource=principal)
            self._access_key_of(req, principal, access_key_id)
            req.emit([ev.AccessKeyStatusChanged(principal, access_key_id, status)])
        return self._run("UpdateAccessKey", body)

    def delete_access_key(self, principal: str, access_key_id: str) -> None:
        """Log that an access key was deleted (`keyledger iam delete-access-key`)."""
        def body(req: _Request) -> None:
            req.authorize("iam:DeleteAccessKey", None, resource=principal)
            self._access_key_of(req, principal, access_key_id)
            if access_key_id in self._holder(req, principal).held_keys:
                req.view.put_kek(access_key_row(access_key_id), None)  # the secret is gone with it
            req.emit([ev.AccessKeyDeleted(principal, access_key_id)])
        return self._run("DeleteAccessKey", body)

    def list_access_keys(self, principal: str) -> r.ListAccessKeysResponse:
        """ListAccessKeys (IAM): the principal's access keys that are not
        deleted, in the order they were issued, never a secret. A key whose
        secret a credentials file holds has no status or date here: the
        file has them."""
        def body(req: _Request) -> r.ListAccessKeysResponse:
            req.authorize("iam:ListAccessKeys", None, resource=principal)
            found = self._holder(req, principal)
            user_name = None if self._account_root(principal) else principal.split("/", 1)[-1]
            keys = [r.AccessKeyMetadata(user_name, key_id, *(
                (held.status, from_us(held.created)) if (held := found.held_keys.get(key_id)) else ()))
                for key_id in found.access_keys]
            req.emit([ev.MetadataRead("ListAccessKeys")])
            return r.ListAccessKeysResponse(keys)
        return self._run("ListAccessKeys", body)

    def record_unauthenticated_refusals(self, summaries: list[ev.UnauthenticatedRequestsRefused]) -> None:
        """Log the HTTP server's counts of refused unauthenticated requests
        (one event per source address and error code), in one request."""
        def body(req: _Request) -> None:
            if summaries:
                req.emit(list(summaries))
        return self._run("UnauthenticatedRequestsRefused", body)

    def record_denied(self, operation: str, error: KMSError) -> None:
        """Log a request refused before it reached the ledger (e.g. a bad
        SigV4 signature at the HTTP server), as a RequestDenied record."""
        def body(req: _Request) -> None:
            req.emit([ev.RequestDenied(operation, error.code, error.message)])
        return self._run(operation, body)

