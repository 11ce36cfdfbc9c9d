"""Performance estimation benchmark: mlflow-ext's CBPE and DLE against NannyML's on the same data.

Two seeded streams (the generators of tests/test_estimation.py), each a labelled reference
(validation) set followed by chunks:

- cbpe, binary classification: chunks with no shift, with covariate shift (mass moved to the
  uncertain middle: accuracy falls, the label relation holds) and with concept drift (labels
  flipped where x0 > 1: invisible to both estimators);
- dle, regression with noise that grows with |a|: chunks with no shift, then with ``a`` shifted by
  one sd into the noisy region (MAE and RMSE rise).

Both estimators get the same features, scores, predictions and chunks (Parquet). Prints the
estimates side by side per chunk with the realized values, and the time each takes to fit and
estimate (median of --repeats, imports excluded; NannyML's import time reported apart). Writes
bench/results/estimation.md and estimation.json.

    bash bench/setup_nannyml.sh                      # once: NannyML's own venv
    .venv/bin/python bench/bench_estimation.py       # the full run
    .venv/bin/python bench/bench_estimation.py --chunk 1000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
NANNYML = HERE / ".venvs" / "nannyml" / "bin" / "python"
METRICS = {"cbpe": ("accuracy", "precision", "recall", "f1", "roc_auc"), "dle": ("mae", "rmse")}
SHOWN = {"cbpe": ("accuracy", "f1", "roc_auc"), "dle": ("mae", "rmse")}
SCENARIOS = {"cbpe": (("none", 8), ("covariate shift", 8), ("concept drift", 4)),
             "dle": (("none", 8), ("covariate shift", 8))}
FEATURES = ["a", "b"]
WEIGHTS = np.array([2.0, -1.5])


def draw_classification(rng: np.random.Generator, n: int, scenario: str) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(0.0, 0.6 if scenario == "covariate shift" else 1.5, size=(n, 2))
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ WEIGHTS + 0.3)))).astype(int)
    if scenario == "concept drift":
        region = x[:, 0] > 1.0
        y[region] = 1 - y[region]
    return x, y


def draw_regression(rng: np.random.Generator, n: int, scenario: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.column_stack([rng.normal(1.0 if scenario == "covariate shift" else 0.0, 1.0, n), rng.normal(0, 1, n)])
    noise = rng.normal(0.0, 1.0, n) * (0.2 + 0.8 * np.abs(x[:, 0]))
    return x, 2 * x[:, 0] - x[:, 1] + noise


def make_data(folder: Path, task: str, reference_rows: int, chunk: int, seed: int) -> None:
    """{task}-reference.parquet and {task}-analysis.parquet: features, model output, label, scenario."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    rng = np.random.default_rng(seed)
    draw = draw_classification if task == "cbpe" else draw_regression
    model = (LogisticRegression() if task == "cbpe" else LinearRegression()).fit(*draw(rng, 5000, "none"))

    def frame(x: np.ndarray, y: np.ndarray, scenario: str) -> pd.DataFrame:
        out = pd.DataFrame(x, columns=FEATURES).assign(y=y, scenario=scenario)
        if task == "cbpe":
            proba = model.predict_proba(x)[:, 1]
            return out.assign(proba=proba, pred=(proba > 0.5).astype(int))
        return out.assign(pred=model.predict(x))

    frame(*draw(rng, reference_rows, "none"), "reference").to_parquet(folder / f"{task}-reference.parquet")
    chunks = [frame(*draw(rng, chunk, scenario), scenario) for scenario, count in SCENARIOS[task] for _ in range(count)]
    pd.concat(chunks, ignore_index=True).to_parquet(folder / f"{task}-analysis.parquet")


def scores(frame: pd.DataFrame) -> np.ndarray:
    return np.column_stack([1 - frame["proba"].to_numpy(), frame["proba"].to_numpy()])


