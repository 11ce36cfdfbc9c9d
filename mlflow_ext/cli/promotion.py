"""`mlflow-ext promote`, `rollback` and `history`: aliases moved only through recorded decisions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from mlflow_ext.cli._app import EXIT_CHECK_FAILED, out, print_json

if TYPE_CHECKING:
    from mlflow_ext.promotion import Decision, HistoryEntry

app = typer.Typer()

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
AliasOption = Annotated[str, typer.Option("--alias", help="The alias.")]


@app.command("promote")
def promote_command(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="The candidate version.")],
    to: Annotated[str, typer.Option("--to", help="The alias to move.")] = "champion",
    policy: Annotated[Path | None, typer.Option(help="Policy file with the promotion rules.")] = None,
    eval_data: Annotated[Path | None, typer.Option(help="Labelled evaluation set (CSV or Parquet).")] = None,
    labels: Annotated[str | None, typer.Option(help="The label column of --eval-data.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Evaluate and record, move nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Promote even if rules fail (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why; recorded with the decision.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate the promotion rules and move the alias; exit 3 when refused."""
    from mlflow_ext.promotion import promote

    decision = promote(model, version, to=to, policy=policy, eval_data=eval_data, labels=labels,
                       dry_run=dry_run, force=force, reason=reason)
    _show(decision, as_json)


@app.command("rollback")
def rollback_command(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    reason: Annotated[str, typer.Option(help="Why; recorded with the decision.")],
    to: Annotated[str | None, typer.Option("--to", help="The version (default: the previous champion).")] = None,
    alias: AliasOption = "champion",
    as_json: JsonOption = False,
) -> None:
    """Move the alias back (default: to its previous holder), recorded like a promotion."""
    from mlflow_ext.promotion import rollback

    _show(rollback(model, to=to, alias=alias, reason=reason), as_json)


@app.command("history")
def history_command(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    alias: AliasOption = "champion",
    as_json: JsonOption = False,
) -> None:
    """Who held the alias from when to when and why it moved, including unrecorded moves."""
    from mlflow_ext.promotion import history

    entries = history(model, alias=alias)
    if as_json:
        print_json([entry.to_dict() for entry in entries])
        return
    _history_table(model, alias, entries)


def _show(decision: Decision, as_json: bool) -> None:
    if as_json:
        print_json(decision.to_dict())
    else:
        if decision.rules:
            table = Table(title=f"{decision.model} version {decision.candidate}: rules")
            for column in ("rule", "result", "observed", "bound", "message"):
                table.add_column(column)
            for rule in decision.rules:
                table.add_row(rule.rule, "pass" if rule.passed else "[red]FAIL[/]", _cell(rule.observed),
                              _cell(rule.bound), rule.message)
            out.print(table)
        colour = {"promoted": "green", "refused": "red", "dry-run": "yellow"}[decision.outcome]
        out.print(f"[bold {colour}]{decision.outcome}[/]: {decision.message}", markup=True)
        out.print(f"Recorded as run {decision.run_id}.", markup=False)
    passed = decision.promoted or (decision.outcome == "dry-run" and not decision.failed_rules)
    if not passed:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _history_table(model: str, alias: str, entries: tuple[HistoryEntry, ...]) -> None:
    if not entries:
        out.print(f"{model!r} has no recorded moves of the alias {alias!r}.", markup=False)
        return
    table = Table(title=f"{model}@{alias}: history")
    for column in ("version", "since", "until", "from", "how", "who", "why"):
        table.add_column(column)
    for index, entry in enumerate(entries):
        table.add_row(
            entry.version or "(removed)",
            entry.since.isoformat(timespec="seconds") if entry.since else "?",
            entry.until.isoformat(timespec="seconds") if entry.until else ("now" if index == len(entries) - 1 else "?"),
            entry.previous or "",
            entry.action if entry.recorded else "[yellow]unrecorded[/]",
            entry.who or "", entry.reason or "",
        )
    out.print(table)


def _cell(value: float | str | None) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else value
