"""`mlflow-ext policy check FILE`: validate a policy file without touching MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mlflow_ext.cli._app import EXIT_ERROR, out, print_json
from mlflow_ext.errors import MlflowExtError

app = typer.Typer(name="policy", help="Policy files: validate them.", no_args_is_help=True)


def _options(spec: dict[str, Any], name_key: str) -> str:
    name = spec.get(name_key, "?")
    options = ", ".join(f"{k}={v!r}" for k, v in spec.items() if k != name_key)
    return f"{name}({options})"


def _detectors(written: dict[str, Any]) -> str:
    def one(value: Any) -> str:
        return value if isinstance(value, str) else _options(value, "detector")

    slots = [f"{slot} {one(v)}" for slot, v in written.items() if slot != "columns"]
    slots += [f"column {column!r} {one(v)}" for column, v in written.get("columns", {}).items()]
    return ", ".join(slots) or "default"


def _render(path: str, models: dict[str, dict[str, Any]]) -> None:
    out.print(f"[bold green]{path} is valid[/]: {len(models)} model(s).")
    for name, model in models.items():
        table = Table(title=f"{name} (alias {model['alias']})", show_header=False)
        check = model["check"]
        table.add_row("check", f"alpha {check['alpha']}, correction {check['correction']}, "
                               f"drift_share {check['drift_share']}, detectors: {_detectors(check['detectors'])}")
        incident = model["incident"]
        floors = ", ".join(f"{k} >= {v:g}" for k, v in incident["floors"].items()) or "none"
        table.add_row("incident", f"drift -> {incident['drift']}, performance drop -> {incident['performance_drop']}, "
                                  f"floors {floors}, {incident['n']} of the last {incident['m']} window(s)")
        table.add_row("alerts", ", ".join(a["hook"] for a in model["alerts"]) or "none")
        retrain = model["retrain"]
        table.add_row("retrain", "none" if retrain is None else
                      f"{retrain['hook']}, cooldown {retrain['cooldown']:g} s")
        rules = model["promotion"]["rules"]
        table.add_row("promotion", f"reference {model['promotion']['reference']}; rules: "
                                   + ("; ".join(_options(r, "rule") for r in rules) or "none"))
        out.print(table)


@app.command("check")
def check_command(
    file: Annotated[Path, typer.Argument(help="The policy TOML file.")],
    skip_environment: Annotated[bool, typer.Option(
        "--skip-environment",
        help="Don't check the machine for the hooks (programs on the PATH, secrets in the environment).",
    )] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Validate a policy file: every section, rule, detector and hook with its options; exit 1 if invalid."""
    from mlflow_ext.policy import load_policy

    try:
        policy = load_policy(file, check_environment=not skip_environment)
    except MlflowExtError as exc:
        if not as_json:
            raise
        print_json({"path": str(file), "valid": False, "error": exc.message, "hint": exc.hint})
        raise typer.Exit(EXIT_ERROR) from None
    models = {name: model.to_dict() for name, model in policy.models.items()}
    if as_json:
        print_json({"path": str(file), "valid": True, "version": policy.version, "models": models})
    else:
        _render(str(file), models)
