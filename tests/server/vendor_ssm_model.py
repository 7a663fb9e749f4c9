"""Write server/ssm-2014-11-06.json: botocore's SSM model trimmed to the
parameter store's operations (and the shapes they reach), documentation
kept as plain first paragraphs. Run with the project's venv:

    .venv/bin/python tests/server/vendor_ssm_model.py

`tests/server/test_server_ssm.py` checks the vendored copy against the
installed botocore, so an upgrade that changes a shape is noticed.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

OPERATIONS = ("PutParameter", "GetParameter", "GetParameters", "GetParametersByPath", "DeleteParameter",
              "DeleteParameters", "GetParameterHistory", "LabelParameterVersion", "UnlabelParameterVersion",
              "DescribeParameters", "AddTagsToResource", "ListTagsForResource", "RemoveTagsFromResource")
TARGET = Path(__file__).resolve().parents[2] / "server" / "ssm-2014-11-06.json"


def _plain(doc: str) -> str:
    first = re.split(r"</p>", doc, maxsplit=1)[0]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", first)).split())


def trimmed() -> dict[str, Any]:
    import botocore.session

    loader = botocore.session.get_session().get_component("data_loader")
    model = loader.load_service_model("ssm", "service-2", api_version="2014-11-06")
    shapes = model["shapes"]
    keep: dict[str, Any] = {}

    def walk(name: str) -> None:
        if name in keep:
            return
        shape = dict(shapes[name])
        if "documentation" in shape:
            shape["documentation"] = _plain(shape["documentation"])
        if "members" in shape:
            shape["members"] = {m: {k: (_plain(v) if k == "documentation" else v) for k, v in spec.items()}
                                for m, spec in shape["members"].items()}
        keep[name] = shape
        for spec in shape.get("members", {}).values():
            walk(spec["shape"])
        for part in ("member", "key", "value"):
            if part in shape:
                walk(shape[part]["shape"])

    operations = {}
    for name in OPERATIONS:
        op = dict(model["operations"][name])
        op["documentation"] = _plain(op.get("documentation", ""))
        operations[name] = op
        walk(op["input"]["shape"])
        walk(op["output"]["shape"])
        for error in op.get("errors", ()):
            walk(error["shape"])
    return {"version": model.get("version", "2.0"), "metadata": model["metadata"],
            "operations": operations, "shapes": dict(sorted(keep.items()))}


if __name__ == "__main__":
    TARGET.write_text(json.dumps(trimmed(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {TARGET}")
