"""The `keyledger` command line: a thin skin over `ledger.service`.

`cli.main:main` is the console script; one module per command group
(keys, data, admin, replay, demo), with `cli.output` the one place that
prints responses and maps errors to exit codes.
"""
