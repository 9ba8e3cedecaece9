"""``hwnas table show``: what a device's latency table holds, measured and predicted apart.

Registered by the main CLI like the supernet commands; it imports only click at load time.
"""

from __future__ import annotations

import json

import click

from hwnas.cli.types import OutputPath, to_stdout


@click.group("table")
def table_group() -> None:
    """A device's per-op latency table."""


@table_group.command("show")
@click.option("--device", "-d", required=True, help="Named device (see 'hwnas devices').")
@click.option("--space", default="elasticvit", show_default=True,
              help="Search space: a registered name, or module:Class.")
@click.option("--resolution", "-r", "resolutions", type=click.IntRange(1, 4096), multiple=True,
              help="Input resolution(s); default: the device config's.")
@click.option("--csv", "csv_path", type=OutputPath(), default=None,
              help="Write one row per op of the space: key, ms, ratio, source.")
@click.option("--all", "show_all", is_flag=True, help="Print one line per op of the space.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def show(device, space, resolutions, csv_path, show_all, as_json) -> None:
    """Summarise DEVICE's table for a space: measured ops, ops the fitted kernel regressors
    predict (flagged as predicted), ops nothing covers, and the reference it was timed beside."""
    from hwnas import api
    from hwnas.table_view import table_rows

    ctx = api.context(device, space, resolutions)
    table = api.load_table(ctx)
    rows, summary = table_rows(ctx, table)
    if csv_path:
        import pandas as pd

        from hwnas.latency.safeio import atomic_write_text

        atomic_write_text(csv_path, pd.DataFrame(rows).to_csv(index=False))
        summary["csv"] = str(csv_path)
    err = to_stdout(csv_path)  # the CSV is on stdout: the summary goes to stderr
    if as_json:
        click.echo(json.dumps(summary, indent=2), err=err)
        return
    for k, v in summary.items():
        click.echo(f"{k + ':':<22}{v}", err=err)
    if show_all:
        for r in rows:
            ms = "-" if r["ms"] is None else f"{r['ms']:.4f}"
            click.echo(f"{r['key']:<60} {ms:>10} ms  {r['source']}", err=err)


COMMANDS = [table_group]
