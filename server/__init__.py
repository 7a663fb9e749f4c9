"""keyledger over HTTP: the AWS KMS JSON 1.1 protocol with SigV4.

    keyledger iam create-access-key --user-name alice     # once
    keyledger serve --port 4000                            # then point AWS clients at it

`server.protocol` is the wire format (operations, shapes, errors),
`server.sigv4` and `server.credentials` authenticate callers,
`server.committer` batches requests from the event loop into group commits,
`server.app` is the ASGI application, `server.runner` runs it under uvicorn,
and `server.cli` holds the click commands. Nothing here decides anything a
library call does not: the server is a thin skin over `ledger.service`.
"""
