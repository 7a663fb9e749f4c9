"""The one output and error-mapping layer of the CLI.

Every command is a `LedgerCommand`: it maps the library's errors to what the
AWS CLI prints (`An error occurred (Code) when calling the Op operation: msg`
on stderr, exit 254), a `LedgerError` to `keyledger: error: ...` (exit 1),
and never lets a traceback out. Operation commands (`operation(...)`) also
take `--output json|text` and `--query`, like the AWS CLI, and print the
response with `show`: AWS-shaped JSON indented as the AWS CLI does, or its
tab-separated text format. Nothing but the response itself is ever printed
to stdout, and no error message repeats a parameter's value.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

import click

from keyledger.cli.context import Settings, settings
from keyledger.service import KeyLedger
from keyledger.errors import KMSError, LedgerError
from keyledger.responses import to_aws

OUTPUT_FORMATS = ("json", "text")
API_ERROR_EXIT = 254  # what the AWS CLI exits with when the service refused the call
DEBUG_ENV = "KEYLEDGER_DEBUG"
_QUERY_RE = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")


# -- errors -------------------------------------------------------------------

class ServiceError(click.ClickException):
    """A refused request, printed the way the AWS CLI prints it."""

    exit_code = API_ERROR_EXIT

    def __init__(self, error: KMSError, operation: str | None) -> None:
        super().__init__(error.message)
        self.code, self.operation = error.code, operation

    def format_message(self) -> str:
        where = f" when calling the {self.operation} operation" if self.operation else ""
        return f"An error occurred ({self.code}){where}: {self.message}"

    def show(self, file: TextIO | None = None) -> None:
        click.echo(self.format_message(), err=True)


class Failure(click.ClickException):
    """The ledger cannot be used (or the command cannot finish): exit 1."""

    exit_code = 1

    def show(self, file: TextIO | None = None) -> None:
        click.echo(f"keyledger: error: {self.message}", err=True)


def kebab_to_operation(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def _spread(args: Sequence[str], names: Iterable[str]) -> list[str]:
    """`--tags a b --x y` -> `--tags a --tags b --x y`: the AWS CLI's
    space-separated list values, for options declared multiple=True."""
    names = set(names)
    out: list[str] = []
    current: str | None = None
    first = False
    for i, arg in enumerate(args):
        if arg == "--":
            out.extend(args[i:])
            break
        if arg.startswith("--"):
            name, eq, _ = arg.partition("=")
            current = name if name in names else None
            first = current is not None and not eq
            out.append(arg)
        elif current is not None and not first:
            out.extend((current, arg))
        else:
            first = False
            out.append(arg)
    return out


class LedgerCommand(click.Command):
    """A command whose errors are mapped to exit codes and one-line messages.

    `operation`: the AWS operation name for error messages (None: not an AWS
    call). `list_options`: options that take space-separated values.
    `output_options`: add the per-command `--output` and `--query`."""

    def __init__(self, *args: Any, operation: str | None = None, list_options: Sequence[str] = (),
                 output_options: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.operation = operation
        self.list_options = tuple(list_options)
        if output_options:
            self.params.extend(output_params())

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if self.list_options:
            args = _spread(args, self.list_options)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        output, query = ctx.params.pop("output", None), ctx.params.pop("query", None)
        base = ctx.find_object(Settings) or Settings()
        ctx.obj = dataclasses.replace(base, output=output or base.output, query=query or base.query)
        try:
            return super().invoke(ctx)
        except KMSError as exc:
            raise ServiceError(exc, self.operation) from None
        except LedgerError as exc:
            raise Failure(str(exc)) from None
        except OSError as exc:  # the home is not writable, the disk is full, ...
            where = f"{exc.filename}: " if exc.filename else ""
            raise Failure(f"{where}{exc.strerror or exc}") from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a bug or an LMDB failure: report it, never a traceback
            if os.environ.get(DEBUG_ENV):
                raise
            raise Failure(f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for the traceback)") from None


def output_params() -> list[click.Option]:
    return [
        click.Option(["--output"], type=click.Choice(OUTPUT_FORMATS), default=None,
                     help="Output format: json (the default) or text (tab-separated, like the AWS CLI)."),
        click.Option(["--query"], default=None, metavar="FIELD",
                     help="Print only this field of the response (e.g. CiphertextBlob or KeyMetadata.Arn)."),
    ]


def operation(name: str, *, list_options: Sequence[str] = ()) -> Callable[[Callable[..., Any]], LedgerCommand]:
    """Declare `keyledger <name>`: the AWS operation of that kebab-case name."""
    return click.command(name, cls=LedgerCommand, operation=kebab_to_operation(name),
                         list_options=list_options, output_options=True)


class LedgerGroup(LedgerCommand, click.Group):
    """A LedgerCommand that also has subcommands (e.g. `replay` and
    `replay prove-decryptable`)."""


def command(name: str, *, output_options: bool = False) -> Callable[[Callable[..., Any]], LedgerCommand]:
    """Declare a keyledger command that is not an AWS operation."""
    return click.command(name, cls=LedgerCommand, output_options=output_options)


# -- printing -----------------------------------------------------------------

def query(data: Any, path: str) -> Any:
    """A field (or dotted path) of the response, None if absent."""
    if not _QUERY_RE.match(path):
        raise click.UsageError("--query takes a field name or a dotted path (e.g. KeyMetadata.KeyId)")
    for part in path.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def format_json(data: Any) -> str:
    return json.dumps(data, indent=4, ensure_ascii=False)


def _scalar(value: Any) -> str:
    return str(value)


def _text(item: Any, out: list[str], identifier: str | None = None,
          scalar_keys: list[str] | None = None) -> None:
    """The AWS CLI's text format (awscli/text.py): each dict's scalars on one
    tab-separated line, prefixed by its key in upper case, nested values
    after it; a list of dicts shares one column order."""
    if isinstance(item, dict):
        if scalar_keys is None:
            pairs = sorted(item.items())
            scalars = [_scalar(v) for _, v in pairs if not isinstance(v, (dict, list))]
            nested = [(k, v) for k, v in pairs if isinstance(v, (dict, list))]
        else:
            scalars = [_scalar(item.get(k, "")) for k in scalar_keys]
            nested = [(k, item[k]) for k in sorted(set(item) - set(scalar_keys))]
        if scalars:
            out.append("\t".join(([identifier.upper()] if identifier else []) + scalars))
        for key, value in nested:
            _text(value, out, key)
    elif isinstance(item, list):
        if not item:
            return
        if any(isinstance(e, dict) for e in item):
            keys = sorted({k for e in item if isinstance(e, dict)
                           for k, v in e.items() if not isinstance(v, (dict, list))})
            for element in item:
                _text(element, out, identifier, keys)
            return
        scalars = [e for e in item if not isinstance(e, (dict, list))]
        if scalars:
            if identifier:
                out.extend(f"{identifier.upper()}\t{_scalar(e)}" for e in scalars)
            else:
                out.append("\t".join(_scalar(e) for e in scalars))
        for element in item:
            if isinstance(element, list):
                _text(element, out, identifier)
    else:
        out.append(_scalar(item))


def format_text(data: Any) -> str:
    out: list[str] = []
    _text(data, out)
    return "\n".join(out)


def show(data: Any, *, default: str = "json") -> None:
    """Print a response (AWS-shaped builtins) with --output and --query."""
    opts = settings()
    if opts.query:
        data = query(data, opts.query)
    elif data == {}:
        return  # the AWS CLI prints nothing for an empty response
    fmt = opts.output or default
    text = format_json(data) if fmt == "json" else ("None" if data is None else format_text(data))
    if text:
        click.echo(text)


def call(request: Callable[[KeyLedger], Any]) -> None:
    """Open the ledger, make one library call, print its response."""
    with settings().open() as kms:
        response = request(kms)
    show(to_aws(response))