def run_ours(folder: Path, task: str, chunk: int, repeats: int) -> dict[str, Any]:
    from mlflow_ext.estimation import estimate, fit_cbpe, fit_dle, realized

    reference = pd.read_parquet(folder / f"{task}-reference.parquet")
    analysis = pd.read_parquet(folder / f"{task}-analysis.parquet")
    parts = [analysis.iloc[i:i + chunk] for i in range(0, len(analysis), chunk)]
    times, rows, actual = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        if task == "cbpe":
            model: Any = fit_cbpe(reference["y"].to_numpy(), scores(reference), classes=[0, 1])
            rows = [estimate(model, scores(part)) for part in parts]
        else:
            model = fit_dle(reference[FEATURES], reference["pred"].to_numpy(), reference["y"].to_numpy())
            rows = [estimate(model, part["pred"].to_numpy(), features=part[FEATURES]) for part in parts]
        times.append(time.perf_counter() - start)
    outputs = [scores(part) if task == "cbpe" else part["pred"].to_numpy() for part in parts]
    actual = [realized(model, part["y"].to_numpy(), out) for part, out in zip(parts, outputs, strict=True)]
    return {
        "seconds": statistics.median(times),
        "scenarios": [part["scenario"].iloc[0] for part in parts],
        "chunks": [{m.name: [m.value, m.band_low, m.band_high] for m in row} for row in rows],
        "realized": [{m.name: m.value for m in row} for row in actual],
    }


def run_nannyml(folder: Path, task: str, chunk: int, repeats: int) -> dict[str, Any]:
    """Runs inside NannyML's venv (this file re-invoked with --nannyml): no mlflow_ext imports here."""
    start = time.perf_counter()
    import nannyml

    import_seconds = time.perf_counter() - start
    reference = pd.read_parquet(folder / f"{task}-reference.parquet")
    analysis = pd.read_parquet(folder / f"{task}-analysis.parquet").drop(columns=["y"])
    metrics = list(METRICS[task])
    times, table = [], pd.DataFrame()
    for _ in range(repeats):
        start = time.perf_counter()
        if task == "cbpe":
            estimator: Any = nannyml.CBPE(y_pred_proba="proba", y_pred="pred", y_true="y", metrics=metrics,
                                          problem_type="classification_binary", chunk_size=chunk)
        else:
            estimator = nannyml.DLE(feature_column_names=FEATURES, y_pred="pred", y_true="y", metrics=metrics,
                                    chunk_size=chunk)
        estimator.fit(reference)
        table = estimator.estimate(analysis).filter(period="analysis").to_df()
        times.append(time.perf_counter() - start)
    chunks = [{name: [float(table[(name, column)].iloc[i])
                      for column in ("value", "lower_confidence_boundary", "upper_confidence_boundary")]
               for name in metrics} for i in range(len(table))]
    return {"seconds": statistics.median(times), "import_seconds": import_seconds, "chunks": chunks,
            "version": nannyml.__version__}


