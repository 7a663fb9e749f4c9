"""The `aws kms` commands, built from botocore's model as the AWS CLI builds them.

One command per operation `keyledger.operations.OPERATIONS` lists (a model
operation the library implements): named in kebab-case after the operation
(`GenerateDataKey` -> `generate-data-key`), one option per request member
(`KeyId` -> `--key-id`), parsed by the member's shape (`cli.params`), help
from the model's documentation. A command turns its options into the
request document the AWS CLI would send and hands it to
`keyledger.operations.request_kwargs`, the same mapping the HTTP server
uses, then calls the library method of the operation's name. So a new
operation is its library method plus its model entry; nothing here changes.

Members the model has and the library does not implement (`--dry-run`,
`--custom-key-store-id`, ...) are accepted but hidden; given, they are refused
with UnsupportedOperationException, recorded in the log, as the server
refuses them.
"""

from __future__ import annotations

from typing import Any

import click

from keyledger import operations as ops
from keyledger.cli import params
from keyledger.cli.output import LedgerCommand, call
from keyledger.errors import KMSError
from keyledger.service import KeyLedger

_SYNTAX = {
    "plaintext": "Syntax: fileb://PATH for a file's bytes, or the literal text (its UTF-8 bytes).",
    "blob": "Syntax: fileb://PATH for a file's bytes, or base64 text.",
    "map": "Syntax: k=v,k2=v2 or a JSON object.",
    "list": "Syntax: space-separated values, or a JSON list.",
}


def _syntax(shape_name: str) -> str:
    shape = ops.SHAPES[shape_name]
    kind = shape["type"]
    if kind == "blob":
        return _SYNTAX["plaintext" if shape_name in params.PLAINTEXT_SHAPES else "blob"]
    if kind == "map":
        return _SYNTAX["map"]
    if kind == "structure":
        return f"Syntax: {_shorthand(shape_name)}, or a JSON object."
    if kind == "list":
        member = shape["member"]["shape"]
        if ops.SHAPES[member]["type"] == "structure":
            return f"Syntax: {_shorthand(member)} (several, space-separated), or a JSON list."
        return _SYNTAX["list"]
    enum = shape.get("enum")
    if enum and len(enum) <= 8:
        return "One of: " + ", ".join(enum) + "."
    return ""


def _shorthand(shape_name: str) -> str:
    members = ops.SHAPES[shape_name]["members"]
    return ",".join(f"{m}={{k=v,...}}" if ops.SHAPES[spec["shape"]]["type"] in ("map", "structure") else f"{m}=..."
                    for m, spec in members.items())


def _metavar(shape_name: str) -> str:
    kind = ops.SHAPES[shape_name]["type"]
    return {"blob": "BLOB", "map": "MAP", "structure": "STRUCTURE", "list": "VALUES",
            "integer": "INTEGER", "long": "INTEGER"}.get(kind, "TEXT")


def _option(op: ops.Operation, member: str, shape_name: str, supported: bool, doc: str) -> click.Option:
    kind = ops.SHAPES[shape_name]["type"]
    flag = "--" + ops.kebab(member)
    help_text = " ".join(part for part in (doc or f"The {member} member of {op.name}.", _syntax(shape_name))
                         if part)
    if not supported:
        help_text = f"Not supported by keyledger: refused if given. {help_text}"
    common: dict[str, Any] = {"help": help_text, "hidden": not supported,
                              "required": supported and member in op.required}
    if kind == "boolean":
        return click.Option([f"{flag}/--no-{ops.kebab(member)}"], default=None, **common)
    if kind in ("integer", "long"):
        return click.Option([flag], type=int, metavar="INTEGER", **common)
    if kind == "list":
        return click.Option([flag], multiple=True, metavar=_metavar(shape_name), **common)
    return click.Option([flag], metavar=_metavar(shape_name), **common)


def invoke(kms: KeyLedger, op: ops.Operation, document: dict[str, Any]) -> Any:
    """Run a request document as the server does: members -> the library
    method's arguments (a refusal here is recorded too), then the call."""
    try:
        kwargs = ops.request_kwargs(op, document)
    except KMSError as refusal:
        kms.record_denied(op.name, refusal)
        raise
    return getattr(kms, op.method)(**kwargs)


def build(op: ops.Operation) -> LedgerCommand:
    """The `keyledger <operation>` command of one operation."""
    docs = ops.documentation().get(op.name, {})
    members: dict[str, tuple[str, str, str]] = {}  # click parameter name -> (member, shape, flag)
    options = []
    order = sorted(op.members.items(), key=lambda m: (m[1][1] is None, m[0] not in op.required, m[0]))
    for member, (shape_name, kwarg) in order:
        option = _option(op, member, shape_name, kwarg is not None, docs.get(member, ""))
        assert option.name is not None
        members[option.name] = (member, shape_name, option.opts[0])
        options.append(option)

    def run(**values: Any) -> None:
        document: dict[str, Any] = {}
        for name, value in values.items():
            member, shape_name, flag = members[name]
            wire = params.wire_value(flag, shape_name, value)
            if wire is not None:
                document[member] = wire
        call(lambda kms: invoke(kms, op, document))

    lists = [o.opts[0] for o in options if o.multiple]
    return LedgerCommand(ops.kebab(op.name), callback=run, params=options, operation=op.name, list_options=lists,
                         output_options=True, help=(docs.get("") or f"The AWS KMS {op.name} operation.")
                         + f"\n\n(AWS KMS {op.name}; `aws kms {ops.kebab(op.name)}` takes the same options.)")


COMMANDS = [build(op) for op in ops.OPERATIONS.values()]
BY_OPERATION = {command.operation: command for command in COMMANDS}
