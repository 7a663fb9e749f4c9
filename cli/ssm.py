"""`keyledger ssm`: the parameter store, named as `aws ssm` names it.

put-parameter, get-parameter, get-parameters, get-parameters-by-path,
delete-parameter, delete-parameters, get-parameter-history,
label-parameter-version, unlabel-parameter-version, describe-parameters,
add-tags-to-resource, list-tags-for-resource and remove-tags-from-resource,
with the AWS CLI's option names. Each command builds the request document
the AWS CLI would send and hands it to the same document -> arguments
mapping as the HTTP server (`keyledger.operations`, over botocore's SSM
model vendored as `ssm-2014-11-06.json`), then makes one `kms.parameters`
call and prints SSM's JSON. A refused document is recorded like any refusal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from keyledger import operations as ops
from keyledger.cli import params
from keyledger.cli.output import LedgerCommand, call
from keyledger.errors import KMSError
from keyledger.service import KeyLedger
from keyledger.service.parameters import ParameterStore

MODEL = ops.load_model("ssm-2014-11-06.json")
OPERATIONS = ops.build_operations(ParameterStore, MODEL)


@click.group("ssm")
def ssm() -> None:
    """The parameter store (AWS Systems Manager Parameter Store semantics) in
    the ledger's log: String, StringList and SecureString parameters, their
    versions, labels and hierarchies. SecureString values are encrypted by
    the ledger's own Encrypt (default key alias/aws/ssm) and only their
    ciphertext is stored. Commands and options as `aws ssm` has them."""


def _doc(operation: str) -> str:
    return MODEL["operations"][operation].get("documentation", "") or f"SSM {operation}."


def ssm_command(name: str, list_options: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], LedgerCommand]:
    """Declare `keyledger ssm <name>`, the SSM operation of that kebab-case name."""
    operation = name.replace("-", " ").title().replace(" ", "")
    return ssm.command(name, cls=LedgerCommand, operation=operation,  # type: ignore[return-value]
                       output_options=True, list_options=list_options,
                       help=f"{_doc(operation)}\n\n(SSM {operation}; `aws ssm {name}` takes the same options.)")


def _invoke(kms: KeyLedger, operation: str, document: dict[str, Any]) -> Any:
    op = OPERATIONS[operation]
    try:
        kwargs = ops.request_kwargs(op, document)
    except KMSError as refusal:
        kms.record_denied(operation, refusal)
        raise
    return getattr(kms.parameters, op.method)(**kwargs)


def _run(operation: str, **members: Any) -> None:
    document = {k: v for k, v in members.items() if v is not None and v != () and v != []}
    call(lambda kms: _invoke(kms, operation, document))


def _structures(param: str, values: tuple[str, ...], lists: tuple[str, ...] = ()) -> list[dict[str, Any]] | None:
    """A list of structures: JSON (one list, or one object per value) or
    the AWS CLI's shorthand `Key=k,Value=v` (members in `lists` take the
    rest of the line, comma-separated: `Key=Type,Values=String,SecureString`)."""
    if not values:
        return None
    out: list[dict[str, Any]] = []
    for raw in values:
        text = params.text(param, raw) or ""
        if text.lstrip().startswith(("[", "{")):
            try:
                parsed = json.loads(text)
            except ValueError:
                raise click.BadParameter("not valid JSON", param_hint=param) from None
            out.extend(parsed if isinstance(parsed, list) else [parsed])
            continue
        item: dict[str, Any] = {}
        parts = text.split(",")
        i = 0
        while i < len(parts):
            key, sep, value = parts[i].partition("=")
            if not sep or not key:
                raise click.BadParameter("expected Name=value pairs separated by commas", param_hint=param)
            if key in lists:
                rest = [value] + [p for p in parts[i + 1:] if "=" not in p]
                item[key] = rest
                i += len(rest)
                continue
            item[key] = value
            i += 1
        out.append(item)
    return out


def _value(param: str, value: str | None) -> str | None:
    return params.text(param, value)


@ssm_command("put-parameter", ("--tags",))
@click.option("--name", required=True, help="The parameter's name, e.g. /app/prod/db-password.")
@click.option("--value", required=True, help="The value (file://PATH for a file's text).")
@click.option("--type", "type_", help="String, StringList or SecureString (required to create).")
@click.option("--key-id", help="SecureString: the KMS key (default alias/aws/ssm).")
@click.option("--overwrite/--no-overwrite", default=None, help="Replace an existing parameter (a new version).")
@click.option("--description", help="A description (up to 1,024 characters).")
@click.option("--allowed-pattern", help="A regular expression the value must match.")
@click.option("--tags", multiple=True, metavar="VALUES", help="Key=k,Value=v ... or a JSON list (not with --overwrite).")
@click.option("--tier", help="Standard (keyledger has no Advanced parameters) or Intelligent-Tiering.")
@click.option("--policies", help="Parameter policies (Advanced tier: refused).")
@click.option("--data-type", help="text (the only data type keyledger has).")
def put_parameter(name: str, value: str, type_: str | None, key_id: str | None, overwrite: bool | None,
                  description: str | None, allowed_pattern: str | None, tags: tuple[str, ...], tier: str | None,
                  policies: str | None, data_type: str | None) -> None:
    _run("PutParameter", Name=name, Value=_value("--value", value), Type=type_, KeyId=key_id, Overwrite=overwrite,
         Description=description, AllowedPattern=allowed_pattern, Tags=_structures("--tags", tags), Tier=tier,
         Policies=policies, DataType=data_type)


@ssm_command("get-parameter")
@click.option("--name", required=True, help="The name, or name:version, or name:label.")
@click.option("--with-decryption/--no-with-decryption", default=None, help="Decrypt a SecureString value.")
def get_parameter(name: str, with_decryption: bool | None) -> None:
    _run("GetParameter", Name=name, WithDecryption=with_decryption)


@ssm_command("get-parameters", ("--names",))
@click.option("--names", required=True, multiple=True, metavar="VALUES", help="Up to 10 names (selectors allowed).")
@click.option("--with-decryption/--no-with-decryption", default=None, help="Decrypt SecureString values.")
def get_parameters(names: tuple[str, ...], with_decryption: bool | None) -> None:
    _run("GetParameters", Names=list(names), WithDecryption=with_decryption)


@ssm_command("get-parameters-by-path", ("--parameter-filters",))
@click.option("--path", required=True, help="The hierarchy, e.g. /app/prod.")
@click.option("--recursive/--no-recursive", default=None, help="Every level below the path, not only the next.")
@click.option("--parameter-filters", multiple=True, metavar="VALUES",
              help="Key=Type,Values=SecureString ... or a JSON list (Type, KeyId, Label, tag:KEY).")
@click.option("--with-decryption/--no-with-decryption", default=None, help="Decrypt SecureString values.")
@click.option("--max-results", type=int, help="At most this many (1-10) per page.")
@click.option("--next-token", help="Where the previous page ended.")
def get_parameters_by_path(path: str, recursive: bool | None, parameter_filters: tuple[str, ...],
                           with_decryption: bool | None, max_results: int | None, next_token: str | None) -> None:
    _run("GetParametersByPath", Path=path, Recursive=recursive,
         ParameterFilters=_structures("--parameter-filters", parameter_filters, ("Values",)),
         WithDecryption=with_decryption, MaxResults=max_results, NextToken=next_token)


@ssm_command("delete-parameter")
@click.option("--name", required=True, help="The parameter to delete (all its versions).")
def delete_parameter(name: str) -> None:
    _run("DeleteParameter", Name=name)


@ssm_command("delete-parameters", ("--names",))
@click.option("--names", required=True, multiple=True, metavar="VALUES", help="Up to 10 names.")
def delete_parameters(names: tuple[str, ...]) -> None:
    _run("DeleteParameters", Names=list(names))


@ssm_command("get-parameter-history")
@click.option("--name", required=True, help="The parameter.")
@click.option("--with-decryption/--no-with-decryption", default=None, help="Decrypt SecureString values.")
@click.option("--max-results", type=int, help="At most this many (1-50) per page.")
@click.option("--next-token", help="Where the previous page ended.")
def get_parameter_history(name: str, with_decryption: bool | None, max_results: int | None,
                          next_token: str | None) -> None:
    _run("GetParameterHistory", Name=name, WithDecryption=with_decryption, MaxResults=max_results,
         NextToken=next_token)


@ssm_command("label-parameter-version", ("--labels",))
@click.option("--name", required=True, help="The parameter.")
@click.option("--parameter-version", type=int, help="The version to label (default the latest).")
@click.option("--labels", required=True, multiple=True, metavar="VALUES", help="1-10 labels.")
def label_parameter_version(name: str, parameter_version: int | None, labels: tuple[str, ...]) -> None:
    _run("LabelParameterVersion", Name=name, ParameterVersion=parameter_version, Labels=list(labels))


@ssm_command("unlabel-parameter-version", ("--labels",))
@click.option("--name", required=True, help="The parameter.")
@click.option("--parameter-version", type=int, required=True, help="The version to take the labels off.")
@click.option("--labels", required=True, multiple=True, metavar="VALUES", help="1-10 labels.")
def unlabel_parameter_version(name: str, parameter_version: int, labels: tuple[str, ...]) -> None:
    _run("UnlabelParameterVersion", Name=name, ParameterVersion=parameter_version, Labels=list(labels))


_RESOURCE_TYPE = click.option("--resource-type", required=True, help="Parameter (the only resources keyledger tags).")
_RESOURCE_ID = click.option("--resource-id", required=True, help="The parameter's name.")


@ssm_command("add-tags-to-resource", ("--tags",))
@_RESOURCE_TYPE
@_RESOURCE_ID
@click.option("--tags", required=True, multiple=True, metavar="VALUES", help="Key=k,Value=v ... or a JSON list.")
def add_tags_to_resource(resource_type: str, resource_id: str, tags: tuple[str, ...]) -> None:
    _run("AddTagsToResource", ResourceType=resource_type, ResourceId=resource_id, Tags=_structures("--tags", tags))


@ssm_command("list-tags-for-resource")
@_RESOURCE_TYPE
@_RESOURCE_ID
def list_tags_for_resource(resource_type: str, resource_id: str) -> None:
    _run("ListTagsForResource", ResourceType=resource_type, ResourceId=resource_id)


@ssm_command("remove-tags-from-resource", ("--tag-keys",))
@_RESOURCE_TYPE
@_RESOURCE_ID
@click.option("--tag-keys", required=True, multiple=True, metavar="VALUES", help="The keys to remove.")
def remove_tags_from_resource(resource_type: str, resource_id: str, tag_keys: tuple[str, ...]) -> None:
    _run("RemoveTagsFromResource", ResourceType=resource_type, ResourceId=resource_id, TagKeys=list(tag_keys))


@ssm_command("describe-parameters", ("--filters", "--parameter-filters"))
@click.option("--filters", multiple=True, metavar="VALUES", help="Key=Name,Values=/app ... (Name, Type, KeyId).")
@click.option("--parameter-filters", multiple=True, metavar="VALUES",
              help="Key=Path,Option=Recursive,Values=/app ... or a JSON list (Name, Path, Type, KeyId, Tier, "
                   "DataType, tag:KEY).")
@click.option("--max-results", type=int, help="At most this many (1-50) per page.")
@click.option("--next-token", help="Where the previous page ended.")
def describe_parameters(filters: tuple[str, ...], parameter_filters: tuple[str, ...], max_results: int | None,
                        next_token: str | None) -> None:
    _run("DescribeParameters", Filters=_structures("--filters", filters, ("Values",)),
         ParameterFilters=_structures("--parameter-filters", parameter_filters, ("Values",)),
         MaxResults=max_results, NextToken=next_token)


COMMANDS = [ssm]
