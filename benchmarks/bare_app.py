"""A bare uvicorn app answering every request with a fixed 200 body.

    python -m benchmarks.bare_app --port PORT [--host 127.0.0.1]

Issue 13's HTTP yardstick: the same load generator drives keyledger's
server and this app in the same run, so keyledger's req/s over this app's
says what share of uvicorn's own ceiling on this machine keyledger keeps.
It reads each request's body (as any server must) and answers with a body
the size of keyledger's Encrypt response, on the same uvicorn stack
(httptools, the default event loop: uvloop when installed), one process,
no access log. It listens on the loopback only.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

BODY = json.dumps({
    "CiphertextBlob": "A" * 432,  # base64 of 51 header + 256 plaintext + 16 tag bytes
    "KeyId": "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000",
    "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
}).encode()
HEADERS = [(b"content-type", b"application/x-amz-json-1.1"), (b"content-length", str(len(BODY)).encode())]
LOOPBACK = ("127.0.0.1", "::1", "localhost")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    p = argparse.ArgumentParser(prog="python -m benchmarks.bare_app", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    if args.host not in LOOPBACK:
        p.error("the bare app listens on the loopback interface only")
    uvicorn.run(app, host=args.host, port=args.port, http="httptools", lifespan="off", access_log=False,
                log_level="warning", server_header=False, timeout_keep_alive=60)


if __name__ == "__main__":
    main()
