"""The model check's fast argument binding (`constraints.given_arguments`)
agrees with `inspect.Signature.bind` (issue 13): for every operation of the
service and any way of calling it, the fast path either gives exactly the
arguments `bind` gives or says it is not sure (None, and `bind` decides);
and for the ordinary calls it is sure, so the fast path is the one taken."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import keyledger
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keyledger import constraints
from keyledger.errors import ValidationException

METHODS = sorted((name, fn) for name, fn in vars(keyledger.KeyLedger).items()
                 if callable(fn) and hasattr(fn, "__wrapped_operation__"))
for base in keyledger.KeyLedger.__mro__[1:]:
    for name, fn in vars(base).items():
        if callable(fn) and hasattr(fn, "__wrapped_operation__") and name not in dict(METHODS):
            METHODS.append((name, fn))
SIGNATURES = [(name, inspect.signature(fn.__wrapped__)) for name, fn in METHODS]


def synthetic(*params: inspect.Parameter, self_kind: Any = inspect.Parameter.POSITIONAL_OR_KEYWORD
              ) -> inspect.Signature:
    return inspect.Signature([inspect.Parameter("self", self_kind), *params])


P = inspect.Parameter
ODD = [  # shapes the service does not use: the fast path must stay out of their way
    ("varargs", synthetic(P("a", P.POSITIONAL_OR_KEYWORD), P("rest", P.VAR_POSITIONAL))),
    ("varkw", synthetic(P("a", P.POSITIONAL_OR_KEYWORD, default=1), P("more", P.VAR_KEYWORD))),
    ("posonly", synthetic(P("a", P.POSITIONAL_ONLY), P("b", P.KEYWORD_ONLY, default=None),
                          self_kind=P.POSITIONAL_ONLY)),
]


def bind(signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    try:
        bound = signature.bind(object(), *args, **kwargs)
    except TypeError:
        return None
    return {k: v for k, v in bound.arguments.items() if k != "self"}


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, inspect.Signature, tuple[Any, ...], dict[str, Any]]:
    name, signature = draw(st.sampled_from(SIGNATURES + ODD))
    names = [p.name for p in list(signature.parameters.values())[1:]]
    args = tuple(draw(st.lists(st.integers(), max_size=len(names) + 2)))
    chosen = draw(st.lists(st.sampled_from(names + ["bogus", "self"]), unique=True, max_size=len(names) + 2))
    kwargs = {k: draw(st.integers()) for k in chosen}
    return name, signature, args, kwargs


@settings(max_examples=600, deadline=None)
@given(calls())
def test_fast_binding_agrees_with_inspect(call: tuple[str, inspect.Signature, tuple[Any, ...], dict[str, Any]]
                                          ) -> None:
    name, signature, args, kwargs = call
    fast = constraints.given_arguments(signature)(args, kwargs)
    slow = bind(signature, args, kwargs)
    if fast is not None:
        assert fast == slow, name
    elif name not in dict(ODD) and slow is not None:
        raise AssertionError(f"{name}: the fast path gave up on a call bind accepts: {args!r} {kwargs!r}")


def test_every_service_operation_takes_the_fast_path() -> None:
    assert len(SIGNATURES) > 40
    for name, signature in SIGNATURES:
        params = list(signature.parameters.values())[1:]
        required = {p.name: 1 for p in params if p.default is P.empty}
        assert constraints.given_arguments(signature)((), required) == required, name


@pytest.fixture
def kms(tmp_path: Path) -> keyledger.KeyLedger:
    ledger = keyledger.open(tmp_path, create=True, durability="relaxed")
    yield ledger
    ledger.close()


def test_the_check_and_python_errors_are_unchanged(kms: keyledger.KeyLedger) -> None:
    key_id = kms.create_key().key_metadata.key_id
    blob = kms.encrypt(key_id, b"x", encryption_context={"a": "b"}).ciphertext_blob  # positional
    assert kms.decrypt(ciphertext_blob=blob, encryption_context={"a": "b"}).plaintext == b"x"  # by keyword
    with pytest.raises(ValidationException, match="plaintext"):
        kms.encrypt(key_id, b"")  # the model's length check still runs on the fast path
    with pytest.raises(TypeError):
        kms.encrypt(key_id, b"x", plaintext=b"y")  # Python's own error for a repeated argument
    with pytest.raises(TypeError):
        kms.encrypt(key_id)  # and for a missing one
    with pytest.raises(TypeError):
        kms.encrypt(key_id, b"x", colour="blue")  # and for an unknown one
