"""The parameter store's rules (SSM Parameter Store semantics), without IO.

Names, labels, values, filters and paging tokens are checked here with
SSM's limits and in SSM's words; the service (`keyledger.service.parameters`)
runs them inside one write transaction. Also here: SSM's error names (each
a `KMSError`, so the CLI and the server answer them like any other) and the
typed responses, shaped like SSM's (`to_builtins` gives the wire JSON).

Limits as SSM has them: a name is at most 1,011 characters of
`a-zA-Z0-9_.-` and `/`, a hierarchy at most 15 levels, names (and labels)
may not begin with `aws` or `ssm` (any case); a Standard-tier value is at
most 4,096 characters; 100 versions per parameter (the oldest is dropped,
unless it is labeled); 10 labels per version; 50 tags per parameter (keys
of 1-128 and values of up to 256 letters, digits, spaces and `_.:/=+-@`,
no key beginning `aws:`).
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from datetime import datetime
from typing import Any

import msgspec

from keyledger.errors import KMSError, ValidationException
from keyledger.projections.state import ParameterState, ParameterVersion

TYPES = ("String", "StringList", "SecureString")
TIERS = ("Standard", "Advanced", "Intelligent-Tiering")
DEFAULT_KEY = "alias/aws/ssm"
MAX_NAME = 1011
MAX_LEVELS = 15
MAX_VALUE = 4096  # the Standard tier
MAX_VERSIONS = 100
MAX_LABELS = 10
MAX_DESCRIPTION = 1024
MAX_ALLOWED_PATTERN = 1024
MAX_NAMES = 10  # GetParameters, DeleteParameters
MAX_TAGS = 50  # per parameter
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
RESOURCE_TYPES = ("Document", "ManagedInstance", "MaintenanceWindow", "Parameter", "PatchBaseline", "OpsItem",
                  "OpsMetadata", "Automation", "Association", "CloudConnector")


# -- SSM's errors -----------------------------------------------------------------

class ParameterNotFound(KMSError): pass
class ParameterVersionNotFound(KMSError): pass
class ParameterAlreadyExists(KMSError): pass
class ParameterMaxVersionLimitExceeded(KMSError): pass
class ParameterVersionLabelLimitExceeded(KMSError): pass
class ParameterLimitExceeded(KMSError): pass
class ParameterPatternMismatchException(KMSError): pass
class HierarchyLevelLimitExceededException(KMSError): pass
class HierarchyTypeMismatchException(KMSError): pass
class InvalidAllowedPatternException(KMSError): pass
class InvalidKeyId(KMSError): pass
class InvalidNextToken(KMSError): pass
class InvalidFilterKey(KMSError): pass
class InvalidFilterOption(KMSError): pass
class InvalidFilterValue(KMSError): pass
class UnsupportedParameterType(KMSError): pass
class InvalidResourceId(KMSError): pass
class InvalidResourceType(KMSError): pass
class TooManyTagsError(KMSError): pass


#: SSM's error classes by name (what the server and the CLI may answer besides the common ones)
SSM_ERRORS: dict[str, type[KMSError]] = {cls.__name__: cls for cls in (
    ParameterNotFound, ParameterVersionNotFound, ParameterAlreadyExists, ParameterMaxVersionLimitExceeded,
    ParameterVersionLabelLimitExceeded, ParameterLimitExceeded, ParameterPatternMismatchException,
    HierarchyLevelLimitExceededException, HierarchyTypeMismatchException, InvalidAllowedPatternException,
    InvalidKeyId, InvalidNextToken, InvalidFilterKey, InvalidFilterOption, InvalidFilterValue,
    UnsupportedParameterType, InvalidResourceId, InvalidResourceType, TooManyTagsError)}

ALREADY_EXISTS = ("The parameter already exists. To overwrite this value, set the overwrite option in the "
                  "request to true.")
_INVALID_NAME = ('Parameter name: can\'t be prefixed with "aws" or "ssm" (case-insensitive). If formed as a '
                 "path, it can consist of sub-paths divided by slash symbol; each sub-path can be formed as a "
                 "mix of letters, numbers and the following 3 symbols .-_")
_RESERVED_NAME = 'Parameter name: can\'t be prefixed with "aws" or "ssm" (case-insensitive).'
_INVALID_PATH = ('The parameter doesn\'t meet the parameter name requirements. The parameter name must begin '
                 'with a forward slash "/". It can\'t be prefixed with "aws" or "ssm" (case-insensitive). It '
                 "must use only letters, numbers, or the following symbols: . (period), - (hyphen), _ "
                 '(underscore). Special characters are not allowed. All sub-paths, if specified, must use the '
                 'forward slash symbol "/". Valid example: /get/parameters2-/by1./path0_.')
HIERARCHY_LIMIT = ("A hierarchy can have a maximum of 15 levels. For more information, see Requirements and "
                   "constraints for parameter names in the Amazon Web Services Systems Manager User Guide.")
_NAME = re.compile(r"[a-zA-Z0-9_.\-/]+")
_LABEL = re.compile(r"[a-zA-Z0-9_.\-]+")


def _length_error(field: str, limit: int, *, at_least: bool = False) -> ValidationException:
    relation = "greater than or equal to" if at_least else "less than or equal to"
    return ValidationException(f"1 validation error detected: Value at '{field}' failed to satisfy "
                               f"constraint: Member must have length {relation} {limit}")


def reserved(name: str) -> bool:
    return name.lstrip("/").lower().startswith(("aws", "ssm"))


def check_name(name: str, *, creating: bool = False) -> str:
    """The parameter's name as SSM keeps it (surrounding spaces removed), or
    SSM's refusal. `creating`: PutParameter's stricter rules (reserved prefixes)."""
    if not isinstance(name, str):
        raise ValidationException("1 validation error detected: Value at 'name' failed to satisfy constraint: "
                                  "Member must not be null")
    name = name.strip()
    if not name:
        raise _length_error("name", 1, at_least=True)
    if len(name) > MAX_NAME:
        raise _length_error("name", MAX_NAME)
    if "/" in name and not name.startswith("/"):
        # PutParameter asks for a fully qualified name; a read refuses it as a malformed path
        # (AWS's GetParameter, in LocalStack's AWS-validated test)
        raise ValidationException("Parameter name must be a fully qualified name." if creating else _INVALID_NAME)
    if not _NAME.fullmatch(name) or "//" in name or name.endswith("/"):
        raise ValidationException(_INVALID_NAME)
    if creating and reserved(name):
        if name.lower().startswith("/aws/"):
            from keyledger.errors import AccessDeniedException
            raise AccessDeniedException(f"No access to reserved parameter name: {name}.")
        raise ValidationException(_RESERVED_NAME if "/" not in name.strip("/") else _INVALID_NAME)
    if len(name.strip("/").split("/")) > MAX_LEVELS:
        raise HierarchyLevelLimitExceededException(HIERARCHY_LIMIT)
    return name


def root_alias(name: str) -> str | None:
    """The other spelling of a root-level name: SSM takes `x` and `/x` as
    one parameter (one ARN, `...:parameter/x`); None for a path's name."""
    bare = name[1:] if name.startswith("/") else name
    if "/" in bare:
        return None
    return bare if bare != name else "/" + name


