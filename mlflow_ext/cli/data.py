"""`mlflow-ext profile` and `mlflow-ext check`: profile a dataset, check a batch against a profile.

Heavy modules (pandas, scipy) are imported inside the commands so `--help` stays fast. The
renderers (`render_check`, `render_profile`) and `check_exit_code` are reused by commands that
extend `check` (e.g. with a model and labels).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from mlflow_ext.cli._app import EXIT_CHECK_FAILED, EXIT_ERROR, EXIT_OK, out, print_json
from mlflow_ext.errors import ConfigError

if TYPE_CHECKING:
    from mlflow_ext.checks import CheckResult
    from mlflow_ext.profile import Profile

app = typer.Typer()

_STATUS_STYLE = {"ok": "bold green", "warn": "bold yellow", "alert": "bold red", "error": "bold red"}
_DETECTOR_HELP = (
    "Detector per column kind or column, repeatable: KIND=NAME (numeric, categorical, boolean, datetime), "
    "columns.COLUMN=NAME, overall=NAME; NAME 'none' skips."
)


def check_exit_code(result: CheckResult) -> int:
    """The exit code of a check: 0 ok or warn, 3 alert (CI gates on it), 1 error."""
    return {"alert": EXIT_CHECK_FAILED, "error": EXIT_ERROR}.get(result.status, EXIT_OK)


def parse_detectors(options: list[str]) -> dict[str, Any]:
    """Turn repeated `--detector KEY=NAME` options into the `detectors` mapping of `check`."""
    spec: dict[str, Any] = {}
    for option in options:
        key, sep, name = option.rpartition("=")
        if not sep or not key or not name:
            raise ConfigError(f"--detector: expected KEY=NAME, got {option!r}.", hint=_DETECTOR_HELP)
        value = None if name.lower() == "none" else name
        if key.startswith("columns."):
            spec.setdefault("columns", {})[key[len("columns."):]] = value
        else:
            spec[key] = value
    return spec


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return "" if value is None else format(value, spec)


def render_check(result: CheckResult) -> None:
    """Print a check result as rich text: status, reasons, drift and quality tables."""
    out.print(f"Status: [{_STATUS_STYLE.get(result.status, 'bold')}]{result.status}[/] "
              f"({result.n_rows} rows, {len(result.drifted_columns)} of {result.n_tested} tested columns drifted)")
    for reason in result.reasons:
        out.print(f"  - {reason}", markup=False)
    if result.drift or result.overall or result.prediction_drift:
        table = Table(title="Drift")
        for name in ("column", "detector", "statistic", "p-value", "adjusted p", "effect", "threshold", "drifted"):
            table.add_column(name, justify="left" if name in ("column", "detector") else "right")
        for r in (*result.drift, *result.overall, *result.prediction_drift):
            table.add_row(r.column, r.detector, _fmt(r.statistic), _fmt(r.p_value, ".3g"), _fmt(r.p_adjusted, ".3g"),
                          _fmt(r.effect_size), _fmt(r.threshold, "g"), "[bold red]yes[/]" if r.drifted else "no")
        out.print(table)
    if result.quality:
        table = Table(title="Data quality")
        for name in ("severity", "kind", "column", "finding"):
            table.add_column(name)
        for f in result.quality:
            table.add_row(f.severity, f.kind, f.column or "", f.message)
        out.print(table)
    if result.performance:
        table = Table(title="Model performance")
        for name in ("metric", "value", "reference", "ci", "p-value", "degraded"):
            table.add_column(name)
        for m in result.performance:
            ci = "" if m.ci_low is None or m.ci_high is None else f"[{m.ci_low:.4g}, {m.ci_high:.4g}]"
            table.add_row(m.name, _fmt(m.value), _fmt(m.reference), ci, _fmt(m.p_value, ".3g"),
                          "[bold red]yes[/]" if m.degraded else "no")
        out.print(table)


def render_profile(profile: Profile) -> None:
    """Print a profile's columns as a rich table."""
    table = Table(title=f"Profile: {profile.n_rows} rows, {len(profile.columns)} columns")
    for name in ("column", "kind", "dtype", "count", "nulls", "min", "max", "mean", "std", "top values"):
        table.add_column(name)
    for col in profile.columns.values():
        top = ", ".join(f"{v} ({n})" for v, n in zip(col.values[:3], col.counts[:3], strict=False))
        table.add_row(col.name, col.kind, col.dtype, str(col.count), str(col.nulls),
                      "" if col.min is None else str(col.min if isinstance(col.min, str) else f"{col.min:.4g}"),
                      "" if col.max is None else str(col.max if isinstance(col.max, str) else f"{col.max:.4g}"),
                      _fmt(col.mean), _fmt(col.std), top)
    out.print(table)


