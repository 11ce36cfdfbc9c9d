"""`mlflow-ext status`: the fleet table; and the `check --model` path of `mlflow-ext check`.

MLflow is imported inside the commands (through mlflow_ext.model_check), never at module import.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from mlflow_ext.cli._app import out, print_json

if TYPE_CHECKING:
    from mlflow_ext.model_check import ModelCheck, ModelStatus

app = typer.Typer()

_STYLE = {"ok": "green", "warn": "yellow", "alert": "bold red", "error": "bold red"}


def run_model_check(model: str, data: Path, *, labels: Path | None, id_column: str | None, step: int | None,
                    as_json: bool, options: dict[str, Any]) -> ModelCheck:
    """`check DATA --model ...`: check against the model version, record it, render; returns the outcome."""
    from mlflow_ext.cli.data import render_check
    from mlflow_ext.model_check import check_model

    outcome = check_model(model, data, labels=labels, id_column=id_column, step=step, **options)
    if as_json:
        print_json(outcome.to_dict())
        return outcome
    out.print(f"Model {outcome.model} version {outcome.version}, window {outcome.step}", markup=False)
    render_check(outcome.result)
    out.print(f"Recorded run {outcome.run_id}; report: {outcome.report_uri}", markup=False)
    return outcome


def _trend(row: ModelStatus) -> str:
    if not row.performance_trend:
        return ""
    return f"{row.performance_metric} " + " → ".join(f"{v:.3g}" for v in row.performance_trend[-5:])


def render_status(rows: tuple[ModelStatus, ...]) -> None:
    """Print the fleet table."""
    table = Table(title="Registered models")
    for name in ("model", "aliases", "last check", "drifted columns", "performance trend"):
        table.add_column(name, overflow="fold")
    for row in rows:
        aliases = "\n".join(f"{alias} v{version}" for alias, version in (("champion", row.champion),
                                                                           ("challenger", row.challenger)) if version)
        last = row.last_check
        if last is None:
            checked, drifted = "never checked", ""
        else:
            checked = f"[{_STYLE.get(last.status, 'bold')}]{last.status}[/] v{last.version}\n{last.time}"
            drifted = ", ".join(last.drifted_columns[:5]) + (
                f" (+{len(last.drifted_columns) - 5})" if len(last.drifted_columns) > 5 else "")
        table.add_row(row.model, aliases, checked, drifted, _trend(row))
    out.print(table)


@app.command("status")
def status_command(
    model: Annotated[str | None, typer.Argument(help="One registered model (default: all of them).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as one JSON document.")] = False,
) -> None:
    """Show every registered model: champion, challenger, last check, drifted columns, performance trend."""
    from mlflow_ext.model_check import status_table

    rows = status_table(model)
    if as_json:
        print_json([row.to_dict() for row in rows])
    else:
        render_status(rows)
