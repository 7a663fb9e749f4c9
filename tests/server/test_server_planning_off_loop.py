"""The server makes key pairs off its event loop: CreateKey of an RSA key,
GetParametersForImport and GenerateDataKeyPair generate an RSA pair while
the request is planned (RSA_4096: up to a second), and the server plans
them in a worker thread, so a cheap request sent meanwhile is answered
while the pair is still being made.

The first test holds each generation until a GenerateRandom sent after it
started has been answered: the order is then certain (were the generation
on the loop, the GenerateRandom could not be served until it gave up
waiting), and the generation is seen not to run on the loop. The second
uses real RSA_4096 generation unheld and asserts the order over tries."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from keyledger import crypto
from serverkit import Server

HOLD = 5.0  # seconds a held generation waits for the cheap request at most


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _race(server: Server, slow: Callable[[Any], Any], started: threading.Event | None = None,
          answered: threading.Event | None = None, delay: float = 0.0) -> tuple[float, float]:
    """(when the slow call returned, when a GenerateRandom sent while it
    was in progress returned), monotonic seconds."""
    done: dict[str, float] = {}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            slow(server.client("alice"))
            done["slow"] = time.monotonic()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)
    thread = threading.Thread(target=run)
    fast = server.client("alice")
    thread.start()
    if started is not None:
        assert started.wait(10), "the key pair generation never started"
    else:
        time.sleep(delay)
    assert len(fast.generate_random(NumberOfBytes=16)["Plaintext"]) == 16
    done["fast"] = time.monotonic()
    if answered is not None:
        answered.set()
    thread.join(60)
    assert not errors, errors
    return done["slow"], done["fast"]


SLOW_CALLS: list[tuple[str, str, Callable[[Any, Any], Any]]] = [
    ("CreateKey", "pregenerate",
     lambda kms, _: kms.create_key(KeySpec="RSA_4096", KeyUsage="ENCRYPT_DECRYPT")),
    ("GetParametersForImport", "generate_wrapping_key",
     lambda kms, key: kms.get_parameters_for_import(KeyId=key["external"], WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                                    WrappingKeySpec="RSA_4096")),
    ("GenerateDataKeyPair", "pregenerate",
     lambda kms, key: kms.generate_data_key_pair(KeyId=key["sym"], KeyPairSpec="RSA_4096")),
]


@pytest.mark.parametrize("operation, function, call", SLOW_CALLS, ids=[c[0] for c in SLOW_CALLS])
def test_a_cheap_request_is_answered_while_a_key_pair_is_made(server: Server, kms: Any,
                                                              monkeypatch: pytest.MonkeyPatch, operation: str,
                                                              function: str, call: Callable[[Any, Any], Any]) -> None:
    keys = {"sym": kms.create_key()["KeyMetadata"]["KeyId"],
            "external": kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]}
    real = getattr(crypto, function)
    started, answered = threading.Event(), threading.Event()
    seen_on_loop: list[bool] = []

    def held(*args: Any, **kwargs: Any) -> Any:
        seen_on_loop.append(_on_loop())
        started.set()
        answered.wait(HOLD)  # until the GenerateRandom sent meanwhile has its answer
        return real(*args, **kwargs)
    monkeypatch.setattr(crypto, function, held)
    slow_done, fast_done = _race(server, lambda client: call(client, keys), started, answered)
    assert fast_done < slow_done, f"{operation} held the loop: GenerateRandom waited for it"
    assert seen_on_loop == [False]  # the pair was made in a worker thread


def test_generate_random_overtakes_a_real_rsa_4096_create_key(server: Server) -> None:
    """Unheld: a GenerateRandom sent 50 ms after a CreateKey RSA_4096 (a
    200 ms to 1 s generation here) is answered first, in most of three
    tries (a try can lose only if the generation itself was quick)."""
    wins = 0
    for _ in range(3):
        slow_done, fast_done = _race(server, lambda client: client.create_key(KeySpec="RSA_4096",
                                                                              KeyUsage="SIGN_VERIFY"), delay=0.05)
        wins += fast_done < slow_done
    assert wins >= 2
