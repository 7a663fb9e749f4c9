"""The AWS KMS exception names, and nothing else.

Every error the library raises on bad input or a refused request is a
`KMSError` subclass named exactly as AWS KMS names it, so the CLI and the
HTTP server can map them in one place each. Messages never carry plaintext,
key material or any other secret.
"""

from __future__ import annotations


class KMSError(Exception):
    """Base of every AWS-named error. `code` is the AWS exception name."""

    code: str = "KMSInternalException"
    http_status: int = 400

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


def _error(name: str, status: int = 400) -> type[KMSError]:
    return type(name, (KMSError,), {"code": name, "http_status": status, "__module__": __name__})


AlreadyExistsException = _error("AlreadyExistsException")
DisabledException = _error("DisabledException")
DryRunOperationException = _error("DryRunOperationException", 412)
IncorrectKeyException = _error("IncorrectKeyException")
InvalidAliasNameException = _error("InvalidAliasNameException")
InvalidArnException = _error("InvalidArnException")
InvalidCiphertextException = _error("InvalidCiphertextException")
InvalidGrantTokenException = _error("InvalidGrantTokenException")
InvalidKeyUsageException = _error("InvalidKeyUsageException")
InvalidMarkerException = _error("InvalidMarkerException")
KMSInternalException = _error("KMSInternalException", 500)
KMSInvalidStateException = _error("KMSInvalidStateException")
LimitExceededException = _error("LimitExceededException")
MalformedPolicyDocumentException = _error("MalformedPolicyDocumentException")
NotFoundException = _error("NotFoundException")
TagException = _error("TagException")
UnsupportedOperationException = _error("UnsupportedOperationException")
ValidationException = _error("ValidationException")
AccessDeniedException = _error("AccessDeniedException")

#: Every error class by its AWS name (for the CLI and the server).
BY_CODE: dict[str, type[KMSError]] = {
    cls.code: cls
    for cls in (
        AlreadyExistsException, DisabledException, DryRunOperationException,
        IncorrectKeyException, InvalidAliasNameException, InvalidArnException,
        InvalidCiphertextException, InvalidGrantTokenException,
        InvalidKeyUsageException, InvalidMarkerException, KMSInternalException,
        KMSInvalidStateException, LimitExceededException,
        MalformedPolicyDocumentException, NotFoundException, TagException,
        UnsupportedOperationException, ValidationException, AccessDeniedException,
    )
}


class LedgerError(Exception):
    """Not a request error: the ledger itself is unusable (wrong root key,
    broken chain, unknown format version). Never caught by request paths."""
