"""`mlflow-ext backtest`: replay a policy over a history of batches and late labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlflow_ext.cli._app import err, out, print_json

if TYPE_CHECKING:
    from rich.console import Console

    from mlflow_ext.backtest import BacktestResult

app = typer.Typer()

_STYLE = {"ok": "green", "warn": "yellow", "alert": "bold red", "error": "bold red"}


def render_timeline(result: BacktestResult, console: Console = out) -> None:
    """The timeline as a rich table, then the summary and the decisions' rule results."""
    from rich.table import Table

    from mlflow_ext.backtest import describe_decision, describe_performance, describe_retrain

    table = Table(title=f"Backtest of {result.model}", title_justify="left")
    for column in ("step", "input", "model", "status", "drifted", "performance [95% CI]", "actions", "decision"):
        table.add_column(column, overflow="fold")
    for e in result.entries:
        actions = [f"alert ({', '.join(e.alerts)})"] if e.alerts else []
        actions += [describe_retrain(e)] if describe_retrain(e) else []
        table.add_row(str(e.step), f"{e.kind} {e.name}", f"v{e.version}" if e.version else "",
                      f"[{_STYLE.get(e.status, '')}]{e.status.upper()}[/]", ", ".join(e.drifted),
                      describe_performance(e.performance[:1]), "; ".join(actions), describe_decision(e.decision))
    console.print(table)
    console.print(result.summary(), markup=False)
    for d in result.decisions:
        console.print(f"Decision on v{d.candidate}: {d.outcome.upper()}: {d.message}", markup=False)
        for r in d.rules:
            console.print(f"    {'pass' if r.passed else 'FAIL'} {r.rule}: {r.message}", markup=False)


@app.command("backtest")
def backtest_command(
    policy: Annotated[Path, typer.Option("--policy", help="The policy file (TOML).")],
    history: Annotated[Path, typer.Option("--history", help="The history manifest (TOML): training data, "
                                                               "ordered batches and late labels.")],
    train: Annotated[str | None, typer.Option("--train", help="The training function, path/to/train.py:function "
                                                              "or package.module:function (default: the "
                                                              "manifest's).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="The model (default: the manifest's, else the "
                                                              "policy's only one).")] = None,
    keep: Annotated[Path | None, typer.Option("--keep", help="Keep the tracking store in this folder, for "
                                                             "mlflow ui.")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write the HTML report here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Replay a policy over a history in a throw-away tracking store: when it would alert, retrain, promote."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mlflow_ext.backtest import backtest, render_html

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task("training the initial model", total=None)

        def advance(done: int, total: int, entry: object) -> None:
            kind, name, status = (getattr(entry, k) for k in ("kind", "name", "status"))
            progress.update(task, completed=done, total=total, description=f"{kind} {name}: {status}")

        result = backtest(policy, history, train=train, model=model, keep=keep, on_step=advance)
    if report is not None:
        report.write_text(render_html(result), encoding="utf-8")
    if as_json:
        print_json(result.to_dict())
    else:
        render_timeline(result)
    if report is not None:
        err.print(f"Report: {report}", markup=False)
    if result.ui_command:
        err.print(f"Browse the kept store: {result.ui_command}", markup=False)
