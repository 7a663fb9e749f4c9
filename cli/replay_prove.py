# Register: the `replay` group's .add_command(cli.replay_prove.prove_decryptable)
#           (or main.add_command(...) if `replay` stays a single command)
"""`keyledger replay prove-decryptable`: prove that every ciphertext the log
says was issued can still be opened.

Replays the log (`ledger.forensics.prove_decryptable`); for every key version
an Encrypt / ReEncrypt / GenerateDataKey record used, unwraps its material
and checks its key check value; with `--ciphertexts FILE` also opens each
ciphertext of the corpus in memory (the plaintext is dropped at once).
Crypto-shredded keys are listed as such, not as failures. Needs the root
key. Progress on stderr only when stderr is a terminal. Exit 1 if anything
that should open does not.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, TextIO

import click

from keyledger.cli.progress import Progress
from keyledger.cli.context import settings
from keyledger.cli.output import LedgerCommand, format_json
from keyledger import forensics


def read_corpus(file: TextIO) -> list[tuple[bytes, dict[str, str]]]:
    """One `<base64 ciphertext>\\t<JSON context>` per line (the context may
    be left out: no context). A malformed line is a usage error naming it."""
    lines = file.read().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    corpus = []
    for number, line in enumerate(lines, 1):
        blob_text, _, context_text = line.partition("\t")
        try:
            blob = base64.b64decode(blob_text.strip(), validate=True)
            context = json.loads(context_text) if context_text.strip() else {}
        except (binascii.Error, ValueError):
            blob, context = b"", None
        if not blob or not isinstance(context, dict) or \
                not all(isinstance(k, str) and isinstance(v, str) for k, v in context.items()):
            raise click.BadParameter(f"line {number}: expected <base64 ciphertext><TAB><JSON object of "
                                     "strings>", param_hint="--ciphertexts")
        corpus.append((blob, context))
    return corpus


def _verdict(key: forensics.KeyVerdict) -> str:
    return "shredded" if key.shredded else "ok" if key.ok else "failed"


def report_json(report: forensics.DecryptabilityReport) -> dict[str, Any]:
    return {
        "Keys": [{"KeyId": k.key_id, **({"Region": k.region} if k.region else {}), "KeyState": k.state,
                  "Verdict": _verdict(k),
                  "Versions": [{"Version": v.version, "CiphertextsIssued": v.ciphertexts,
                                "Ok": v.ok, **({"Reason": v.reason} if v.reason else {})}
                               for v in k.versions]}
                 for k in report.keys],
        "Corpus": {"Total": report.corpus_total, "Opened": report.corpus_opened,
                   "Failures": report.corpus_failures},
        "Ok": report.ok,
    }


def report_lines(report: forensics.DecryptabilityReport, with_corpus: bool) -> list[str]:
    out = [f"keys that issued ciphertexts: {len(report.keys)}"]
    for k in report.keys:
        issued = sum(v.ciphertexts for v in k.versions)
        name = f"{k.key_id} in {k.region}" if k.scope else k.key_id  # a key of another region than the initial
        if k.shredded:
            versions = ", ".join(str(v.version) for v in k.versions)
            out.append(f"key {name} ({k.state}): crypto-shredded; the {issued} ciphertext(s) issued "
                       f"under version(s) {versions} can no longer be opened, by design")
            continue
        out.append(f"key {name} ({k.state}): {'OK' if k.ok else 'FAILED'}")
        for v in k.versions:
            status = "material unwraps and matches its KCV" if v.ok else f"FAILED: {v.reason}"
            out.append(f"  version {v.version}: {v.ciphertexts} ciphertext(s) issued; {status}")
    if with_corpus:
        out.append(f"corpus: {report.corpus_total} ciphertext(s) to open, {report.corpus_opened} opened")
        out.extend(f"  FAIL {failure}" for failure in report.corpus_failures)
    out.append(f"verdict: {'OK' if report.ok else 'FAILED'}")
    return out


@click.command("prove-decryptable", cls=LedgerCommand, output_options=True)
@click.option("--ciphertexts", default=None, type=click.File("r"), metavar="FILE",
              help="Also open these ciphertexts: one `<base64>\\t<JSON context>` per line (- for stdin).")
def prove_decryptable(ciphertexts: TextIO | None) -> None:
    """Prove that every ciphertext the log says was issued can still be
    opened: per key, its versions, the ciphertexts issued under each, and
    the verdict; crypto-shredded keys are listed as such. Exit 1 if
    anything that should open does not."""
    corpus = read_corpus(ciphertexts) if ciphertexts is not None else []
    opts = settings()
    with opts.open() as kms, kms.store.snapshot() as snap:
        progress = Progress("replaying", snap.head().seq)
        try:
            # the root key unwraps each KEK; it stays inside the opened ledger
            report = forensics.prove_decryptable(snap, kms._root, corpus=corpus, progress=progress)
        finally:
            progress.done()
    if opts.output == "json":
        click.echo(format_json(report_json(report)))
    else:
        click.echo("\n".join(report_lines(report, ciphertexts is not None)))
    if not report.ok:
        click.get_current_context().exit(1)


COMMANDS = [prove_decryptable]
