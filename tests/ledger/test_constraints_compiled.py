"""The compiled model check (`constraints.valid`) agrees with the model walk
(`constraints.violations`) on every input shape of the KMS model (issue 13):
a request passes the fast predicate exactly when the walk finds no violation,
so the walk, which builds AWS's messages, runs only for bad requests and
never misses one."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keyledger import constraints
from keyledger.errors import ValidationException

SHAPES = constraints.model()["shapes"]
OPERATIONS = sorted(name for name, op in constraints.model()["operations"].items() if "input" in op)


def _sized(lo: int | None, hi: int | None) -> st.SearchStrategy[int]:
    """Lengths at and around the shape's bounds, and some ordinary ones."""
    edges = {0, 1, 2}
    for bound in (lo, hi):
        if bound is not None:
            edges |= {max(0, bound - 1), bound, bound + 1}
    return st.sampled_from(sorted(n for n in edges if n <= 300)) | st.integers(0, 40)


def _pattern_text(pattern: str) -> st.SearchStrategy[str]:
    try:
        re.compile(pattern)
    except re.error:
        return st.text(max_size=20)
    return st.from_regex(pattern, fullmatch=True).filter(lambda s: len(s) <= 300)


ODD = st.sampled_from([None, 0, -1, True, "", "x", b"", b"x", [], {}, 1.5])


def _hashable(value: Any) -> bool:
    return not isinstance(value, (list, dict))


def values(shape_name: str, depth: int = 0) -> st.SearchStrategy[Any]:
    shape = SHAPES[shape_name]
    kind = shape["type"]
    lo, hi = shape.get("min"), shape.get("max")
    out: st.SearchStrategy[Any]
    if kind == "string":
        texts = _sized(lo, hi).flatmap(lambda n: st.text(alphabet="ab-/_:1Z ", min_size=n, max_size=n))
        if "enum" in shape:
            texts = st.sampled_from(shape["enum"]) | texts
        if shape.get("pattern"):
            texts = _pattern_text(shape["pattern"]) | texts
        out = texts
    elif kind == "blob":
        out = _sized(lo, hi).flatmap(lambda n: st.binary(min_size=n, max_size=n))
    elif kind in ("integer", "long"):
        edges = [b + d for b in (lo, hi) if b is not None for d in (-1, 0, 1)]
        out = (st.sampled_from(edges) if edges else st.nothing()) | st.integers(-5, 5000) | st.booleans()
    elif kind == "boolean":
        out = st.booleans()
    elif kind == "list" and depth < 3:
        member = values(shape["member"]["shape"], depth + 1)
        out = _sized(lo, hi).flatmap(lambda n: st.lists(member, min_size=min(n, 6), max_size=min(n, 6)))
        entry = SHAPES[shape["member"]["shape"]]
        if entry["type"] == "structure" and len(entry.get("members", {})) == 2:  # the {TagKey: TagValue} form
            first, second = (spec["shape"] for spec in entry["members"].values())
            out = out | st.dictionaries(values(first, depth + 1).filter(_hashable), values(second, depth + 1), max_size=4)
    elif kind == "map" and depth < 3:
        out = st.dictionaries(values(shape["key"]["shape"], depth + 1).filter(_hashable), values(shape["value"]["shape"], depth + 1),
                              max_size=4)
    elif kind == "structure" and depth < 3:
        members = {name: st.none() | values(spec["shape"], depth + 1) for name, spec in shape["members"].items()}
        out = st.fixed_dictionaries({}, optional=members)
    else:
        out = ODD
    return out | ODD


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    operation = draw(st.sampled_from(OPERATIONS))
    shape = SHAPES[constraints.model()["operations"][operation]["input"]["shape"]]
    members = draw(st.fixed_dictionaries({}, optional={name: st.none() | values(spec["shape"])
                                                      for name, spec in shape["members"].items()}))
    return operation, members


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                     HealthCheck.filter_too_much])
@given(requests())
def test_the_compiled_check_agrees_with_the_walk(request: tuple[str, dict[str, Any]]) -> None:
    operation, members = request
    assert constraints.valid(operation)(members) == (constraints.violations(operation, members) == [])


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_minimal_request_is_valid_and_a_missing_required_member_is_not(operation: str) -> None:
    shape = SHAPES[constraints.model()["operations"][operation]["input"]["shape"]]
    assert constraints.valid(operation)({}) == (not shape.get("required"))
    for name in shape.get("required", ()):
        assert not constraints.valid(operation)({name: None})


def test_check_still_answers_in_aws_words() -> None:
    with pytest.raises(ValidationException) as caught:
        constraints.check("GenerateRandom", {"NumberOfBytes": 0})
    assert str(caught.value.message if hasattr(caught.value, "message") else caught.value) == (
        "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1")
    constraints.check("GenerateRandom", {"NumberOfBytes": 1})
    with pytest.raises(ValidationException, match="Member must satisfy enum value set"):
        constraints.check("CreateKey", {"KeySpec": "AES_512"})
