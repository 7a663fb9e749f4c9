"""The library reads from an editor: every public `KeyLedger` method and
every response type says what it is (its AWS operation, the errors it
raises) and is fully annotated, and the package ships `py.typed` so those
annotations reach the caller's type checker."""

from __future__ import annotations

import inspect
import pydoc
import re
from importlib import resources

import msgspec
import pytest

import keyledger
from keyledger import errors, responses

ERROR_NAME = re.compile(r"\b[A-Z][A-Za-z]+Exception\b")


def _public_methods() -> list[tuple[str, object]]:
    return [(name, member) for name, member in inspect.getmembers(keyledger.KeyLedger)
            if not name.startswith("_") and callable(member)]


def _response_types() -> list[type]:
    return [cls for name, cls in vars(responses).items()
            if inspect.isclass(cls) and not name.startswith("_") and cls.__module__ == responses.__name__
            and issubclass(cls, msgspec.Struct)]


METHODS = _public_methods()
RESPONSES = _response_types()


def test_the_package_ships_py_typed() -> None:
    assert resources.files("keyledger").joinpath("py.typed").is_file()


def test_there_is_something_to_check() -> None:
    assert len(METHODS) > 50 and len(RESPONSES) > 30


@pytest.mark.parametrize(("name", "method"), METHODS, ids=[n for n, _ in METHODS])
def test_every_public_method_is_documented(name: str, method: object) -> None:
    assert inspect.getdoc(method), f"KeyLedger.{name} has no docstring"


@pytest.mark.parametrize(("name", "method"), METHODS, ids=[n for n, _ in METHODS])
def test_every_public_method_is_fully_annotated(name: str, method: object) -> None:
    signature = inspect.signature(method)  # follows the validating wrapper to the method
    bare = [p.name for p in signature.parameters.values()
            if p.name != "self" and p.annotation is inspect.Parameter.empty]
    assert not bare, f"KeyLedger.{name}: parameters without a type: {bare}"
    assert signature.return_annotation is not inspect.Signature.empty, f"KeyLedger.{name} has no return type"


OPERATIONS = [(name, method) for name, method in METHODS if hasattr(method, "__wrapped_operation__")]


@pytest.mark.parametrize(("name", "method"), OPERATIONS, ids=[n for n, _ in OPERATIONS])
def test_an_aws_operation_names_itself_and_its_errors(name: str, method: object) -> None:
    """A method that implements a model operation says which (its name in
    AWS's spelling, so the AWS documentation is one search away) and which
    AWS errors it raises, each a real one."""
    doc = inspect.getdoc(method) or ""
    operation = method.__wrapped_operation__  # type: ignore[attr-defined]
    assert re.search(rf"\b{operation}\b", doc), f"KeyLedger.{name}'s docstring never says {operation}"
    named = set(ERROR_NAME.findall(doc))
    assert named, f"KeyLedger.{name}'s docstring names no error it raises"
    assert named <= set(errors.BY_CODE), f"KeyLedger.{name} names errors AWS does not have: " \
                                         f"{sorted(named - set(errors.BY_CODE))}"


@pytest.mark.parametrize("cls", RESPONSES, ids=[c.__name__ for c in RESPONSES])
def test_every_response_type_is_documented_and_typed(cls: type) -> None:
    doc = cls.__dict__.get("__doc__")
    assert doc, f"responses.{cls.__name__} has no docstring of its own"
    if cls.__name__.endswith("Response"):
        operation = cls.__name__.removesuffix("Response")
        assert operation in doc, f"responses.{cls.__name__}'s docstring never says {operation}"
    fields = cls.__struct_fields__  # type: ignore[attr-defined]
    annotated = {name for klass in cls.__mro__ for name in getattr(klass, "__annotations__", {})}
    assert set(fields) <= annotated


def test_help_is_useful_on_its_own() -> None:
    text = pydoc.render_doc(keyledger.KeyLedger.encrypt, renderer=pydoc.plaintext)
    assert "Encrypt:" in text
    assert "encryption_context: 'Mapping[str, str] | None'" in text
    assert "-> 'r.EncryptResponse'" in text or "-> 'EncryptResponse'" in text
    assert "Raises" in text and "DisabledException" in text