@app.command("profile")
def profile_command(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file to profile.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory, or a .json file path, to write.")],
    sample_size: Annotated[int, typer.Option(help="Rows kept in the reference sample.")] = 10_000,
    top_k: Annotated[int, typer.Option(help="Categories kept per categorical column.")] = 20,
    bins: Annotated[int, typer.Option(help="Quantile bins per numeric column.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the reference sample.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as one JSON document.")] = False,
) -> None:
    """Profile a dataset: per-column summary JSON plus a reference sample beside it."""
    from mlflow_ext.profile import Profile

    profile = Profile.from_file(data, sample_size=sample_size, top_k=top_k, bins=bins, seed=seed)
    written = profile.save(output)
    if as_json:
        print_json(profile.to_dict())
        return
    render_profile(profile)
    out.print(f"Wrote {written}", markup=False)


@app.command("check")
def check_command(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet batch to check.")],
    reference: Annotated[Path | None, typer.Option("--reference", "-r",
                                                   help="Profile directory or its JSON file.")] = None,
    model: Annotated[str | None, typer.Option(help="Check against MODEL[@ALIAS|/VERSION] and record it.")] = None,
    labels: Annotated[Path | None, typer.Option(help="With --model: CSV/Parquet of ids and labels.")] = None,
    id_column: Annotated[str | None, typer.Option(help="With --model: the row id column.")] = None,
    step: Annotated[int | None, typer.Option(help="With --model: the window index.")] = None,
    detector: Annotated[list[str] | None, typer.Option("--detector", "-d", help=_DETECTOR_HELP)] = None,
    alpha: Annotated[float, typer.Option(help="Significance level after correction.")] = 0.05,
    correction: Annotated[str, typer.Option(help="holm, bonferroni, bh or none.")] = "holm",
    drift_share: Annotated[float, typer.Option(help="Share of drifted columns that alerts.")] = 0.5,
    min_drifted: Annotated[int | None, typer.Option(help="Number of drifted columns that alerts.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")] = False,
) -> None:
    """Check a batch against a reference profile or a model version; exit 0 ok/warn, 3 alert, 1 error."""
    if (reference is None) == (model is None):
        raise typer.BadParameter("give exactly one of them.", param_hint="'--reference' / '--model'")
    if model is not None:
        from mlflow_ext.cli.monitoring import run_model_check

        outcome = run_model_check(model, data, labels=labels, id_column=id_column, step=step, as_json=as_json,
                                  options=dict(detectors=parse_detectors(detector or []), alpha=alpha,
                                               correction=correction, drift_share=drift_share,
                                               min_drifted=min_drifted))
        raise typer.Exit(check_exit_code(outcome.result))
    assert reference is not None
    from mlflow_ext._io import read_frame
    from mlflow_ext.checks import check
    from mlflow_ext.profile import Profile

    result = check(
        Profile.load(reference), read_frame(data), detectors=parse_detectors(detector or []), alpha=alpha,
        correction=correction, drift_share=drift_share, min_drifted=min_drifted,
    )
    if as_json:
        print_json(result.to_dict())
    else:
        render_check(result)
    raise typer.Exit(check_exit_code(result))
