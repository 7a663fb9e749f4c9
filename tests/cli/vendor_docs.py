"""Write `server/kms-2014-11-01.docs.json`: the first paragraph of botocore's
documentation of every operation and request member of the vendored model,
as plain text. The CLI's help comes from it (`keyledger.operations.documentation`).

    .venv/bin/python tests/cli/vendor_docs.py     # after updating the vendored model
"""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "server" / "kms-2014-11-01.json"
DOCS = ROOT / "server" / "kms-2014-11-01.docs.json"


class _FirstParagraph(HTMLParser):
    """The text of the first top-level <p> (or of everything before any)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0  # nesting of <p>
        self.done = False
        self.parts: list[str] = []
        self.outside: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "p":
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self.depth:
            self.depth -= 1
            if self.depth == 0 and "".join(self.parts).strip():
                self.done = True

    def handle_data(self, data: str) -> None:
        if self.done:
            return
        (self.parts if self.depth else self.outside).append(data)


def first_paragraph(doc: str | None) -> str:
    """Plain text of an HTML documentation string's first paragraph."""
    if not doc:
        return ""
    parser = _FirstParagraph()
    parser.feed(doc)
    parser.close()
    text = "".join(parser.parts) or "".join(parser.outside)
    return re.sub(r"\s+", " ", html.unescape(text)).strip()


def vendor() -> dict[str, dict[str, str]]:
    import botocore.session

    boto = botocore.session.get_session().get_service_model("kms")
    ours = json.loads(MODEL.read_text())
    out: dict[str, dict[str, str]] = {}
    for name, op in sorted(ours["operations"].items()):
        theirs = boto.operation_model(name)
        entry = {"": first_paragraph(theirs.documentation)}
        if "input" in op:
            for member in ours["shapes"][op["input"]["shape"]]["members"]:
                if member in theirs.input_shape.members:
                    entry[member] = first_paragraph(theirs.input_shape.members[member].documentation)
        out[name] = entry
    return out


if __name__ == "__main__":
    DOCS.write_text(json.dumps(vendor(), indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"wrote {DOCS}")
