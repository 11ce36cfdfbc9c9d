"""The `mlflow-ext` command line: one module per noun, merged into one root app.

Command functions parse, call one core function and render. MLflow is imported inside commands,
never at module import, so `--help` and `plugins` stay fast.
"""

from __future__ import annotations

import sys

from mlflow_ext.cli import data, monitoring, plugins, policy, promotion
from mlflow_ext.cli._app import app

__all__ = ["app", "main"]

for _module in (plugins, data, monitoring, policy, promotion,):
    app.add_typer(_module.app)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
