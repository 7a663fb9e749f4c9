"""`python -m keyledger.server serve|iam ...`: the server's commands without the main CLI."""

from __future__ import annotations

import click

from keyledger.server.cli import COMMANDS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """keyledger's HTTP endpoint (AWS KMS JSON protocol with SigV4)."""


for _command in COMMANDS:
    main.add_command(_command)

if __name__ == "__main__":
    main(prog_name="python -m keyledger.server")
