# Register: main.add_command(cli.bill.bill)   (the `keyledger bill` command)
"""`keyledger bill`: what the log says a month costs, under the user's price
model (`projections.billing`): $1 per customer key-month prorated by the hour
while the key is neither pending deletion nor deleted, requests at AWS's
prices (projections.billing.PRICES_PER_10K; $0.03 per 10,000 in general),
service events free. Read-only; runs on a copy of a ledger.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import click

from keyledger.cli.audit import Identity, open_readonly
from keyledger.cli.context import settings
from keyledger.cli.output import LedgerCommand, show
from keyledger.commands import key_arn
from keyledger.projections import billing


def _month(value: str | None) -> str:
    if value is None:
        return datetime.now(timezone.utc).strftime("%Y-%m")
    try:
        datetime.strptime(value, "%Y-%m")
    except ValueError:
        raise click.BadParameter("expected YYYY-MM, e.g. 2024-06", param_hint="--month") from None
    if len(value) != 7:
        raise click.BadParameter("expected YYYY-MM, e.g. 2024-06", param_hint="--month")
    return value


def _hours(h: Any) -> float:
    return round(float(h), 4)


def bill_json(bill: billing.Bill, region: str, account: str) -> dict[str, Any]:
    return {
        "Month": bill.month,
        "HoursInMonth": bill.hours_in_month,
        "Keys": [{"KeyId": k.key_id, "KeyArn": key_arn(k.region or region, account, k.key_id),
                  "BillableHours": _hours(k.billable_hours), "KeyCost": billing.dollars(k.key_cost),
                  "RequestCount": sum(k.requests.values()), "Requests": dict(sorted(k.requests.items()))}
                 for k in bill.keys.values()],
        "RequestCount": bill.request_count,
        "Requests": dict(sorted(bill.requests.items())),
        "KeyCost": billing.dollars(bill.key_cost),
        "RequestCost": billing.dollars(bill.request_cost),
        "Total": billing.dollars(bill.total),
    }


def bill_table(data: dict[str, Any]) -> str:
    rows = [["KEY ID", "HOURS", "KEY COST", "REQUESTS", "BY OPERATION"]]
    for k in data["Keys"]:
        rows.append([k["KeyId"], f"{k['BillableHours']:.2f}", k["KeyCost"], str(k["RequestCount"]),
                     ", ".join(f"{op}={n}" for op, n in k["Requests"].items()) or "-"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"bill for {data['Month']} ({data['HoursInMonth']} hours)", ""]
    if data["Keys"]:
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    else:
        lines.append("no keys and no requests this month")
    lines += ["",
              "requests by operation: " + (", ".join(f"{op}={n}" for op, n in data["Requests"].items()) or "none"),
              f"keys:     {data['KeyCost']}",
              f"requests: {data['RequestCost']} ({data['RequestCount']} requests at AWS's prices: $0.03 per "
              "10,000; asymmetric keys $0.15, RSA_2048 $0.03; data key pairs RSA $12.00, ECC $0.10)",
              f"total:    {data['Total']}"]
    return "\n".join(lines)


@click.command("bill", cls=LedgerCommand, output_options=True)
@click.option("--month", default=None, metavar="YYYY-MM", help="The month (UTC; default: the current month).")
def bill(month: str | None) -> None:
    """The month's bill from the log: per key (billable hours, key cost,
    requests by operation) and in total. JSON, or a table with --output text.
    Totals are exact until the final rounding to cents. A month not over yet
    is billed as if every live key lived to its end (the month's projection)."""
    month = _month(month)
    with open_readonly() as store, store.snapshot() as snap:
        identity = Identity(snap.meta())
        computed = billing.compute(snap.records(), month)
    data = bill_json(computed, identity.region, identity.account)
    opts = settings()
    if opts.output == "text" and not opts.query:
        click.echo(bill_table(data))
    else:
        show(data)


COMMANDS = [bill]
