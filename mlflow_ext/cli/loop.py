"""`mlflow-ext monitor` (one batch) and `mlflow-ext watch` (a folder, continuously)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlflow_ext.cli._app import EXIT_CHECK_FAILED, err, out, print_json

if TYPE_CHECKING:
    from mlflow_ext.monitor import LoopSettings, StepRecord

app = typer.Typer()

PolicyOption = Annotated[Path, typer.Option("--policy", help="The policy file (TOML).")]
ModelOption = Annotated[str | None, typer.Option("--model", help="The model (default: the policy's only one).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def _settings(policy: Path, model: str | None) -> LoopSettings:
    from mlflow_ext.monitor import LoopSettings
    from mlflow_ext.policy import load_policy

    return LoopSettings.from_policy(load_policy(policy), model)


def _show(record: StepRecord) -> None:
    out.print(record.line(), markup=False)
    for reason in record.reasons[:3]:
        out.print(f"    {reason}", markup=False)


@app.command("monitor")
def monitor_command(
    policy: PolicyOption,
    data: Annotated[Path, typer.Option("--data", help="The batch (CSV or Parquet).")],
    labels: Annotated[Path | None, typer.Option("--labels", help="Labels for the batch, joined by id.")] = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Process one batch: check, record, decide, act. Exit 3 when the batch is in alert."""
    from mlflow_ext.monitor import monitor

    records = monitor(policy, data, labels=labels, settings=_settings(policy, model))
    if as_json:
        print_json([r.to_dict() for r in records])
    else:
        for record in records:
            _show(record)
    if any(r.status == "alert" for r in records):
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("watch")
def watch_command(
    policy: PolicyOption,
    source: Annotated[Path, typer.Option("--source", help="The folder where batch and labels files arrive.")],
    interval: Annotated[float, typer.Option("--interval", help="Seconds between passes.")] = 5.0,
    labels_pattern: Annotated[str, typer.Option("--labels-pattern", help="Names of labels files.")] = "labels*",
    lease: Annotated[float, typer.Option("--lease", help="Seconds after which a dead watcher's file is retried.")]
    = 600.0,
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Stop when nothing is left to do.")] = False,
    retries: Annotated[int, typer.Option("--retries", help="Retries of a pass while the tracking store fails.")] = 3,
    backoff: Annotated[float, typer.Option("--backoff", help="Seconds before the first retry (then doubling).")]
    = 1.0,
    model: ModelOption = None,
) -> None:
    """Process every file arriving in a folder, once, in arrival order, until SIGINT/SIGTERM."""
    from mlflow_ext.watch import watch

    settings = _settings(policy, model)
    err.print(f"Watching {source} for {settings.model} (every {interval:g} s; Ctrl-C stops).", markup=False)
    summary = watch(settings, source, interval=interval, labels_pattern=labels_pattern, lease=lease,
                    until_idle=until_idle, retries=retries, backoff=backoff, on_step=_show,
                    on_error=lambda message: err.print(f"Error: {message}", markup=False))
    err.print(f"Stopped ({summary.stopped_by}) after {len(summary.processed)} file(s).", markup=False)
