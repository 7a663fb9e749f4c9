"""`keyledger encrypt-file` / `decrypt-file` and `forensics ciphertext` on an
AWS Encryption SDK message, through click's CliRunner on a real ledger (and
one real process on a pseudo-terminal for the progress bar)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from keyledger.cli.main import main

if TYPE_CHECKING:
    from conftest import Cli


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "report.csv"
    path.write_bytes(b"id,amount\n" + b"".join(b"%d,%d\n" % (i, i * 7) for i in range(50_000)))
    return path


def files_in(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name not in ("ledger", "xdg"))


def test_encrypt_then_decrypt_a_file(cli: Cli, key: str, plain: Path, tmp_path: Path) -> None:
    enc, back = tmp_path / "report.csv.enc", tmp_path / "back.csv"
    result = cli("encrypt-file", "--key-id", key, "--in", str(plain), "--out", str(enc),
                 "--encryption-context", "purpose=audit", "dept=finance")
    assert result.stdout == "" and result.stderr == ""  # quiet: nothing but the output file
    assert enc.read_bytes()[:1] == b"\x02" and b"id,amount" not in enc.read_bytes()
    cli("decrypt-file", "--in", str(enc), "--out", str(back), "--encryption-context", "purpose=audit")
    assert back.read_bytes() == plain.read_bytes()


def test_the_message_is_an_esdk_message_any_esdk_reads(cli: Cli, key: str, plain: Path, tmp_path: Path) -> None:
    enc = tmp_path / "m.enc"
    meta = tmp_path / "meta.json"
    cli("encrypt-file", "--key-id", key, "--in", str(plain), "--out", str(enc), "--encryption-context",
        "a=1,b=2", "--metadata-output", str(meta))
    data = json.loads(meta.read_text())
    assert data["Algorithm"] == "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"
    assert data["EncryptionContext"]["a"] == "1" and data["EncryptionContext"]["b"] == "2"
    assert [k["ProviderId"] for k in data["EncryptedDataKeys"]] == ["aws-kms"]
    assert data["EncryptedDataKeys"][0]["KeyInfo"].endswith(key)
    assert data["PlaintextBytes"] == plain.stat().st_size and data["MessageBytes"] == enc.stat().st_size
    from aws_encryption_sdk.internal.formatting.deserialize import deserialize_header
    with open(enc, "rb") as f:
        header, _ = deserialize_header(f)
    assert header.message_id.hex() == data["MessageId"]


def test_two_keys_either_decrypts(cli: Cli, plain: Path, tmp_path: Path) -> None:
    a, b = cli.create_key(), cli.create_key()
    enc = tmp_path / "m.enc"
    cli("encrypt-file", "--key-id", a, "--key-id", b, "--in", str(plain), "--out", str(enc))
    cli("disable-key", "--key-id", a)
    cli("decrypt-file", "--in", str(enc), "--out", str(tmp_path / "one"))
    cli("enable-key", "--key-id", a)
    cli("disable-key", "--key-id", b)
    cli("decrypt-file", "--in", str(enc), "--out", str(tmp_path / "two"), "--key-id", a)
    assert (tmp_path / "one").read_bytes() == (tmp_path / "two").read_bytes() == plain.read_bytes()


def test_stdin_and_stdout(cli: Cli, key: str, plain: Path) -> None:
    runner = CliRunner()
    home = ["--home", str(cli.home)]
    enc = runner.invoke(main, [*home, "encrypt-file", "--key-id", key, "--in", "-", "--out", "-"],
                        input=plain.read_bytes())
    assert enc.exit_code == 0, enc.stderr
    message = enc.stdout_bytes
    assert message[:1] == b"\x02" and enc.stderr_bytes == b""
    dec = runner.invoke(main, [*home, "decrypt-file", "--in", "-", "--out", "-"], input=message)
    assert dec.exit_code == 0, dec.stderr
    assert dec.stdout_bytes == plain.read_bytes()


def test_wrong_context_fails_and_leaves_nothing(cli: Cli, key: str, plain: Path, tmp_path: Path) -> None:
    enc = tmp_path / "m.enc"
    cli("encrypt-file", "--key-id", key, "--in", str(plain), "--out", str(enc), "--encryption-context", "p=1")
    result = cli("decrypt-file", "--in", str(enc), "--out", str(tmp_path / "out"), "--encryption-context", "p=2",
                 expect=1)
    assert result.stderr.startswith("keyledger: error: cannot decrypt: the message's encryption context does not "
                                    "match: 'p' is missing or differs")
    assert files_in(tmp_path) == ["m.enc", "report.csv"]
    runner = CliRunner()
    piped = runner.invoke(main, ["--home", str(cli.home), "decrypt-file", "--in", str(enc), "--out", "-",
                                 "--encryption-context", "p=2"])
    assert piped.exit_code == 1 and piped.stdout_bytes == b""


def test_a_tampered_file_gives_no_plaintext_not_even_to_stdout(cli: Cli, key: str, plain: Path,
                                                               tmp_path: Path) -> None:
    enc = tmp_path / "m.enc"
    cli("encrypt-file", "--key-id", key, "--in", str(plain), "--out", str(enc))
    data = bytearray(enc.read_bytes())
    data[-30] ^= 1  # the signature: every frame still opens, only the end shows the change
    enc.write_bytes(bytes(data))
    result = cli("decrypt-file", "--in", str(enc), "--out", str(tmp_path / "out"), expect=1)
    assert "not a valid AWS Encryption SDK message, or it was altered" in result.stderr
    assert files_in(tmp_path) == ["m.enc", "report.csv"]
    piped = CliRunner().invoke(main, ["--home", str(cli.home), "decrypt-file", "--in", str(enc), "--out", "-"])
    assert piped.exit_code == 1 and piped.stdout_bytes == b""
    assert "Traceback" not in piped.output and "Footer" not in piped.stderr


def test_the_ledgers_refusal_reads_as_the_aws_cli_prints_it(cli: Cli, key: str, plain: Path,
                                                           tmp_path: Path) -> None:
    cli("disable-key", "--key-id", key)
    result = cli("encrypt-file", "--key-id", key, "--in", str(plain), "--out", str(tmp_path / "m.enc"), expect=254)
    assert result.stderr.startswith("An error occurred (DisabledException)")
    assert files_in(tmp_path) == ["report.csv"]
    result = cli("encrypt-file", "--key-id", "alias/nothing", "--in", str(plain), "--out", "-", expect=254)
    assert "NotFoundException" in result.stderr and result.stdout == ""


def test_bad_arguments(cli: Cli, key: str, plain: Path, tmp_path: Path) -> None:
    result = cli("encrypt-file", "--key-id", key, "--in", str(plain), "--out", str(plain), expect=2)
    assert "must not be the input file" in result.stderr
    result = cli("encrypt-file", "--key-id", key, "--in", str(plain), "--out", "x", "--frame-length", "100",
                 expect=2)
    assert "multiple of 128" in result.stderr
    result = cli("encrypt-file", "--key-id", key, "--in", str(tmp_path / "missing"), "--out", "x", expect=1)
    assert result.stderr.startswith("keyledger: error:") and "No such file" in result.stderr
    result = cli("decrypt-file", "--in", str(plain), "--out", str(tmp_path / "o"), expect=1)
    assert "not a valid AWS Encryption SDK message" in result.stderr
    assert files_in(tmp_path) == ["report.csv"]


def test_forensics_ciphertext_traces_a_messages_data_keys(cli: Cli, plain: Path, tmp_path: Path) -> None:
    a, b = cli.create_key(), cli.create_key()
    enc = tmp_path / "m.enc"
    cli("encrypt-file", "--key-id", a, b, "--in", str(plain), "--out", str(enc), "--encryption-context", "x=y")
    cli("decrypt-file", "--in", str(enc), "--out", str(tmp_path / "back"))
    view = cli.json("forensics", "ciphertext", str(enc))
    assert view["Format"] == "aws-encryption-sdk" and view["EncryptionContext"]["x"] == "y"
    keys = {k["KeyId"]: k for k in view["EncryptedDataKeys"]}
    assert set(keys) == {a, b}
    assert keys[a]["ProducedBy"]["Operation"] == "GenerateDataKey"
    assert keys[b]["ProducedBy"]["Operation"] == "Encrypt"
    assert sum(len(k["LaterUses"]) for k in keys.values()) == 1
    text = cli("forensics", "ciphertext", str(enc), "--output", "text").stdout
    assert "(AWS Encryption SDK)" in text and "with GenerateDataKey at" in text and "x=y" in text
    # the same through --ciphertext-blob, and a plain keyledger ciphertext still works as before
    assert cli.json("forensics", "ciphertext", "--ciphertext-blob", f"fileb://{enc}") == view
    blob = cli.json("encrypt", "--key-id", a, "--plaintext", "aGVsbG8=")["CiphertextBlob"]
    assert cli.json("forensics", "ciphertext", "--ciphertext-blob", blob)["KeyId"] == a
    cli("forensics", "ciphertext", expect=2)


def test_help_names_the_format(cli: Cli) -> None:
    for command in ("encrypt-file", "decrypt-file"):
        assert "AWS Encryption SDK" in cli(command, "--help", home=False).stdout


def test_a_progress_bar_on_a_terminal_only(cli: Cli, key: str, tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(os.urandom(9 << 20))
    script = Path(sys.executable).parent / "keyledger"  # the installed console script
    if not script.exists():
        pytest.skip("the keyledger script is not installed beside the interpreter")
    argv = [str(script), "--home", str(cli.home), "encrypt-file", "--key-id", key,
            "--in", str(big), "--out", str(tmp_path / "big.enc")]
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(argv, stderr=terminal, stdout=subprocess.DEVNULL, timeout=120,
                              env={**os.environ, "COLUMNS": "100"})
        os.close(terminal)
        terminal = -1
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if terminal != -1:
            os.close(terminal)
        os.close(controller)
    assert proc.returncode == 0, shown
    assert b"encrypting" in shown and b"100%" in shown
    piped = subprocess.run(argv, capture_output=True, timeout=120)
    assert piped.returncode == 0 and piped.stderr == b"" and piped.stdout == b""
