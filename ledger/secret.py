"""`Secret`: bytes that never show themselves.

Key material, KEKs and the root key travel inside a `Secret`. Its repr is
redacted, it refuses to be pickled or copied into a string, and the only way
to the bytes is the explicit, greppable `reveal()`.
"""

from __future__ import annotations

import hmac
from typing import NoReturn


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError("Secret wraps bytes")
        self._value = bytes(value)

    def reveal(self) -> bytes:
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"Secret(<{len(self._value)} bytes redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:  # usable in sets without exposing the value
        return id(self)

    def __reduce__(self) -> NoReturn:  # pickle, copy and deepcopy all come through here
        raise TypeError("a Secret cannot be pickled or copied")

    def __bytes__(self) -> bytes:
        raise TypeError("use Secret.reveal() to read the bytes")
