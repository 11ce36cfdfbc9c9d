"""`mlflow-ext plugins`: what is installed, without importing any plugin (or MLflow)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.table import Table

from mlflow_ext import _registry
from mlflow_ext.cli._app import out, print_json

app = typer.Typer()


@app.command("plugins")
def plugins_command(
    kind: Annotated[str | None, typer.Option(help="Only this kind: detector, rule, hook or engine.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """List every installed detector, rule, hook and engine with its distribution, version and licence."""
    found = _registry.plugins(kind)
    if as_json:
        print_json([dataclasses.asdict(info) for info in found])
        return
    table = Table(title="mlflow-ext plugins")
    for column in ("kind", "name", "distribution", "version", "license", "entry point"):
        table.add_column(column)
    for info in found:
        table.add_row(info.kind, info.name, info.distribution, info.version, info.license, info.value)
    out.print(table)
