"""The `mlflow-ext` command line: one module per noun, merged into one root app.

Command functions parse, call one core function and render. MLflow is imported inside commands,
never at module import, so `--help` and `plugins` stay fast.
"""

from __future__ import annotations

import sys

from mlflow_ext.cli import backtest, data, loop, monitoring, plugins, policy, promotion, serve
from mlflow_ext.cli._app import app

__all__ = ["app", "main"]

for _module in (plugins, data, promotion, monitoring, loop, policy, serve, backtest):
    app.add_typer(_module.app)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