def split_selector(name: str) -> tuple[str, str | None]:
    """`/app/db:3` -> ("/app/db", "3"); `/app/db:prod` -> ("/app/db", "prod")."""
    if not isinstance(name, str):
        check_name(name)
    base, sep, selector = name.strip().partition(":")
    return base, (selector if sep else None)


def select(state: ParameterState, selector: str | None) -> ParameterVersion:
    """The version a selector names (the latest without one)."""
    if selector is None:
        return state.current
    if selector.isdigit():
        found = state.version(int(selector))
        if found is None:
            raise ParameterVersionNotFound(f"Systems Manager could not find version {selector} of "
                                           f"{state.name}. Verify the version and try again.")
        return found
    labeled = state.labeled(selector)
    if labeled is None:
        raise ParameterVersionNotFound(f"Systems Manager could not find label {selector} of {state.name}. "
                                       "Verify the label and try again.")
    return labeled


def check_path(path: str) -> str:
    """A GetParametersByPath path: the prefix its parameters' names start with."""
    if not isinstance(path, str) or not path.strip():
        raise _length_error("path", 1, at_least=True)
    path = path.strip()
    if len(path) > MAX_NAME:
        raise _length_error("path", MAX_NAME)
    if not path.startswith("/") or "//" in path or not _NAME.fullmatch(path):
        raise ValidationException(_INVALID_PATH)
    if len(path.strip("/").split("/")) > MAX_LEVELS:
        raise HierarchyLevelLimitExceededException(HIERARCHY_LIMIT)
    return path.rstrip("/") + "/"


