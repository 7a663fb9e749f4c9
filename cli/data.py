"""The data plane: encrypt, decrypt, re-encrypt, data keys, random bytes.

Blobs come in as the AWS CLI takes them (`fileb://PATH`, or literal text for
a plaintext and base64 for a ciphertext) and go out base64 in the response.
"""

from __future__ import annotations

import click

from keyledger.cli import params
from keyledger.cli.keys import KEY_ID_HELP, grant_tokens_option
from keyledger.cli.output import call, operation

CONTEXT_HELP = "Encryption context: k=v,k2=v2 or a JSON object."
context_option = click.option("--encryption-context", default=None, metavar="CONTEXT", help=CONTEXT_HELP)
ciphertext_option = click.option("--ciphertext-blob", required=True, metavar="BLOB",
                                 help="The ciphertext: fileb://PATH (raw bytes) or base64 text.")


@operation("encrypt", list_options=["--grant-tokens"])
@click.option("--key-id", required=True, help=KEY_ID_HELP)
@click.option("--plaintext", required=True, metavar="BLOB",
              help="1-4096 bytes: fileb://PATH (raw bytes) or the literal text.")
@context_option
@grant_tokens_option
def encrypt(key_id: str, plaintext: str, encryption_context: str | None, grant_tokens: tuple[str, ...]) -> None:
    """Encrypt up to 4 KB under a key (Encrypt)."""
    data = params.plaintext_blob("--plaintext", plaintext)
    context = params.string_map("--encryption-context", encryption_context)
    tokens = params.string_list("--grant-tokens", grant_tokens)
    call(lambda kms: kms.encrypt(key_id, data, encryption_context=context, grant_tokens=tokens))


@operation("decrypt", list_options=["--grant-tokens"])
@ciphertext_option
@context_option
@click.option("--key-id", default=None, help="Optional: the key the ciphertext must be under. " + KEY_ID_HELP)
@grant_tokens_option
def decrypt(ciphertext_blob: str, encryption_context: str | None, key_id: str | None,
            grant_tokens: tuple[str, ...]) -> None:
    """Decrypt a ciphertext; the key is read from the ciphertext (Decrypt)."""
    blob = params.base64_blob("--ciphertext-blob", ciphertext_blob)
    context = params.string_map("--encryption-context", encryption_context)
    tokens = params.string_list("--grant-tokens", grant_tokens)
    call(lambda kms: kms.decrypt(blob, encryption_context=context, key_id=key_id, grant_tokens=tokens))


@operation("re-encrypt", list_options=["--grant-tokens"])
@ciphertext_option
@click.option("--destination-key-id", required=True, help="The key to encrypt under. " + KEY_ID_HELP)
@click.option("--source-encryption-context", default=None, metavar="CONTEXT",
              help="The ciphertext's encryption context: k=v,k2=v2 or a JSON object.")
@click.option("--destination-encryption-context", default=None, metavar="CONTEXT",
              help="The new encryption context: k=v,k2=v2 or a JSON object.")
@click.option("--source-key-id", default=None, help="Optional: the key the ciphertext must be under.")
@grant_tokens_option
def re_encrypt(ciphertext_blob: str, destination_key_id: str, source_encryption_context: str | None,
               destination_encryption_context: str | None, source_key_id: str | None,
               grant_tokens: tuple[str, ...]) -> None:
    """Decrypt and encrypt again under another key or context, without
    exposing the plaintext (ReEncrypt)."""
    blob = params.base64_blob("--ciphertext-blob", ciphertext_blob)
    src = params.string_map("--source-encryption-context", source_encryption_context)
    dst = params.string_map("--destination-encryption-context", destination_encryption_context)
    tokens = params.string_list("--grant-tokens", grant_tokens)
    call(lambda kms: kms.re_encrypt(blob, destination_key_id, source_encryption_context=src,
                                    destination_encryption_context=dst, source_key_id=source_key_id,
                                    grant_tokens=tokens))


def _data_key_options(fn):  # type: ignore[no-untyped-def]
    fn = grant_tokens_option(fn)
    fn = context_option(fn)
    fn = click.option("--number-of-bytes", type=int, default=None, help="Data key length, 1-1024.")(fn)
    fn = click.option("--key-spec", default=None, help="AES_256 or AES_128 (instead of --number-of-bytes).")(fn)
    return click.option("--key-id", required=True, help=KEY_ID_HELP)(fn)


@operation("generate-data-key", list_options=["--grant-tokens"])
@_data_key_options
def generate_data_key(key_id: str, key_spec: str | None, number_of_bytes: int | None,
                      encryption_context: str | None, grant_tokens: tuple[str, ...]) -> None:
    """Make a data key: returned in plaintext and encrypted under the key (GenerateDataKey)."""
    context = params.string_map("--encryption-context", encryption_context)
    tokens = params.string_list("--grant-tokens", grant_tokens)
    call(lambda kms: kms.generate_data_key(key_id, key_spec=key_spec, number_of_bytes=number_of_bytes,
                                           encryption_context=context, grant_tokens=tokens))


@operation("generate-data-key-without-plaintext", list_options=["--grant-tokens"])
@_data_key_options
def generate_data_key_without_plaintext(key_id: str, key_spec: str | None, number_of_bytes: int | None,
                                        encryption_context: str | None, grant_tokens: tuple[str, ...]) -> None:
    """Make a data key, returned only encrypted under the key (GenerateDataKeyWithoutPlaintext)."""
    context = params.string_map("--encryption-context", encryption_context)
    tokens = params.string_list("--grant-tokens", grant_tokens)
    call(lambda kms: kms.generate_data_key_without_plaintext(
        key_id, key_spec=key_spec, number_of_bytes=number_of_bytes, encryption_context=context,
        grant_tokens=tokens))


@operation("generate-random")
@click.option("--number-of-bytes", type=int, default=None, help="How many random bytes, 1-1024.")
def generate_random(number_of_bytes: int | None) -> None:
    """Random bytes from the ledger's generator (GenerateRandom)."""
    call(lambda kms: kms.generate_random(number_of_bytes=number_of_bytes))  # type: ignore[arg-type]


COMMANDS = [encrypt, decrypt, re_encrypt, generate_data_key, generate_data_key_without_plaintext,
            generate_random]
