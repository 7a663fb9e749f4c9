"""The `keyledger` command line: a thin skin over `ledger.service`.

`cli.main:main` is the console script; the AWS KMS commands are built from
botocore's model (`cli.kms`), keyledger's own verbs are one module per
command group (admin, iam, replay, audit, forensics, bill, demo), and
`cli.output` is the one place that prints responses and maps errors to
exit codes.
"""
