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

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__()
        if "code" not in cls.__dict__:  # a subclass is named as AWS names the error
            cls.code = cls.__name__

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


def _error(name: str, status: int = 400) -> type[KMSError]:
    # Prefer a class line (`class NameException(KMSError): pass`): mypy takes
    # a class as a type, not a variable bound to one.
    return type(name, (KMSError,), {"code": name, "http_status": status, "__module__": __name__})


class AlreadyExistsException(KMSError): pass
class DisabledException(KMSError): pass
class DryRunOperationException(KMSError): pass  # AWS answers it with 400
class IncorrectKeyException(KMSError): pass
class InvalidAliasNameException(KMSError): pass
class InvalidArnException(KMSError): pass


class InvalidCiphertextException(KMSError):
    """Every way a ciphertext can fail to open. AWS sends it with an empty
    message, and so does keyledger: an error that explains is an oracle.
    Whatever reason a caller passes is dropped."""

    code = "InvalidCiphertextException"

    def __init__(self, message: str = "") -> None:
        super().__init__("")


class InvalidGrantTokenException(KMSError): pass
class InvalidKeyUsageException(KMSError): pass
class InvalidMarkerException(KMSError): pass
class KMSInternalException(KMSError): http_status = 500
class KMSInvalidStateException(KMSError): pass
class LimitExceededException(KMSError): pass
class MalformedPolicyDocumentException(KMSError): pass
class NotFoundException(KMSError): pass
class TagException(KMSError): pass
class UnsupportedOperationException(KMSError): pass
class ValidationException(KMSError): pass
class AccessDeniedException(KMSError): pass
class KMSInvalidSignatureException(KMSError): pass  # Verify: AWS sends no message
class KMSInvalidMacException(KMSError): pass  # VerifyMac: AWS sends no message
#: What AWS answers a customer who creates, updates or deletes an alias under
#: the reserved `alias/aws/` prefix (no message). Not in the KMS model's
#: error lists; like AccessDeniedException it comes from AWS's front door.
class NotAuthorizedException(KMSError): pass
#: IAM's refusal to delete a user or role that still has access keys or
#: identity policies (DeleteUser, DeleteRole; code DeleteConflict, HTTP 409)
class DeleteConflictException(KMSError): http_status = 409
#: a request signed with temporary credentials (STS AssumeRole) whose session
#: has ended; AWS's own name and message
class ExpiredTokenException(KMSError): pass
#: credentials this ledger did not issue, or whose principal is gone (the
#: HTTP server's SigV4 check; `KeyLedger.as_session` in the library)
class UnrecognizedClientException(KMSError): pass
# ImportKeyMaterial's (service/imports.py)
class ExpiredImportTokenException(KMSError): pass
class InvalidImportTokenException(KMSError): pass
class IncorrectKeyMaterialException(KMSError): pass
# Custom key stores (service/custom_key_stores.py): a ledger has none
class CustomKeyStoreNotFoundException(KMSError): pass
class CloudHsmClusterNotFoundException(KMSError): pass
class XksProxyUriUnreachableException(KMSError): pass
class XksProxyVpcEndpointServiceNotFoundException(KMSError): pass

#: Errors AWS may answer to any operation, though the model lists them for none.
COMMON_ERRORS = frozenset({"ValidationException", "AccessDeniedException", "NotAuthorizedException"})

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
        KMSInvalidSignatureException, KMSInvalidMacException,
        NotAuthorizedException,
        ExpiredImportTokenException, InvalidImportTokenException, IncorrectKeyMaterialException,
        CustomKeyStoreNotFoundException, CloudHsmClusterNotFoundException, XksProxyUriUnreachableException,
        XksProxyVpcEndpointServiceNotFoundException, DeleteConflictException, ExpiredTokenException,
        UnrecognizedClientException,
    )
}


class LedgerError(Exception):
    """Not a request error: the ledger itself is unusable (wrong root key,
    broken chain, unknown format version). Never caught by request paths."""


class KeyMaterialError(LedgerError):
    """A key version's material cannot be had: its wrapping does not open
    under the key's KEK, or what it opens to fails the version's key check
    value (`crypto.material_for`)."""
