"""The root typer app, its consoles, exit codes and the error boundary shared by every command."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from mlflow_ext.errors import MlflowExtError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CHECK_FAILED = 3  # drift found, promotion refused: CI jobs gate on it

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


# Against a tracking server, MLflow writes a "View run ... at: <url>" line to stdout for every run it
# ends; stdout is the command's own output (tables, --json), so commands keep it for themselves.
_QUIET_LINKS = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


class _Group(TyperGroup):
    """Turns every MlflowExtError into 'Error: ...' plus the hint on stderr, and exit code 1."""

    def invoke(self, ctx: Any) -> Any:
        quiet = _QUIET_LINKS not in os.environ
        if quiet:
            os.environ[_QUIET_LINKS] = "true"
        try:
            return super().invoke(ctx)
        except MlflowExtError as exc:
            err.print(f"[bold red]Error:[/] {exc.message}", markup=True, highlight=False)
            if exc.hint:
                err.print(exc.hint, markup=False)
            raise typer.Exit(EXIT_ERROR) from None
        finally:
            if quiet:
                del os.environ[_QUIET_LINKS]


app = typer.Typer(
    cls=_Group,
    name="mlflow-ext",
    help="The MLOps engineer for your own models, on MLflow.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # the environment holds tracking tokens
    add_completion=False,
)


def print_json(document: Any) -> None:
    """Print exactly one JSON document on stdout (for --json)."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()