def valid_label(label: str) -> bool:
    """SSM's label rules: letters, digits, `._-`; not starting with a digit,
    `aws` or `ssm` (any case). Invalid labels are answered, not raised."""
    return bool(_LABEL.fullmatch(label)) and not label[0].isdigit() and not label.lower().startswith(("aws", "ssm"))


_TAG_SYMBOLS = frozenset("_.:/=+-@")


def _tag_text(text: str) -> bool:
    """The model's tag pattern `^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$`: letters,
    separators (spaces), numbers and `_.:/=+-@`."""
    return all(c in _TAG_SYMBOLS or unicodedata.category(c)[0] in "LZN" for c in text)


def _tag_error(member: str, value: str, constraint: str) -> ValidationException:
    shown = value if len(value) <= 128 else value[:128] + "..."
    return ValidationException(f"1 validation error detected: Value '{shown}' at '{member}' failed to satisfy "
                               f"constraint: {constraint}")


def _check_tag_text(member: str, text: str) -> str:
    if not _tag_text(text):
        raise _tag_error(member, text, r"Member must satisfy regular expression pattern: "
                                       r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$")
    return text


def check_tag_key(key: Any, member: str = "tags.member.key") -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_TAG_KEY:
        raise _tag_error(member, str(key), f"Member must have length between 1 and {MAX_TAG_KEY}")
    return _check_tag_text(member, key)


def check_tags(tags: Any) -> dict[str, str]:
    """Tags as PutParameter and AddTagsToResource take them (a list of
    {"Key", "Value"}): {key: value}, the last value of a repeated key
    winning. Keys beginning `aws:` are AWS's own and refused."""
    out: dict[str, str] = {}
    for tag in tags or ():
        if not isinstance(tag, dict) or "Key" not in tag or "Value" not in tag:
            raise ValidationException("1 validation error detected: Value at 'tags' failed to satisfy "
                                      "constraint: Member must have a Key and a Value")
        key, value = check_tag_key(tag["Key"]), tag["Value"]
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
            raise _tag_error("tags.member.value", str(value), f"Member must have length less than or equal to "
                                                              f"{MAX_TAG_VALUE}")
        _check_tag_text("tags.member.value", value)
        if key.lower().startswith("aws:"):
            raise ValidationException(f"Tag keys beginning with aws: are reserved for AWS's use: {key}")
        out[key] = value
    return out


def check_resource(resource_type: Any, resource_id: Any) -> str:
    """AddTagsToResource, ListTagsForResource, RemoveTagsFromResource: the
    parameter a (ResourceType, ResourceId) names, by name. The parameter
    store has parameters only, so any other valid type is refused."""
    check_enum("resourceType", str(resource_type), RESOURCE_TYPES)
    if resource_type != "Parameter":
        raise InvalidResourceType(f"keyledger's parameter store tags parameters only, not {resource_type} "
                                  "resources.")
    if not isinstance(resource_id, str) or not resource_id:
        raise InvalidResourceId("")
    try:
        return check_name(resource_id)
    except ValidationException:
        raise InvalidResourceId("") from None


def check_value(value: str, allowed_pattern: str) -> None:
    """A value's length and AllowedPattern; never echoes the value (it may be secret)."""
    if not isinstance(value, str):
        raise ValidationException("1 validation error detected: Value at 'value' failed to satisfy constraint: "
                                  "Member must not be null")
    if not value:
        raise ValidationException("1 validation error detected: Value '' at 'value' failed to satisfy "
                                  "constraint: Member must have length greater than or equal to 1.")
    if len(value) > MAX_VALUE or len(value.encode("utf-8")) > MAX_VALUE:
        raise ValidationException(
            "Standard tier parameters support a maximum parameter value of 4096 characters. To create a larger "
            "parameter value, upgrade the parameter to use the advanced-parameters tier. For more information, "
            "see https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-"
            "parameters.html")
    if allowed_pattern and compile_pattern(allowed_pattern).fullmatch(value) is None:
        raise ValidationException(f"Parameter value, cannot be validated against allowedPattern: {allowed_pattern}")


def compile_pattern(allowed_pattern: str) -> re.Pattern[str]:
    if len(allowed_pattern) > MAX_ALLOWED_PATTERN:
        raise _length_error("allowedPattern", MAX_ALLOWED_PATTERN)
    try:
        return re.compile(allowed_pattern)
    except (re.error, RecursionError):
        raise InvalidAllowedPatternException("The request does not meet the regular expression requirement.") \
            from None


def check_enum(field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValidationException(f"1 validation error detected: Value '{value[:64]}' at '{field}' failed to "
                                  f"satisfy constraint: Member must satisfy enum value set: [{', '.join(allowed)}]")


def check_max_results(value: int | None, limit: int, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        relation = f"less than or equal to {limit}" if isinstance(value, int) and value > limit \
            else "greater than or equal to 1"
        raise ValidationException(f"1 validation error detected: Value '{value}' at 'maxResults' failed to "
                                  f"satisfy constraint: Member must have value {relation}")
    return value


def check_names(names: list[str]) -> list[str]:
    if not isinstance(names, list) or not names:
        raise _length_error("names", 1, at_least=True)
    if len(names) > MAX_NAMES:
        raise _length_error("names", MAX_NAMES)
    return names


# -- paging tokens: the position after which the next page starts -------------------

def next_token(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode()


def read_token(token: str | None) -> str | None:
    if token is None:
        return None
    try:
        position = base64.urlsafe_b64decode(token.encode()).decode() if isinstance(token, str) else ""
    except (binascii.Error, ValueError, UnicodeDecodeError):
        position = ""
    if not position or len(position) > MAX_NAME + 1 or not _NAME.fullmatch(position.replace("#", "")):
        raise InvalidNextToken("The specified token isn't valid.")
    return position


# -- filters -----------------------------------------------------------------------

def check_parameter_filters(filters: list[dict[str, Any]] | None, *, by_path: bool) -> list[dict[str, Any]]:
    """ParameterFilters, with SSM's refusals; each as {Key, Option, Values}."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    valid = "[Type, KeyId, Label]" if by_path else "[Path, Name, Type, KeyId, Tier, DataType]"
    for f in filters or ():
        key = f.get("Key", "")
        allowed_keys = ("Type", "KeyId", "Label") if by_path else ("Path", "Name", "Type", "KeyId", "Tier", "DataType")
        if key not in allowed_keys and not key.startswith("tag:"):
            raise InvalidFilterKey(f"The following filter key is not valid: {key[:132]}. Valid filter keys "
                                   f"include: {valid}.")
        if key in seen:
            raise InvalidFilterKey(f"The following filter is duplicated in the request: {key}. A request can "
                                   "contain only one occurrence of a specific filter.")
        seen.add(key)
        values = list(f.get("Values") or ())
        if not values and not key.startswith("tag:"):
            raise InvalidFilterValue(f"The following filter values are missing : null for filter key {key}.")
        default = "OneLevel" if key == "Path" else "Equals"
        option = f.get("Option") or default
        options = ("Recursive", "OneLevel") if key == "Path" else \
            ("Equals", "BeginsWith", "Contains") if key == "Name" else ("Equals", "BeginsWith") \
            if key not in ("Type", "Tier", "Label") else ("Equals",)
        if option not in options:
            raise InvalidFilterOption(f"The following filter option is not valid: {option[:10]}. Valid options "
                                      f"include: [{', '.join(options)}].")
        for value, allowed in (("Type", TYPES), ("Tier", TIERS)):
            if key == value:
                for v in values:
                    if v not in allowed:
                        raise InvalidFilterValue(f"The following filter value is not valid: {v[:64]}. Valid "
                                                 f"values include: [{', '.join(allowed)}].")
        if key == "Path":
            values = [check_path(v) for v in values]
        out.append({"Key": key, "Option": option, "Values": values})
    return out


def legacy_filters(filters: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """DescribeParameters' older `Filters` (Name, Type, KeyId; Name matches by prefix)."""
    out = []
    for f in filters or ():
        key = f.get("Key", "")
        check_enum("filters.member.key", key, ("Name", "Type", "KeyId"))
        out.append({"Key": key, "Option": "BeginsWith" if key == "Name" else "Equals",
                    "Values": list(f.get("Values") or ())})
    return out


def matches(state: ParameterState, filters: list[dict[str, Any]], version: ParameterVersion | None = None) -> bool:
    v = version or state.current
    for f in filters:
        key, option, values = f["Key"], f["Option"], f["Values"]
        if key == "Path":
            parent = state.name.rsplit("/", 1)[0] + "/" if state.name.startswith("/") else None
            if parent is None or not any(parent == p or (option == "Recursive" and parent.startswith(p))
                                         for p in values):
                return False
            continue
        if key == "Label":
            if not any(label in values for label in v.labels):
                return False
            continue
        if key.startswith("tag:"):
            tag = key[4:]
            if tag not in state.tags or (values and state.tags[tag] not in values):
                return False
            continue
        subject = {"Name": state.name, "Type": v.parameter_type, "KeyId": v.key_id or "",
                   "Tier": v.tier, "DataType": v.data_type}[key]
        subject_forms: tuple[str, ...] = (subject,)
        if key == "Name" and not subject.startswith("/"):
            subject_forms = (subject, "/" + subject)  # SSM matches names with or without the leading slash
        if not any(_match(s, option, value) for s in subject_forms for value in values):
            return False
    return True


def _match(subject: str, option: str, value: str) -> bool:
    if option == "BeginsWith":
        return subject.startswith(value)
    if option == "Contains":
        return value in subject
    return subject == value


# -- responses --------------------------------------------------------------------

class _Response(msgspec.Struct, frozen=True, rename="pascal"):
    pass


class Parameter(_Response, frozen=True):
    """A parameter as GetParameter(s) and GetParametersByPath return it. A
    SecureString's Value is its plaintext only WithDecryption (else the
    base64 ciphertext, as SSM answers); the repr never shows a value."""

    name: str
    type: str
    value: str
    version: int
    last_modified_date: datetime
    arn: str = msgspec.field(name="ARN")
    data_type: str = "text"
    selector: str | None = None

    def __repr__(self) -> str:
        return (f"Parameter(name={self.name!r}, type={self.type!r}, value=<redacted>, version={self.version}, "
                f"selector={self.selector!r})")


class InlinePolicy(_Response, frozen=True):
    """A parameter policy (Advanced tier only: keyledger never has one)."""

    policy_text: str | None = None
    policy_type: str | None = None
    policy_status: str | None = None


class ParameterMetadata(_Response, frozen=True):
    """DescribeParameters: a parameter's latest version, without its value."""

    name: str
    arn: str = msgspec.field(name="ARN")
    type: str = "String"
    key_id: str | None = None
    last_modified_date: datetime | None = None
    last_modified_user: str | None = None
    description: str | None = None
    allowed_pattern: str | None = None
    version: int = 1
    tier: str = "Standard"
    policies: list[InlinePolicy] = msgspec.field(default_factory=list)
    data_type: str = "text"


class ParameterHistory(_Response, frozen=True):
    """GetParameterHistory: one version, with its labels."""

    name: str
    type: str
    last_modified_date: datetime
    last_modified_user: str
    value: str
    version: int
    key_id: str | None = None
    description: str | None = None
    allowed_pattern: str | None = None
    labels: list[str] = msgspec.field(default_factory=list)
    tier: str = "Standard"
    policies: list[InlinePolicy] = msgspec.field(default_factory=list)
    data_type: str = "text"

    def __repr__(self) -> str:
        return f"ParameterHistory(name={self.name!r}, version={self.version}, value=<redacted>)"


class PutParameterResult(_Response, frozen=True):
    """PutParameter: the new version and its tier."""

    version: int
    tier: str = "Standard"


class GetParameterResult(_Response, frozen=True):
    """GetParameter."""

    parameter: Parameter


class GetParametersResult(_Response, frozen=True):
    """GetParameters: the parameters found, and the names that were not."""

    parameters: list[Parameter] = msgspec.field(default_factory=list)
    invalid_parameters: list[str] = msgspec.field(default_factory=list)


class GetParametersByPathResult(_Response, frozen=True):
    """GetParametersByPath: one page."""

    parameters: list[Parameter] = msgspec.field(default_factory=list)
    next_token: str | None = None


class DeleteParameterResult(_Response, frozen=True):
    """DeleteParameter: nothing (an empty object on the wire, as SSM answers)."""


class DeleteParametersResult(_Response, frozen=True):
    """DeleteParameters: the names deleted and those that were not found."""

    deleted_parameters: list[str] = msgspec.field(default_factory=list)
    invalid_parameters: list[str] = msgspec.field(default_factory=list)


class GetParameterHistoryResult(_Response, frozen=True):
    """GetParameterHistory: one page of versions, oldest first."""

    parameters: list[ParameterHistory] = msgspec.field(default_factory=list)
    next_token: str | None = None


class LabelParameterVersionResult(_Response, frozen=True):
    """LabelParameterVersion: the labels refused by SSM's label rules, and the version labeled."""

    invalid_labels: list[str] = msgspec.field(default_factory=list)
    parameter_version: int = 1


class UnlabelParameterVersionResult(_Response, frozen=True):
    """UnlabelParameterVersion: the labels taken off the version, and those it did not have."""

    removed_labels: list[str] = msgspec.field(default_factory=list)
    invalid_labels: list[str] = msgspec.field(default_factory=list)


class Tag(_Response, frozen=True):
    key: str
    value: str


class AddTagsToResourceResult(_Response, frozen=True):
    """AddTagsToResource: nothing (an empty object on the wire, as SSM answers)."""


class RemoveTagsFromResourceResult(_Response, frozen=True):
    """RemoveTagsFromResource: nothing (an empty object on the wire, as SSM answers)."""


class ListTagsForResourceResult(_Response, frozen=True):
    """ListTagsForResource: the parameter's tags, by key."""

    tag_list: list[Tag] = msgspec.field(default_factory=list)


class DescribeParametersResult(_Response, frozen=True):
    """DescribeParameters: one page of metadata."""

    parameters: list[ParameterMetadata] = msgspec.field(default_factory=list)
    next_token: str | None = None
