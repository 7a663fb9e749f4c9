"""The parameter store: SSM Parameter Store's operations, in the same log.

`kms.parameters` (a `ParameterStore`) has one method per SSM operation
(PutParameter, GetParameter, GetParameters, GetParametersByPath,
DeleteParameter, DeleteParameters, GetParameterHistory,
LabelParameterVersion, UnlabelParameterVersion, DescribeParameters, and the
tags of parameters: AddTagsToResource, ListTagsForResource,
RemoveTagsFromResource). Each call is one request of the
ledger's write path, authorized as SSM authorizes it: the caller's IAM
policies must allow the `ssm:<Operation>` action on the parameter's ARN
(`arn:aws:ssm:<region>:<account>:parameter/<name without its leading
slash>`; the account root always may).

A SecureString value is encrypted by the ledger's own Encrypt under the
parameter's key (the AWS managed key `alias/aws/ssm` unless `key_id` names
another), with SSM's encryption context `{"PARAMETER_ARN": <arn>}`, and
decrypted the same way WithDecryption. Those KMS calls are made as SSM
makes them: for the caller, through the service (`kms:ViaService` =
`ssm.<region>.amazonaws.com`), so the key's policy and grants decide as for
any Decrypt, and each is its own `Encrypted`/`Decrypted` record (with
`via_service`) in the same request, before the parameter's record. A
refused KMS call is a `RequestDenied` record of its own, and SSM answers
with AWS's wrapping of the KMS error (`InvalidKeyId`, or
`AccessDeniedException` for a denial). Only the ciphertext is stored;
String and StringList values are stored as given, as SSM stores them.

Parameters are regional, as SSM's are: a parameter belongs to the request's
region (`kms.in_region(r).parameters`, the server's SigV4 scope, the CLI's
--region); its row is scoped like a key's (`projections.parameter_row`:
the initial region's rows keep their names, another region's are prefixed
`~<region>/`), so one name can hold a parameter in each region. Paging
tokens hold a parameter name, never a row.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from keyledger import commands as cmd
from keyledger import events as ev
from keyledger import parameters as ps
from keyledger.errors import AccessDeniedException, InvalidKeyUsageException, KMSError, ValidationException
from keyledger.parameters import (
    AddTagsToResourceResult,
    DeleteParameterResult,
    DeleteParametersResult,
    DescribeParametersResult,
    GetParameterHistoryResult,
    GetParameterResult,
    GetParametersByPathResult,
    GetParametersResult,
    LabelParameterVersionResult,
    ListTagsForResourceResult,
    Parameter,
    ParameterHistory,
    ParameterMetadata,
    PutParameterResult,
    RemoveTagsFromResourceResult,
    Tag,
    UnlabelParameterVersionResult,
)
from keyledger.projections import in_scope, parameter_row, scope_prefix
from keyledger.projections.state import ParameterState, ParameterVersion
from keyledger.service import managed
from keyledger.events import from_us
from keyledger.service.request import _digest, _Request

if TYPE_CHECKING:
    from keyledger.service.base import ServiceBase


def parameter_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"


def encryption_context(arn: str) -> dict[str, str]:
    """SSM's encryption context for a SecureString value."""
    return {"PARAMETER_ARN": arn}


def _wrapped(exc: KMSError, request_id: str) -> KMSError:
    """A KMS error as SSM passes it on: AccessDeniedException stays one,
    anything else is InvalidKeyId; the message names the KMS error."""
    detail = (f"{exc.message} (Service: AWSKMS; Status Code: {exc.http_status}; Error Code: {exc.code}; "
              f"Request ID: {request_id}; Proxy: null)").lstrip()
    if isinstance(exc, AccessDeniedException):
        return AccessDeniedException(detail)
    return ps.InvalidKeyId(detail)


