"""IAM principals and access keys: users, roles, their identity policies, and the
access keys the HTTP server authenticates (ledger state, changed only by events)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, Self, TypeVar

import msgspec
from msgspec.structs import replace

from keyledger import commands as cmd
from keyledger import crypto
from keyledger import events as ev
from keyledger import policy as authz
from keyledger import responses as r
from keyledger.errors import (
    AccessDeniedException,
    AlreadyExistsException,
    DeleteConflictException,
    ExpiredTokenException,
    KMSError,
    LimitExceededException,
    MalformedPolicyDocumentException,
    NotFoundException,
    UnrecognizedClientException,
    ValidationException,
)
from keyledger.projections import access_key_row, cloudtrail, principal_row, split_row
from keyledger.projections.state import PrincipalState
from keyledger.secret import Secret
from keyledger.service.base import ServiceBase
from keyledger.events import from_us
from keyledger.service.request import (
    _principal_id,
    _principals_exist,
    _Request,
    public_random,
)


T = TypeVar("T")

#: IAM's default session length for a role (and the limit for role chaining)
DEFAULT_SESSION_SECONDS = 3600
#: what a session token starts with (keyledger's; the rest is base64 of the sealed claims)
_SESSION_TOKEN_PREFIX = b"KLST1"


class _SessionClaims(msgspec.Struct, frozen=True, array_like=True):
    """What a session token seals: who the session is, its secret, and
    until when. Only ever encoded inside `crypto.seal_session_token`."""

    access_key_id: str
    secret: str
    role: str
    role_created: int  # the role's creation time: a role made again is not the same role
    session_name: str
    expires: int  # microseconds since the epoch
    issued: int | None = None  # microseconds since the epoch (aws:TokenIssueTime); None in older tokens

    def __repr__(self) -> str:  # holds a secret
        return f"_SessionClaims({self.access_key_id!r}, <redacted>, {self.role!r}, {self.session_name!r})"


_claims_encoder = msgspec.msgpack.Encoder()
_claims_decoder = msgspec.msgpack.Decoder(_SessionClaims)


def _last_signed(req: _Request, principal: str, access_key_id: str) -> ev.Record | None:
    """The last record of a request `access_key_id` signed, before this
    request: a key signs only for its owner, so the owner's index is read
    newest first (every seq, without audit tables)."""
    end = req.view.head.seq
    seqs = req.view.index_seqs("idx_principal", principal.encode(), hi=end, reverse=True) if req.view.indexed \
        else range(end - 1, -1, -1)
    for seq in seqs:
        record = req.view.record(seq)
        if record is not None and record.access_key == access_key_id:
            return record
    return None


def _iam_op(name: str, principal: str) -> str:
    """IAM's name for an action on a user or a role: `name` with `{}` for
    User or Role (`Put{}Policy` -> PutUserPolicy, `List{}Tags` -> ListRoleTags)."""
    return name.format("Role" if ":role/" in principal else "User")


def _tag_list(tags: dict[str, str]) -> list[r.IamTag] | None:
    """IAM's tag list, by key; None for no tags (IAM then sends no Tags member)."""
    return [r.IamTag(k, v) for k, v in sorted(tags.items())] or None


def _check_trust_policy(req: _Request, document: str) -> None:
    """A role's trust policy: a resource-based policy without Resource, whose
    IAM principals of this account exist (as for a key policy)."""
    if not isinstance(document, str):
        raise MalformedPolicyDocumentException("The trust policy must be a JSON document")
    _principals_exist(req, authz.parse(document, trust=True))


#: AWS IAM's quota of access keys per user
ACCESS_KEYS_PER_USER = 2


