"""`mlflow-ext serve`: answer MLflow's scoring protocol with the version holding an alias, and follow it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer()


@app.command("serve")
def serve_command(
    model: Annotated[str, typer.Argument(help="MODEL (follows --alias), MODEL@ALIAS, or MODEL/VERSION (pinned).")],
    alias: Annotated[str, typer.Option("--alias", help="The alias to serve and follow.")] = "champion",
    host: Annotated[str, typer.Option("--host", help="Address to bind (0.0.0.0 exposes the server).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    log_dir: Annotated[Path | None, typer.Option("--log-dir", help="Write the inference log here (the folder "
                                                 "'mlflow-ext watch --source' reads).")] = None,
    poll_interval: Annotated[float, typer.Option("--poll-interval", help="Seconds between alias reads.")] = 5.0,
    log_interval: Annotated[float, typer.Option("--log-interval", help="Seconds per inference log file.")] = 10.0,
    log_max_rows: Annotated[int, typer.Option("--log-max-rows", help="Rows the log holds in memory before it "
                                              "drops (and counts) new ones.")] = 100_000,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", help="Largest request body accepted.")]
    = 5_000_000,
    max_in_flight: Annotated[int, typer.Option("--max-in-flight", help="Requests answered at once; more get "
                                               "503 with Retry-After.")] = 64,
) -> None:
    """Serve a registered model over HTTP (MLflow's scoring protocol) until Ctrl-C."""
    from mlflow_ext.serve import serve

    serve(model, host=host, port=port, alias=alias, log_dir=log_dir, poll_interval=poll_interval,
          log_interval=log_interval, log_max_rows=log_max_rows, max_body_bytes=max_body_bytes,
          max_in_flight=max_in_flight)
