"""The one output and error-mapping layer of the CLI.

Every command is a `LedgerCommand`: it maps the library's errors to what the
AWS CLI prints (`An error occurred (Code) when calling the Op operation: msg`
on stderr, exit 254), a `LedgerError` to `keyledger: error: ...` (exit 1),
and never lets a traceback out. Commands with output options take
`--output json|text|table` and `--query` (a JMESPath expression, checked
before the command runs), like the AWS CLI, and print their response with
`show`: AWS-shaped PascalCase JSON indented as the AWS CLI does, its
tab-separated text format, or its boxed table. Nothing but the response
itself is ever printed to stdout, and no error message repeats a
parameter's value.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any

import click
import jmespath  # type: ignore[import-untyped]
import jmespath.exceptions  # type: ignore[import-untyped]

from keyledger.cli.context import Settings, settings
from keyledger.service import KeyLedger
from keyledger.errors import KMSError, LedgerError
from keyledger.responses import to_aws

OUTPUT_FORMATS = ("json", "text", "table")
OUTPUT_HELP = ("Output format: json (the default), text (tab-separated, like the AWS CLI) "
               "or table (boxed, like the AWS CLI).")
QUERY_HELP = "A JMESPath expression applied to the response, as the AWS CLI's --query (e.g. Keys[*].KeyId)."
API_ERROR_EXIT = 254  # what the AWS CLI exits with when the service refused the call
DEBUG_ENV = "KEYLEDGER_DEBUG"


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

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.format_message(), err=True)


class Failure(click.ClickException):
    """The ledger cannot be used (or the command cannot finish): exit 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
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


def check_query(ctx: click.Context | None, param: click.Parameter | None, value: str | None) -> str | None:
    """--query: a JMESPath expression, refused (exit 2) before anything runs if it does not parse."""
    if value is not None:
        try:
            jmespath.compile(value)
        except jmespath.exceptions.JMESPathError as exc:
            detail = str(exc).splitlines()[0].removeprefix("Invalid jmespath expression: ").rstrip(":")
            raise click.BadParameter(f"not a JMESPath expression ({detail})", ctx=ctx, param=param,
                                     param_hint="--query") from None
    return value


def output_params() -> list[click.Option]:
    return [
        click.Option(["--output"], type=click.Choice(OUTPUT_FORMATS), default=None, help=OUTPUT_HELP),
        click.Option(["--query"], default=None, metavar="JMESPATH", callback=check_query, help=QUERY_HELP),
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

def query(data: Any, expression: str) -> Any:
    """The JMESPath expression's value over the response (None if nothing matches)."""
    try:
        return jmespath.search(expression, data)
    except jmespath.exceptions.JMESPathError as exc:  # a type error met while evaluating
        raise click.UsageError(f"--query: {str(exc).splitlines()[0]}") from None


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


def format_columns(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Readable columns for a human (keyledger's own --output text of
    reports): a header in capitals, cells left-aligned, "-" for empty."""
    table = [[str(h) for h in headers]] + [["-" if c is None or c == "" else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table)


# The AWS CLI's table format (awscli/table.py), simplified: every structure
# is a titled box of name | value rows, a list of structures one box with a
# column per member, a list of scalars one row each; nested values are boxes
# inside their parent's, each level framed by one more `|` on either side.

@dataclasses.dataclass
class _Box:
    title: str
    headers: list[str] | None = None
    rows: list[list[str]] = dataclasses.field(default_factory=list)
    children: list[_Box] = dataclasses.field(default_factory=list)

    def natural(self) -> list[int]:
        columns = ([self.headers] if self.headers else []) + self.rows
        if not columns:
            return []
        return [max(len(row[i]) for row in columns) + 4 for i in range(len(columns[0]))]

    def needed(self, depth: int) -> int:
        own = max(len(self.title) + 4, sum(self.natural()) + max(len(self.natural()) - 1, 0) + 2)
        return max([own + 2 * depth] + [c.needed(depth + 1) for c in self.children])


def _boxes(title: str, data: Any) -> _Box:
    if isinstance(data, dict):
        box = _Box(title, rows=[[k, _scalar(v)] for k, v in sorted(data.items())
                                if not isinstance(v, (dict, list))])
        box.children = [_boxes(k, v) for k, v in sorted(data.items()) if isinstance(v, (dict, list))]
        return box
    if isinstance(data, list):
        if data and all(isinstance(e, dict) for e in data):
            headers = sorted({k for e in data for k, v in e.items() if not isinstance(v, (dict, list))})
            box = _Box(title, headers=headers or None,
                       rows=[[_scalar(e.get(h, "")) for h in headers] for e in data] if headers else [])
            box.children = [_boxes(k, v) for e in data for k, v in sorted(e.items())
                            if isinstance(v, (dict, list))]
            return box
        box = _Box(title, rows=[[_scalar(e)] for e in data if not isinstance(e, (dict, list))])
        box.children = [_boxes(title, e) for e in data if isinstance(e, (dict, list))]
        return box
    return _Box(title, rows=[[_scalar(data)]])


def _render(box: _Box, width: int, depth: int, out: list[str]) -> None:
    inner = width - 2 * depth
    frame = "|" * depth

    def line(text: str) -> None:
        out.append(frame + text + frame)

    if box.title:
        line("|" + box.title.center(inner - 2) + "|")
        line("+" + "-" * (inner - 2) + "+")
    natural = box.natural()
    if natural:
        widths = natural[:-1] + [inner - 2 - sum(natural[:-1]) - (len(natural) - 1)]
        rule = "+" + "+".join("-" * w for w in widths) + "+"
        if box.headers:
            line("|" + "|".join(h.center(w) for h, w in zip(box.headers, widths)) + "|")
            line(rule)
        for row in box.rows:
            line("|" + "|".join(("  " + cell).ljust(w) for cell, w in zip(row, widths)) + "|")
        line(rule)
    for child in box.children:
        _render(child, width, depth + 1, out)


def format_table(data: Any, title: str = "") -> str:
    if data is None or data == [] or data == {}:
        return ""
    box = _boxes(title, data)
    width = box.needed(0)
    out = ["-" * width]
    _render(box, width, 0, out)
    return "\n".join(out)


def _title() -> str:
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return ""
    operation = getattr(ctx.command, "operation", None)
    return operation or kebab_to_operation(ctx.info_name or "")


def show(data: Any, *, default: str = "json") -> None:
    """Print a response (AWS-shaped builtins) with --output and --query."""
    opts = settings()
    if opts.query:
        data = query(data, opts.query)
    elif data == {}:
        return  # the AWS CLI prints nothing for an empty response
    fmt = opts.output or default
    if fmt == "json":
        text = format_json(data)
    elif fmt == "table":
        text = format_table(data, _title())
    else:
        text = "None" if data is None else format_text(data)
    if text:
        click.echo(text)


def call(request: Callable[[KeyLedger], Any]) -> None:
    """Open the ledger, make one library call, print its response."""
    with settings().open() as kms:
        response = request(kms)
    show(to_aws(response))