def nannyml_subprocess(folder: Path, task: str, chunk: int, repeats: int) -> dict[str, Any] | None:
    if not NANNYML.exists():
        print(f"NannyML venv missing ({NANNYML}); run: bash bench/setup_nannyml.sh", file=sys.stderr)
        return None
    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([str(NANNYML), __file__, "--nannyml", str(folder), "--task", task, "--chunk", str(chunk),
                          "--repeats", str(repeats)], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        print(f"NannyML {task} run failed:\n{out.stderr[-3000:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def cell(values: list[float]) -> str:
    value, low, high = values
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def inside(values: list[float], actual: float) -> bool:
    return values[1] <= actual <= values[2]


def summary(chunks: list[dict[str, list[float]]], realized: list[dict[str, float]], name: str,
            rows: list[int]) -> tuple[str, str]:
    """How often the realized value falls in the band, and the mean absolute estimation error."""
    hits = sum(inside(chunks[i][name], realized[i][name]) for i in rows)
    error = np.mean([abs(chunks[i][name][0] - realized[i][name]) for i in rows])
    return f"{hits}/{len(rows)}", f"{error:.4f}"


def section(task: str, ours: dict[str, Any], peer: dict[str, Any] | None, chunk: int,
            reference_rows: int) -> list[str]:
    """One task's Markdown: per-chunk tables, summary, time."""
    method = task.upper()
    scenarios = ours["scenarios"]
    lines = [f"## {method}: mlflow-ext vs NannyML\n",
             f"Reference {reference_rows} rows, {len(scenarios)} chunks of {chunk} rows. Bands: ours 95% "
             "(1.96 sd), NannyML ±3 sd (its default). Cells: estimate [band].\n"]
    for name in SHOWN[task]:
        lines += [f"### {name}\n", "| chunk | scenario | realized | mlflow-ext | NannyML |",
                  "| --- | --- | --- | --- | --- |"]
        for i, scenario in enumerate(scenarios):
            actual = ours["realized"][i][name]
            nml = cell(peer["chunks"][i][name]) if peer else "n/a"
            lines.append(f"| {i} | {scenario} | {actual:.3f} | {cell(ours['chunks'][i][name])} | {nml} |")
        lines.append("")
    lines += [f"### {method} summary (chunks without concept drift)\n",
              "| metric | realized within band: mlflow-ext | NannyML | mean abs error: mlflow-ext | NannyML "
              "| mean abs gap ours vs NannyML |", "| --- | --- | --- | --- | --- | --- |"]
    honest = [i for i, s in enumerate(scenarios) if s != "concept drift"]
    for name in METRICS[task]:
        o_hits, o_err = summary(ours["chunks"], ours["realized"], name, honest)
        p_hits, p_err = summary(peer["chunks"], ours["realized"], name, honest) if peer else ("n/a", "n/a")
        gap = (f"{np.mean([abs(ours['chunks'][i][name][0] - peer['chunks'][i][name][0]) for i in honest]):.4f}"
               if peer else "n/a")
        lines.append(f"| {name} | {o_hits} | {p_hits} | {o_err} | {p_err} | {gap} |")
    lines += ["", f"### {method} time (fit + estimate every chunk; median, imports excluded)\n",
              "| estimator | seconds | ratio to mlflow-ext |", "| --- | --- | --- |",
              f"| mlflow-ext {method} | {ours['seconds']:.3f} | 1.0 |"]
    if peer:
        ratio = peer["seconds"] / ours["seconds"]
        lines += [f"| NannyML {peer['version']} {method} | {peer['seconds']:.3f} | {ratio:.1f} |",
                  f"\nNannyML import: {peer['import_seconds']:.1f} s (not counted above).\n"]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-rows", type=int, default=5000)
    parser.add_argument("--chunk", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", choices=sorted(METRICS), action="append", help="default: both")
    parser.add_argument("--nannyml", type=Path, help=argparse.SUPPRESS)  # internal: run the peer in its venv
    args = parser.parse_args()
    tasks = args.task or sorted(METRICS)
    if args.nannyml is not None:
        print(json.dumps(run_nannyml(args.nannyml, tasks[0], args.chunk, args.repeats)))
        return
    lines, raw = ["# Performance estimation without labels: mlflow-ext vs NannyML\n"], {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for task in tasks:
            make_data(folder, task, args.reference_rows, args.chunk, args.seed)
            ours = run_ours(folder, task, args.chunk, args.repeats)
            peer = nannyml_subprocess(folder, task, args.chunk, args.repeats)
            lines += section(task, ours, peer, args.chunk, args.reference_rows)
            raw[task] = {"ours": ours, "nannyml": peer}
    text = "\n".join(lines) + "\n"
    print(text)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "estimation.md").write_text(text, encoding="utf-8")
    (results / "estimation.json").write_text(json.dumps(raw, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