class IamOps(ServiceBase):
    """IAM users, roles, identity-based policies and access keys."""

    def _iam_arn(self, kind: str, name: str) -> str:
        cmd.check_iam_name(name)
        return f"arn:aws:iam::{self.account}:{kind}/{name}"

    def create_user(self, user_name: str, *, tags: Any = None) -> r.User:
        """CreateUser (IAM): a principal `arn:aws:iam::<account>:user/<name>`, with
        no permissions until an identity policy or key policy gives it some.
        `tags` (a dict, or IAM's [{"Key", "Value"}]) are its tags
        (`aws:PrincipalTag/<key>` in conditions).

        Raises AlreadyExistsException, LimitExceededException, AccessDeniedException,
        ValidationException."""
        return self._create_principal("user", user_name, tags=tags)

    def create_role(self, role_name: str, assume_role_policy_document: str | None = None, *,
                    max_session_duration: int | None = None, tags: Any = None,
                    description: str | None = None) -> r.User:
        """CreateRole (IAM): a principal `arn:aws:iam::<account>:role/<name>`; like
        CreateUser, it can do nothing until a policy allows it. Its trust
        policy (`assume_role_policy_document`) says who may assume it with
        STS AssumeRole (`assume_role`); a role made without one cannot be
        assumed. `max_session_duration`: its sessions' longest life, 3600
        (the default) to 43200 seconds. `tags`: as for `create_user` (its
        sessions have them too). `description`: up to 1000 characters.

        Raises AlreadyExistsException, MalformedPolicyDocumentException,
        LimitExceededException, AccessDeniedException, ValidationException."""
        return self._create_principal("role", role_name, assume_role_policy_document, max_session_duration, tags,
                                      description)

    def _create_principal(self, kind: str, name: str, trust_policy: str | None = None,
                          max_session_duration: int | None = None, tags: Any = None,
                          description: str | None = None) -> r.User:
        operation = "CreateUser" if kind == "user" else "CreateRole"

        def body(req: _Request) -> r.User:
            arn = self._iam_arn(kind, name)
            if trust_policy is not None:
                _check_trust_policy(req, trust_policy)
            if max_session_duration is not None:
                cmd.check_session_duration(max_session_duration, "maxSessionDuration", 3600)
            if description is not None:
                cmd.check_role_description(description)
            tagged = cmd.check_iam_tags(tags) if tags is not None else {}
            req.authorize(f"iam:{operation}", None, resource=arn)
            if tagged:  # IAM: tagging at creation needs the Tag action too
                req.authorize(f"iam:Tag{kind.capitalize()}", None, resource=arn)
            prefix = principal_row(arn[:-len(name)])
            if any(p.principal[len(prefix):].lower() == name.lower()  # IAM: names are not told apart by case
                   for _, p in req.view.scan("principals", prefix=prefix)):
                raise AlreadyExistsException(f"{kind.capitalize()} with name {name} already exists.")
            unique_id = authz.new_unique_id(kind, public_random)  # public: AWS shows it to anyone who lists
            req.emit([ev.PrincipalCreated(arn, kind, trust_policy, max_session_duration, unique_id, description),
                      *([ev.PrincipalTagged(arn, tagged)] if tagged else [])])
            role = kind == "role"
            return r.User(name, arn, from_us(req.now), user_id=unique_id,
                          assume_role_policy_document=trust_policy,
                          max_session_duration=(max_session_duration or DEFAULT_SESSION_SECONDS) if role else None,
                          tags=_tag_list(tagged), description=description)
        return self._run(operation, body)

    def tag_principal(self, principal: str, tags: Any) -> None:
        """TagUser / TagRole (IAM): set tags on a user or role (`principal` is
        its ARN); a tag whose key differs only by case is replaced. At most
        50 tags. They are `aws:PrincipalTag/<key>` in conditions, for the
        user, or for the role and every session of it.

        Raises NotFoundException, LimitExceededException, AccessDeniedException,
        ValidationException."""
        operation = _iam_op("Tag{}", principal)

        def body(req: _Request) -> None:
            tagged = cmd.check_iam_tags(tags)
            req.authorize(f"iam:{operation}", None, resource=principal)
            found = self._principal(req, principal)
            if len({k.lower() for k in (*found.tags, *tagged)}) > cmd.MAX_IAM_TAGS:  # keys are one whatever the case
                raise LimitExceededException(f"Cannot exceed quota for TagsPer{found.kind.capitalize()}: "
                                             f"{cmd.MAX_IAM_TAGS}")
            req.emit([ev.PrincipalTagged(principal, tagged)])
        return self._run(operation, body)

    def untag_principal(self, principal: str, tag_keys: list[str]) -> None:
        """UntagUser / UntagRole (IAM): remove the tags with these keys (any
        case); a key it does not have is no error.

        Raises NotFoundException, AccessDeniedException, ValidationException."""
        operation = _iam_op("Untag{}", principal)

        def body(req: _Request) -> None:
            keys = cmd.check_tag_keys(tag_keys)
            req.authorize(f"iam:{operation}", None, resource=principal)
            self._principal(req, principal)
            req.emit([ev.PrincipalUntagged(principal, keys)])
        return self._run(operation, body)

    def list_principal_tags(self, principal: str) -> r.ListUserTagsResponse:
        """ListUserTags / ListRoleTags (IAM): a user's or role's tags, by key.

        Raises NotFoundException, AccessDeniedException."""
        return self._principal_read("List{}Tags", principal,
                                    lambda found: r.ListUserTagsResponse(_tag_list(found.tags) or []))

    def update_assume_role_policy(self, role_name: str, policy_document: str) -> None:
        """UpdateAssumeRolePolicy (IAM): replace the role's trust policy.
        Sessions already issued keep their credentials until they expire,
        as in AWS.

        Raises NotFoundException, MalformedPolicyDocumentException,
        AccessDeniedException, ValidationException."""
        def body(req: _Request) -> None:
            arn = self._iam_arn("role", role_name)
            _check_trust_policy(req, policy_document)
            req.authorize("iam:UpdateAssumeRolePolicy", None, resource=arn)
            self._named(req, "role", arn)
            req.emit([ev.RoleTrustPolicyUpdated(arn, policy_document)])
        return self._run("UpdateAssumeRolePolicy", body)

    def update_role(self, role_name: str, *, description: str | None = None,
                    max_session_duration: int | None = None) -> None:
        """UpdateRole (IAM): set the role's sessions' longest life
        (3600-43200 seconds; not given, IAM's default of 3600, as AWS
        documents it) and, if given, its description ("" for none).
        Sessions already issued keep their expiry, as in AWS.

        Raises NotFoundException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> None:
            self._update_role(req, "UpdateRole", role_name, description,
                              max_session_duration or DEFAULT_SESSION_SECONDS)
        return self._run("UpdateRole", body)

    def update_role_description(self, role_name: str, description: str) -> r.User:
        """UpdateRoleDescription (IAM): set the role's description (up to
        1000 characters, "" for none); answers the role as it is now.

        Raises NotFoundException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.User:
            found = self._update_role(req, "UpdateRoleDescription", role_name, description, None)
            return self._entity(replace(found, description=description or None))
        return self._run("UpdateRoleDescription", body)

    def _update_role(self, req: _Request, operation: str, role_name: str, description: str | None,
                     max_session_duration: int | None) -> PrincipalState:
        """Check, authorize and record a change to a role; its row as it was."""
        arn = self._iam_arn("role", role_name)
        if description is not None or operation == "UpdateRoleDescription":
            cmd.check_role_description(description)
        if max_session_duration is not None:
            cmd.check_session_duration(max_session_duration, "maxSessionDuration", 3600)
        req.authorize(f"iam:{operation}", None, resource=arn)
        found = self._named(req, "role", arn)
        req.emit([ev.RoleUpdated(arn, description, max_session_duration)])
        return found

    def assume_role(self, role_arn: str, role_session_name: str, *, duration_seconds: int | None = None,
                    external_id: str | None = None) -> r.AssumeRoleResponse:
        """AssumeRole (STS): temporary credentials for a session of the role,
        `arn:aws:sts::<account>:assumed-role/<role>/<session name>`, which acts
        with the role's identity policies and is named by every key policy
        and grant that names the role. The role's trust policy must allow the
        caller `sts:AssumeRole` (naming the caller, or naming the account
        while an identity policy of the caller allows it); the account root
        cannot assume roles, as in AWS. The session lasts `duration_seconds`
        (900 up to the role's maximum, default 3600; a session assuming a
        role gets at most an hour). Its secret and session token are in the
        answer only; the token is sealed under the ledger's root key, so
        every node of a cluster authenticates it and nothing secret is stored.
        A session ends at its expiry, when its role is deleted, or when the
        root key is rotated. `external_id` is the `sts:ExternalId` condition.

        Raises AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.AssumeRoleResponse:
            cmd.check_session_name(role_session_name)
            duration = DEFAULT_SESSION_SECONDS if duration_seconds is None else duration_seconds
            cmd.check_session_duration(duration, "durationSeconds", 900)
            if external_id is not None and not cmd.EXTERNAL_ID.fullmatch(external_id):
                raise ValidationException("1 validation error detected: Value at 'externalId' failed to satisfy "
                                          "constraint: Member must satisfy regular expression pattern: "
                                          f"{cmd.EXTERNAL_ID.pattern}")
            if self._account_root(self.caller):
                raise AccessDeniedException("Roles may not be assumed by root accounts.")
            extra = {"sts:rolesessionname": role_session_name, **({} if external_id is None
                                                                   else {"sts:externalid": external_id})}
            request = authz.Request(self.caller, "sts:AssumeRole", role_arn, req.conditions(None, None, extra))
            role: PrincipalState | None = req.view.get("principals", principal_row(role_arn)) \
                if role_arn.startswith(f"arn:aws:iam::{self.account}:role/") else None
            if role is None or role.kind != "role" or role.trust_policy is None:  # told apart from a refusal by nobody
                raise AccessDeniedException(authz.denial_message(request, authz.Decision(
                    False, "because no resource-based policy allows the sts:AssumeRole action")))
            decision = authz.evaluate(request, key_policy=authz.parse(role.trust_policy, trust=True),
                                      iam_policies=req.iam_policies())
            if not decision.allowed:
                raise AccessDeniedException(authz.denial_message(request, decision))
            if authz.role_of(self.caller) is not None and duration > DEFAULT_SESSION_SECONDS:
                raise ValidationException("The requested DurationSeconds exceeds the 1 hour session limit for "
                                          "roles assumed by role chaining.")
            if duration > (role.max_session_duration or DEFAULT_SESSION_SECONDS):
                raise ValidationException("The requested DurationSeconds exceeds the MaxSessionDuration set for "
                                          "this role.")
            access_key_id = "ASIA" + base64.b32encode(self._rng(10)).decode()
            secret = Secret(base64.b64encode(self._rng(30)))
            expires = (req.now // 1_000_000 + duration) * 1_000_000  # whole seconds: what the answer shows
            claims = _SessionClaims(access_key_id, secret.reveal().decode(), role_arn, role.created,
                                    role_session_name, expires, req.now)
            token = crypto.seal_session_token(self._root, _claims_encoder.encode(claims),
                                              nonce=self._rng(crypto.NONCE_BYTES))
            req.emit([ev.RoleAssumed(role_arn, role_session_name, access_key_id, expires)])
            session = authz.session_arn(role_arn, role_session_name)
            return r.AssumeRoleResponse(
                r.SessionCredentials(access_key_id, secret, Secret(_SESSION_TOKEN_PREFIX +
                                                                   base64.b64encode(token)), from_us(expires)),
                r.AssumedRoleUser(authz.user_id(session, self.account, _principal_id(role)), session))
        return self._run("AssumeRole", body)

    def get_caller_identity(self) -> r.CallerIdentity:
        """GetCallerIdentity (STS): the caller's account, ARN and unique id
        (the account id for the root; `AROA...:<session name>` for a
        session). It needs no permission, as in AWS (not even an explicit
        deny stops it), and is recorded like every request."""
        def body(req: _Request) -> r.CallerIdentity:
            account = authz.account_of(self.caller) or self.account
            req.emit([ev.MetadataRead("GetCallerIdentity")])
            return r.CallerIdentity(authz.user_id(self.caller, account, req.identity()[2]), account, self.caller)
        return self._run("GetCallerIdentity", body)

    def session_credentials(self, access_key_id: str, session_token: str,
                            ) -> tuple[str, Secret, int, int | None] | None:
        """(session principal, secret, expiry, issue time), the times in
        microseconds since the epoch (the issue time None for a token made
        before tokens held it), of temporary credentials `assume_role` issued, whose role still
        exists (the same role: one deleted and made again is another), or
        None. ExpiredTokenException once the session has ended. What the
        HTTP server's SigV4 check asks for a request carrying
        `X-Amz-Security-Token`; not an operation (nothing is recorded: the
        signed request is)."""
        if not session_token.startswith(_SESSION_TOKEN_PREFIX.decode()) or len(session_token) > 4096:
            return None
        try:
            sealed = base64.b64decode(session_token[len(_SESSION_TOKEN_PREFIX):], validate=True)
        except (ValueError, binascii.Error):
            return None
        with self.store.snapshot() as snap:
            # under the root key of now: a rotation by another process on this home ends every session
            self.store.follow_root(snap.meta_value("root_check"))
            opened = crypto.open_session_token(self._root, sealed)
            if opened is None:
                return None
            claims = _claims_decoder.decode(opened)
            if claims.access_key_id != access_key_id:
                return None
            if claims.expires <= self.now():
                raise ExpiredTokenException("The security token included in the request is expired")
            role = snap.get("principals", principal_row(claims.role))
        if role is None or role.kind != "role" or role.created != claims.role_created:
            return None
        return authz.session_arn(claims.role, claims.session_name), Secret(claims.secret.encode()), claims.expires, \
            claims.issued

    def as_session(self, access_key_id: str, session_token: str) -> Self:
        """The same ledger acting for the role session these temporary
        credentials (`assume_role`'s) belong to, as the HTTP server acts for
        a request signed with them: its requests carry `aws:TokenIssueTime`,
        which `as_caller` with the session's ARN does not know.

        Raises UnrecognizedClientException (not this ledger's session, or its
        role is gone), ExpiredTokenException."""
        found = self.session_credentials(access_key_id, session_token)
        if found is None:
            raise UnrecognizedClientException("The security token included in the request is invalid.")
        principal, _, _, issued = found
        other = self.as_caller(principal)
        other.token_issued, other.access_key = issued, access_key_id
        return other

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
            unique_id = _principal_id(found)
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
    def _entity(found: PrincipalState, *, with_tags: bool = False) -> r.User:
        """A user or role as IAM answers it, from its row (with its tags, if
        it has any, as GetUser and GetRole show them; ListUsers and ListRoles
        do not)."""
        role = found.kind == "role"
        return r.User(found.principal.split("/", 1)[-1], found.principal, from_us(found.created),
                      user_id=_principal_id(found), assume_role_policy_document=found.trust_policy,
                      max_session_duration=(found.max_session_duration or DEFAULT_SESSION_SECONDS) if role else None,
                      tags=_tag_list(found.tags) if with_tags else None, description=found.description)

    def _principal(self, req: _Request, principal: str) -> Any:
        """A user's or role's row (the account root's row holds only its access keys)."""
        found = req.view.get("principals", principal_row(principal))
        if found is None or found.kind == "root":
            raise NotFoundException(f"The principal {principal} cannot be found.")
        return found

    def put_principal_policy(self, principal: str, policy_name: str, policy_document: str) -> None:
        """Attach (or replace) a named identity-based policy (`keyledger iam attach-policy`)."""
        operation = _iam_op("Put{}Policy", principal)

        def body(req: _Request) -> None:
            cmd.check_iam_name(policy_name)
            authz.parse(policy_document, key_policy=False)
            req.authorize(f"iam:{operation}", None, resource=principal)
            self._principal(req, principal)
            req.emit([ev.PrincipalPolicyPut(principal, policy_name, policy_document)])
        return self._run(operation, body)

    def delete_principal_policy(self, principal: str, policy_name: str) -> None:
        """Detach a named identity-based policy (`keyledger iam detach-policy`)."""
        operation = _iam_op("Delete{}Policy", principal)

        def body(req: _Request) -> None:
            req.authorize(f"iam:{operation}", None, resource=principal)
            found = self._principal(req, principal)
            if policy_name not in found.policies:
                raise NotFoundException(f"The policy {policy_name} of {principal} cannot be found.")
            req.emit([ev.PrincipalPolicyDeleted(principal, policy_name)])
        return self._run(operation, body)

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
                user = self._entity(self._named(req, "user", principal), with_tags=True)
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
            role = self._entity(self._named(req, "role", arn), with_tags=True)
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
        return self._principal_read("List{}Policies", principal,
                                    lambda found: r.ListUserPoliciesResponse(sorted(found.policies)))

    def get_principal_policy(self, principal: str, policy_name: str) -> r.GetUserPolicyResponse:
        """GetUserPolicy (IAM): one inline identity policy of a user or role, by name.

        Raises NotFoundException, AccessDeniedException."""
        def answer(found: PrincipalState) -> r.GetUserPolicyResponse:
            if policy_name not in found.policies:
                raise NotFoundException(f"The policy {policy_name} of {principal} cannot be found.")
            return r.GetUserPolicyResponse(principal.split("/", 1)[-1], policy_name, found.policies[policy_name])
        return self._principal_read("Get{}Policy", principal, answer)

    def _principal_read(self, name: str, principal: str, answer: Callable[[PrincipalState], T]) -> T:
        """An IAM read of one user or role (`name` as `_iam_op` takes it):
        authorized on the principal, which must exist, and recorded as a
        MetadataRead once `answer` has its answer."""
        operation = _iam_op(name, principal)

        def body(req: _Request) -> T:
            req.authorize(f"iam:{operation}", None, resource=principal)
            out = answer(self._principal(req, principal))
            req.emit([ev.MetadataRead(operation)])
            return out
        return self._run(operation, body)

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
            with self._cache_lock:
                cached = self._keks.get(name)
            if cached is None or cached[0] != wrapped:  # not unwrapped yet: under the root key it was written
                self.store.follow_root(snap.meta_value("root_check"))  # under (another process may rotate it)
            holder = self._holders.get(access_key_id)
            state = None if holder is None else snap.get("principals", principal_row(holder))
            if state is None or access_key_id not in state.held_keys:
                # ids are never issued twice, so the holder found once stays the holder
                state = next((p for _, p in snap.scan("principals") if access_key_id in p.held_keys), None)
                if state is None:
                    return None
                self._holders[access_key_id] = state.principal
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

    def get_access_key_last_used(self, access_key_id: str) -> r.GetAccessKeyLastUsedResponse:
        """GetAccessKeyLastUsed (IAM): when the access key last signed a
        request, for which service (kms, iam, sts, ssm) and in which region,
        read from the log, where every record of a signed request names the
        key that signed it. A key that never signed one answers "N/A" and no
        date. Needs iam:GetAccessKeyLastUsed on the key's user (or root). A
        key id this account never issued is refused like a key the caller
        may not read (IAM's model lists no NoSuchEntity here, and an answer
        that told them apart would let anyone probe for key ids).

        Raises AccessDeniedException."""
        def body(req: _Request) -> r.GetAccessKeyLastUsedResponse:
            owner = next((p for _, p in req.view.scan("principals") if access_key_id in p.access_keys), None)
            if owner is None:
                raise AccessDeniedException(f"User: {self.caller} is not authorized to perform: "
                                            f"iam:GetAccessKeyLastUsed on resource: access key {access_key_id[:128]}")
            req.authorize("iam:GetAccessKeyLastUsed", None, resource=owner.principal)
            last = _last_signed(req, owner.principal, access_key_id)
            req.emit([ev.MetadataRead("GetAccessKeyLastUsed")])
            user_name = None if self._account_root(owner.principal) else owner.principal.split("/", 1)[-1]
            if last is None:
                return r.GetAccessKeyLastUsedResponse(user_name, r.AccessKeyLastUsed("N/A", "N/A"))
            service = cloudtrail.event_source(last.operation).split(".", 1)[0]
            return r.GetAccessKeyLastUsedResponse(user_name, r.AccessKeyLastUsed(
                service, last.scope or self.home_region, from_us(last.time)))
        return self._run("GetAccessKeyLastUsed", body)

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