class ParameterStore:
    """SSM Parameter Store semantics on the ledger: `kms.parameters`.

    Methods are snake_case SSM operations with SSM's member names
    (`put_parameter(name, value, type="SecureString", key_id=...)`); results
    are typed structs shaped like SSM's responses."""

    def __init__(self, kms: "ServiceBase") -> None:
        self._kms = kms

    def __repr__(self) -> str:
        return f"ParameterStore({self._kms!r})"

    # -- helpers inside a request ------------------------------------------------

    def _arn(self, name: str) -> str:
        return parameter_arn(self._kms.region, self._kms.account, name)

    def _via(self) -> str:
        return managed.via_service("ssm", self._kms.region)

    def _kms_request(self, req: _Request, operation: str) -> _Request:
        """The KMS call SSM makes inside this request: same caller, same
        transaction and request id, through the service (kms:ViaService)."""
        return _Request(req.svc.via_service(self._via()), req.view, operation, req.now, req.request_id)

    def _authorize(self, req: _Request, action: str, name: str | None) -> None:
        req.authorize(f"ssm:{action}", None, resource=self._arn(name) if name is not None else "*")

    def _encrypt(self, req: _Request, name: str, key_input: str, value: str) -> tuple[str, bytes]:
        """(key id, ciphertext) of a SecureString value: the ledger's Encrypt."""
        k = self._kms_request(req, "Encrypt")
        arn = self._arn(name)
        context = encryption_context(arn)
        try:
            if managed.service_of_alias(key_input) == "ssm":
                managed.create_in(k, "ssm")  # the AWS managed key is made on SSM's first use
            state = k.key(key_input)
            k.authorize("kms:Encrypt", state, encryption_context=context,
                        extra={"kms:encryptionalgorithm": cmd.SYMMETRIC_DEFAULT})
            cmd.require_enabled(state, k.arn(state.key_id))
            if state.key_spec != cmd.SYMMETRIC_DEFAULT or state.key_usage != cmd.ENCRYPT_DECRYPT:
                raise InvalidKeyUsageException(f"{k.arn(state.key_id)} key usage is {state.key_usage} "
                                               "which is not valid for Encrypt.")
            blob, version = k.seal(state, value.encode("utf-8"), context)
        except KMSError as exc:
            k.emit([ev.RequestDenied("Encrypt", exc.code, exc.message, k.key_hint)])
            raise _wrapped(exc, req.request_id) from None
        k.emit([ev.Encrypted(state.key_id, version, context, _digest(blob), via_service=self._via())])
        return state.key_id, blob

    def _decrypt(self, req: _Request, name: str, blob: bytes) -> str:
        k = self._kms_request(req, "Decrypt")
        context = encryption_context(self._arn(name))
        try:
            state, version, plaintext = k.open(blob, context, None)
        except KMSError as exc:
            k.emit([ev.RequestDenied("Decrypt", exc.code, exc.message, k.key_hint)])
            raise _wrapped(exc, req.request_id) from None
        k.emit([ev.Decrypted(state.key_id, version, context, _digest(blob), via_service=self._via())])
        return plaintext.decode("utf-8")

    def _value(self, req: _Request, name: str, v: ParameterVersion, decrypt: bool) -> str:
        if v.ciphertext is None:
            return v.value or ""
        if decrypt:
            return self._decrypt(req, name, v.ciphertext)
        return base64.b64encode(v.ciphertext).decode()  # as SSM answers without decryption

    def _parameter(self, req: _Request, state: ParameterState, v: ParameterVersion, decrypt: bool,
                   selector: str | None = None, shown: str | None = None) -> Parameter:
        """`shown`: the name as asked for (AWS answers `/x` for `x` asked as `/x`)."""
        return Parameter(shown or state.name, v.parameter_type, self._value(req, state.name, v, decrypt), v.version,
                         from_us(v.modified), self._arn(state.name), v.data_type,
                         f":{selector}" if selector is not None else None)

    def _state(self, req: _Request, name: str) -> ParameterState | None:
        """The parameter `name` names, by either spelling of a root-level
        name (`x`, `/x`); events name it by its `state.name`."""
        found: ParameterState | None = req.view.get("parameters", parameter_row(name, req.scope))
        other = ps.root_alias(name) if found is None else None
        if other is not None:
            found = req.view.get("parameters", parameter_row(other, req.scope))
        return found

    def _named(self, given: str) -> str:
        """GetParameter(s) and GetParameterHistory take a parameter's ARN
        for its name (a root-level name comes back without its slash, as
        AWS answers); another account's or region's ARN names nothing here."""
        if not isinstance(given, str) or not given.startswith("arn:"):
            return given
        prefix = self._arn("")
        if not given.startswith(prefix) or len(given) == len(prefix):
            raise ps.ParameterNotFound("")
        rest = given[len(prefix):]
        return rest if "/" not in rest.split(":", 1)[0] else "/" + rest

    def _existing(self, req: _Request, name: str,
                  missing: type[KMSError] = ps.ParameterNotFound) -> ParameterState:
        """The parameter, or `missing` (SSM's tag operations name the
        resource, not the parameter: InvalidResourceId)."""
        state = self._state(req, name)
        if state is None:
            raise missing("")
        return state

    def _run(self, operation: str, body: Any) -> Any:
        return self._kms._run(operation, body)

    # -- operations ----------------------------------------------------------------

    def put_parameter(self, name: str, value: str, *, type: str | None = None, key_id: str | None = None,
                      overwrite: bool | None = None, description: str | None = None,
                      allowed_pattern: str | None = None, tags: list[dict[str, str]] | None = None,
                      tier: str | None = None, policies: str | None = None,
                      data_type: str | None = None) -> PutParameterResult:
        """PutParameter: create a parameter (version 1) or, with `overwrite`,
        add its next version. `type` is String, StringList or SecureString
        (required to create; an overwrite keeps the type unless given). A
        SecureString is encrypted under `key_id` (default the AWS managed key
        alias/aws/ssm, made on first use) by the ledger's Encrypt; only the
        ciphertext is stored. Past 100 versions the oldest is dropped.

        Raises ValidationException, ParameterAlreadyExists, InvalidKeyId,
        HierarchyLevelLimitExceededException, ParameterMaxVersionLimitExceeded,
        InvalidAllowedPatternException, AccessDeniedException."""
        def body(req: _Request) -> PutParameterResult:
            checked = ps.check_name(name, creating=True)
            if type is not None:
                ps.check_enum("type", type, ("SecureString", "StringList", "String"))
            if tier is not None:
                ps.check_enum("tier", tier, ps.TIERS)
                if tier == "Advanced":
                    raise ValidationException("keyledger's parameter store has the Standard tier only: Advanced "
                                              "parameters (8 KB values, parameter policies) are not supported.")
            if policies is not None:
                raise ValidationException("Parameter policies need the Advanced tier, which keyledger's parameter "
                                          "store does not have.")
            if data_type is not None and data_type != "text":
                if data_type in ("aws:ec2:image", "aws:ssm:integration"):
                    raise ValidationException(f"keyledger's parameter store does not support the data type "
                                              f"{data_type}.")
                raise ValidationException(f"The following data type is not supported: {data_type[:128]} (Data "
                                          "type names are all lowercase.)")
            if description is not None and len(description) > ps.MAX_DESCRIPTION:
                raise ps._length_error("description", ps.MAX_DESCRIPTION)
            if allowed_pattern is not None:
                ps.compile_pattern(allowed_pattern)
            if overwrite and tags:
                raise ValidationException(
                    "Invalid request: tags and overwrite can't be used together. To create a parameter with tags, "
                    "please remove overwrite flag. To update tags for an existing parameter, please use "
                    "AddTagsToResource or RemoveTagsFromResource.")
            tag_map = ps.check_tags(tags)
            if len(tag_map) > ps.MAX_TAGS:
                raise ValidationException(f"A parameter can have at most {ps.MAX_TAGS} tags.")
            self._authorize(req, "PutParameter", checked)
            if tag_map:  # as in SSM: creating a parameter with tags needs the tagging permission too
                self._authorize(req, "AddTagsToResource", checked)
            state = self._state(req, checked)
            checked = state.name if state is not None else checked  # `/x` overwrites `x`
            previous = state.current if state is not None else None
            if previous is not None and not overwrite:
                raise ps.ParameterAlreadyExists(ps.ALREADY_EXISTS)
            kind = type or (previous.parameter_type if previous is not None else None)
            if kind is None:
                raise ValidationException("A parameter type is required when you create a parameter.")
            if key_id is not None and kind != "SecureString":
                raise ValidationException("KeyId is required for SecureString type parameter only.")
            pattern = allowed_pattern if allowed_pattern is not None else \
                (previous.allowed_pattern if previous is not None else "")
            ps.check_value(value, pattern)
            if state is not None and len(state.versions) >= ps.MAX_VERSIONS and state.versions[0].labels:
                oldest = state.versions[0].version
                raise ps.ParameterMaxVersionLimitExceeded(
                    f"You attempted to create a new version of {checked} by calling the PutParameter API with "
                    f"the overwrite flag. Version {oldest}, the oldest version, can't be deleted because it has "
                    "a label associated with it. Move the label to another version of the parameter, and try "
                    "again.")
            version = previous.version + 1 if previous is not None else 1
            desc = description if description is not None else (previous.description if previous else "")
            plain: str | None = value
            blob = resolved = requested = None
            if kind == "SecureString":
                requested = key_id or (previous.key_id if previous is not None and previous.key_id else
                                       ps.DEFAULT_KEY)
                resolved, blob = self._encrypt(req, checked, requested, value)
                plain = None
            req.emit([ev.ParameterPut(checked, version, kind, plain, blob, resolved, requested, desc, pattern,
                                      "Standard", "text", tag_map)])
            return PutParameterResult(version, "Standard")
        result: PutParameterResult = self._run("PutParameter", body)
        return result

    def get_parameter(self, name: str, *, with_decryption: bool | None = None) -> GetParameterResult:
        """GetParameter: a parameter's latest version, or the one `name:3`
        (a version) or `name:label` selects. WithDecryption, a SecureString
        is decrypted by the ledger's Decrypt for the caller through SSM (so
        the caller needs ssm:GetParameter and kms:Decrypt on its key);
        without, its Value is the base64 ciphertext, as SSM answers.

        Raises ParameterNotFound, ParameterVersionNotFound, InvalidKeyId,
        ValidationException, AccessDeniedException."""
        def body(req: _Request) -> GetParameterResult:
            base, selector = ps.split_selector(self._named(name))
            checked = ps.check_name(base)
            self._authorize(req, "GetParameter", checked)
            state = self._existing(req, checked)
            v = ps.select(state, selector)
            parameter = self._parameter(req, state, v, bool(with_decryption), selector, shown=checked)
            req.emit([ev.ParametersRead("GetParameter", [checked])])
            return GetParameterResult(parameter)
        result: GetParameterResult = self._run("GetParameter", body)
        return result

    def get_parameters(self, names: list[str], *, with_decryption: bool | None = None) -> GetParametersResult:
        """GetParameters: up to 10 parameters (selectors allowed); the names
        not found (or whose version or label is not) come back as
        InvalidParameters.

        Raises InvalidKeyId, ValidationException, AccessDeniedException."""
        def body(req: _Request) -> GetParametersResult:
            found, invalid, read = [], [], []
            for given in dict.fromkeys(ps.check_names(names)):
                try:
                    base, selector = ps.split_selector(self._named(given))
                    checked = ps.check_name(base)
                except (ValidationException, ps.ParameterNotFound):
                    invalid.append(given)
                    continue
                self._authorize(req, "GetParameters", checked)
                state = self._state(req, checked)
                try:
                    v = ps.select(state, selector) if state is not None else None
                except ps.ParameterVersionNotFound:
                    v = None
                if state is None or v is None:
                    invalid.append(given)
                    continue
                found.append(self._parameter(req, state, v, bool(with_decryption), selector, shown=checked))
                read.append(checked)
            req.emit([ev.ParametersRead("GetParameters", read)])
            return GetParametersResult(found, invalid)
        result: GetParametersResult = self._run("GetParameters", body)
        return result

    def get_parameters_by_path(self, path: str, *, recursive: bool | None = None,
                               parameter_filters: list[dict[str, Any]] | None = None,
                               with_decryption: bool | None = None, max_results: int | None = None,
                               next_token: str | None = None) -> GetParametersByPathResult:
        """GetParametersByPath: the parameters under a hierarchy path
        (`/app/prod`), one level down unless `recursive`, in name order, at
        most `max_results` (1-10, default 10) per page; `next_token` pages on.
        ParameterFilters may narrow by Type, KeyId, Label or tag:<key>.

        Raises ValidationException, InvalidFilterKey, InvalidFilterOption,
        InvalidFilterValue, InvalidNextToken, InvalidKeyId, AccessDeniedException."""
        def body(req: _Request) -> GetParametersByPathResult:
            prefix = ps.check_path(path)
            limit = ps.check_max_results(max_results, 10, 10)
            filters = ps.check_parameter_filters(parameter_filters, by_path=True)
            after = ps.read_token(next_token)
            self._authorize(req, "GetParametersByPath", prefix.rstrip("/") or "/")
            found: list[Parameter] = []
            token = None
            # the request region's rows only (tokens hold a parameter name, rows are region-scoped)
            prefix_row = parameter_row(prefix, req.scope)
            position = parameter_row(after, req.scope) if after is not None else None
            while len(found) < limit:
                rows = req.view.scan("parameters", prefix=prefix_row, after=position, limit=64)
                if not rows:
                    break
                for row, state in rows:
                    position = row
                    if not recursive and "/" in state.name[len(prefix):]:
                        continue
                    if not ps.matches(state, filters):
                        continue
                    found.append(self._parameter(req, state, state.current, bool(with_decryption)))
                    if len(found) == limit:
                        break
            if len(found) == limit and position is not None and \
                    req.view.scan("parameters", prefix=prefix_row, after=position, limit=1):
                token = ps.next_token(position[len(scope_prefix(req.scope)):].decode())
            req.emit([ev.ParametersRead("GetParametersByPath", [p.name for p in found])])
            return GetParametersByPathResult(found, token)
        result: GetParametersByPathResult = self._run("GetParametersByPath", body)
        return result

    def delete_parameter(self, name: str) -> DeleteParameterResult:
        """DeleteParameter: the parameter and all its versions (its records
        stay in the log; a SecureString's ciphertexts go with its row).

        Raises ParameterNotFound, ValidationException, AccessDeniedException."""
        def body(req: _Request) -> DeleteParameterResult:
            checked = ps.check_name(name)
            self._authorize(req, "DeleteParameter", checked)
            req.emit([ev.ParameterDeleted(self._existing(req, checked).name)])
            return DeleteParameterResult()
        result: DeleteParameterResult = self._run("DeleteParameter", body)
        return result

    def delete_parameters(self, names: list[str]) -> DeleteParametersResult:
        """DeleteParameters: up to 10 parameters; names not found come back
        as InvalidParameters.

        Raises ValidationException, AccessDeniedException."""
        def body(req: _Request) -> DeleteParametersResult:
            deleted, invalid = [], []
            for given in dict.fromkeys(ps.check_names(names)):
                try:
                    checked = ps.check_name(given)
                except ValidationException:
                    invalid.append(given)
                    continue
                self._authorize(req, "DeleteParameters", checked)
                state = self._state(req, checked)
                if state is None:
                    invalid.append(given)
                    continue
                req.emit([ev.ParameterDeleted(state.name)])
                deleted.append(given)
            if not deleted:
                req.emit([ev.ParametersRead("DeleteParameters")])
            return DeleteParametersResult(deleted, invalid)
        result: DeleteParametersResult = self._run("DeleteParameters", body)
        return result

    def get_parameter_history(self, name: str, *, with_decryption: bool | None = None,
                              max_results: int | None = None,
                              next_token: str | None = None) -> GetParameterHistoryResult:
        """GetParameterHistory: every kept version, oldest first, with its
        labels, key, description and who changed it; at most `max_results`
        (1-50, default 50) per page.

        Raises ParameterNotFound, InvalidNextToken, InvalidKeyId, ValidationException,
        AccessDeniedException."""
        def body(req: _Request) -> GetParameterHistoryResult:
            checked = ps.check_name(self._named(name))
            limit = ps.check_max_results(max_results, 50, 50)
            after = ps.read_token(next_token)
            if after is not None and not after.startswith("#"):
                raise ps.InvalidNextToken("The specified token isn't valid.")
            self._authorize(req, "GetParameterHistory", checked)
            state = self._existing(req, checked)
            start = int(after[1:]) if after is not None and after[1:].isdigit() else 0
            versions = [v for v in state.versions if v.version > start]
            page = versions[:limit]
            out = [ParameterHistory(state.name, v.parameter_type, from_us(v.modified), v.modified_by,
                                    self._value(req, state.name, v, bool(with_decryption)), v.version, v.key_id,
                                    v.description or None, v.allowed_pattern or None, list(v.labels), v.tier,
                                    [], v.data_type)
                   for v in page]
            token = ps.next_token(f"#{page[-1].version}") if len(versions) > limit else None
            req.emit([ev.ParametersRead("GetParameterHistory", [checked])])
            return GetParameterHistoryResult(out, token)
        result: GetParameterHistoryResult = self._run("GetParameterHistory", body)
        return result

    def label_parameter_version(self, name: str, labels: list[str], *,
                                parameter_version: int | None = None) -> LabelParameterVersionResult:
        """LabelParameterVersion: attach labels (1-10) to a version (default
        the latest), moving each from any other version that has it. Labels
        that break SSM's rules (a leading digit, `aws`/`ssm` prefixes, other
        characters) are returned as InvalidLabels, not applied.

        Raises ParameterNotFound, ParameterVersionNotFound,
        ParameterVersionLabelLimitExceeded, ValidationException, AccessDeniedException."""
        def body(req: _Request) -> LabelParameterVersionResult:
            checked = ps.check_name(name)
            _check_labels(labels)
            self._authorize(req, "LabelParameterVersion", checked)
            state = self._existing(req, checked)
            if parameter_version is None:
                target = state.current
            else:
                found = state.version(parameter_version)
                if found is None:
                    raise ps.ParameterVersionNotFound(
                        f"Systems Manager could not find version {parameter_version} of {checked}. Verify the "
                        "version and try again.")
                target = found
            good = [label for label in dict.fromkeys(labels) if ps.valid_label(label)]
            invalid = [label for label in labels if not ps.valid_label(label)]
            if len(set(target.labels) | set(good)) > ps.MAX_LABELS:
                raise ps.ParameterVersionLabelLimitExceeded(
                    "A parameter version can have maximum 10 labels.Move one or more labels to another version "
                    "and try again.")
            req.emit([ev.ParameterLabeled(state.name, target.version, good)])
            return LabelParameterVersionResult(invalid, target.version)
        result: LabelParameterVersionResult = self._run("LabelParameterVersion", body)
        return result

    def unlabel_parameter_version(self, name: str, parameter_version: int,
                                  labels: list[str]) -> UnlabelParameterVersionResult:
        """UnlabelParameterVersion: take labels (1-10) off one version. The
        labels the version had come back as RemovedLabels, the others as
        InvalidLabels; neither is an error.

        Raises ParameterNotFound, ParameterVersionNotFound, ValidationException,
        AccessDeniedException."""
        def body(req: _Request) -> UnlabelParameterVersionResult:
            checked = ps.check_name(name)
            if not isinstance(parameter_version, int) or isinstance(parameter_version, bool):
                raise ValidationException("1 validation error detected: Value 'null' at 'parameterVersion' "
                                          "failed to satisfy constraint: Member must not be null")
            _check_labels(labels)
            self._authorize(req, "UnlabelParameterVersion", checked)
            state = self._existing(req, checked)
            target = state.version(parameter_version)
            if target is None:
                raise ps.ParameterVersionNotFound(
                    f"Systems Manager could not find version {parameter_version} of {checked}. Verify the "
                    "version and try again.")
            asked = list(dict.fromkeys(labels))
            removed = [label for label in asked if label in target.labels]
            req.emit([ev.ParameterUnlabeled(state.name, target.version, removed)])
            return UnlabelParameterVersionResult(removed, [label for label in asked if label not in removed])
        result: UnlabelParameterVersionResult = self._run("UnlabelParameterVersion", body)
        return result

    def add_tags_to_resource(self, resource_type: str, resource_id: str,
                             tags: list[dict[str, str]]) -> AddTagsToResourceResult:
        """AddTagsToResource of a parameter (`resource_type` "Parameter",
        `resource_id` its name): add or overwrite tags, at most 50 in all.

        Raises InvalidResourceType, InvalidResourceId, TooManyTagsError,
        ValidationException, AccessDeniedException."""
        def body(req: _Request) -> AddTagsToResourceResult:
            checked = ps.check_resource(resource_type, resource_id)
            if not isinstance(tags, list) or not tags:
                raise ps._length_error("tags", 1, at_least=True)
            added = ps.check_tags(tags)
            self._authorize(req, "AddTagsToResource", checked)
            state = self._existing(req, checked, ps.InvalidResourceId)
            if len({**state.tags, **added}) > ps.MAX_TAGS:
                raise ps.TooManyTagsError(f"A parameter can have at most {ps.MAX_TAGS} tags.")
            req.emit([ev.ParameterTagged(state.name, added)])
            return AddTagsToResourceResult()
        result: AddTagsToResourceResult = self._run("AddTagsToResource", body)
        return result

    def list_tags_for_resource(self, resource_type: str, resource_id: str) -> ListTagsForResourceResult:
        """ListTagsForResource of a parameter: its tags, by key.

        Raises InvalidResourceType, InvalidResourceId, ValidationException,
        AccessDeniedException."""
        def body(req: _Request) -> ListTagsForResourceResult:
            checked = ps.check_resource(resource_type, resource_id)
            self._authorize(req, "ListTagsForResource", checked)
            state = self._existing(req, checked, ps.InvalidResourceId)
            req.emit([ev.ParametersRead("ListTagsForResource", [state.name])])
            return ListTagsForResourceResult([Tag(k, v) for k, v in sorted(state.tags.items())])
        result: ListTagsForResourceResult = self._run("ListTagsForResource", body)
        return result

    def remove_tags_from_resource(self, resource_type: str, resource_id: str,
                                  tag_keys: list[str]) -> RemoveTagsFromResourceResult:
        """RemoveTagsFromResource of a parameter: keys it does not have are
        ignored, as SSM ignores them.

        Raises InvalidResourceType, InvalidResourceId, ValidationException,
        AccessDeniedException."""
        def body(req: _Request) -> RemoveTagsFromResourceResult:
            checked = ps.check_resource(resource_type, resource_id)
            if not isinstance(tag_keys, list):
                raise ps._length_error("tagKeys", 1, at_least=True)
            keys = [ps.check_tag_key(k, "tagKeys.member") for k in tag_keys]
            self._authorize(req, "RemoveTagsFromResource", checked)
            state = self._existing(req, checked, ps.InvalidResourceId)
            req.emit([ev.ParameterUntagged(state.name, [k for k in dict.fromkeys(keys) if k in state.tags])])
            return RemoveTagsFromResourceResult()
        result: RemoveTagsFromResourceResult = self._run("RemoveTagsFromResource", body)
        return result

    def describe_parameters(self, *, filters: list[dict[str, Any]] | None = None,
                            parameter_filters: list[dict[str, Any]] | None = None,
                            max_results: int | None = None, next_token: str | None = None,
                            shared: bool | None = None) -> DescribeParametersResult:
        """DescribeParameters: the parameters' metadata (never a value), in
        name order, at most `max_results` (1-50, default 10) per page.
        `filters` (Name, Type, KeyId) or `parameter_filters` (Name, Path,
        Type, KeyId, Tier, DataType, tag:<key>), not both.

        Raises ValidationException, InvalidFilterKey, InvalidFilterOption,
        InvalidFilterValue, InvalidNextToken, AccessDeniedException."""
        def body(req: _Request) -> DescribeParametersResult:
            if filters and parameter_filters:
                raise ValidationException("You can use either Filters or ParameterFilters in a single request.")
            if shared:
                raise ValidationException("keyledger's parameter store has no shared parameters.")
            checks = ps.legacy_filters(filters) if filters else \
                ps.check_parameter_filters(parameter_filters, by_path=False)
            limit = ps.check_max_results(max_results, 50, 10)
            after = ps.read_token(next_token)
            self._authorize(req, "DescribeParameters", None)
            out: list[ParameterMetadata] = []
            position = parameter_row(after, req.scope) if after is not None else None
            more = False
            # the request region's rows only: one prefix outside the initial region; in it, every row
            # before the first "~<region>/" one
            while True:
                rows = req.view.scan("parameters", prefix=scope_prefix(req.scope), after=position, limit=64)
                rows = [(row, state) for row, state in rows if in_scope(row, req.scope)]
                if not rows:
                    break
                for row, state in rows:
                    if len(out) == limit:
                        more = True
                        break
                    position = row
                    if ps.matches(state, checks):
                        v = state.current
                        out.append(ParameterMetadata(state.name, self._arn(state.name), v.parameter_type, v.key_id,
                                                     from_us(v.modified), v.modified_by, v.description or None,
                                                     v.allowed_pattern or None, v.version, v.tier, [],
                                                     v.data_type))
                if more:
                    break
            token = ps.next_token(position[len(scope_prefix(req.scope)):].decode()) \
                if more and position is not None else None
            req.emit([ev.ParametersRead("DescribeParameters", [m.name for m in out])])
            return DescribeParametersResult(out, token)
        result: DescribeParametersResult = self._run("DescribeParameters", body)
        return result


def _check_labels(labels: Any) -> None:
    """LabelParameterVersion's and UnlabelParameterVersion's Labels: 1-10, each 1-100 characters."""
    if not isinstance(labels, list) or not labels:
        raise ps._length_error("labels", 1, at_least=True)
    if len(labels) > ps.MAX_LABELS:
        raise ps._length_error("labels", ps.MAX_LABELS)
    for label in labels:
        if not isinstance(label, str) or not 1 <= len(label) <= 100:
            raise ValidationException(
                "1 validation error detected: Value at 'labels' failed to satisfy constraint: Member "
                "must satisfy constraint: [Member must have length less than or equal to 100, Member "
                "must have length greater than or equal to 1]")


class ParameterOps:
    """Mixed into KeyLedger: `kms.parameters`."""

    @property
    def parameters(self) -> ParameterStore:
        """The parameter store (SSM Parameter Store semantics) in this
        ledger's log, acting for this handle's caller."""
        return ParameterStore(self)  # type: ignore[arg-type]


__all__ = ["ParameterStore", "ParameterOps", "parameter_arn", "encryption_context"]
