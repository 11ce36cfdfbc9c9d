"""Model checks: check a batch against a registered model version and record it in MLflow.

``check_model("churn@champion", batch, labels=...)`` resolves the version, loads the reference
profile stored with it, checks the batch (quality and drift), scores the model's prediction drift
and, given labels, its performance against the version's validation metrics. With ``record=True``
the check becomes one run in the experiment ``mlflow-ext/<model>``: per-column drift metrics,
drift share, performance and (when the version has an estimator) performance estimated without
labels, ``est.<metric>`` with its band, at ``step`` = the window index (so the MLflow UI charts them over
time), tags, a two-line description, ``check.json``, ``report.html`` and ``plots/*.png``. Only
then are the version's ``mlflow_ext.last_check.*`` tags set, so a tag never points at a run that
was not recorded.

``status_table()`` reads the fleet back: every registered model, its champion and challenger, its
last check and performance trend.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlflow_ext import tracking
from mlflow_ext.checks import CheckResult, EstimatedPerformance, PerformanceMetric, check, with_model_findings
from mlflow_ext.detectors import ColumnDrift
from mlflow_ext.errors import ConfigError, DataError
from mlflow_ext.profile import Profile, validate_frame

if TYPE_CHECKING:
    from mlflow.entities import Run

__all__ = [
    "CheckSummary",
    "ModelCheck",
    "ModelStatus",
    "check_model",
    "metric_key",
    "recent_checks",
    "status_table",
]

P = tracking.TAG_PREFIX
KIND_CHECK = "check"
PREDICTION = "prediction"
PROBA_PREFIX = "proba_"
ESTIMATED = "est."  # metric keys of estimated performance: mlflow_ext.est.<metric>[.band_low|.band_high]
TREND_LENGTH = 20
_SAFE_KEY = re.compile(r"[^A-Za-z0-9_\-. ]")


@dataclass(frozen=True)
class ModelCheck:
    """One check of a batch against a model version, and where it was recorded."""

    result: CheckResult
    model: str
    version: str
    alias: str | None
    step: int
    timestamp: str  # ISO 8601 UTC of the batch
    batch_fingerprint: str
    n_labelled: int
    metric_keys: Mapping[str, str] = field(default_factory=dict)  # column -> key part of its metrics
    run_id: str | None = None
    report_uri: str | None = None

    @property
    def status(self) -> str:
        return self.result.status

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: the check result and its context (what check.json holds, plus the run)."""
        document = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "result"}
        document["metric_keys"] = dict(self.metric_keys)
        return {"result": self.result.to_dict(), **document}


@dataclass(frozen=True)
class CheckSummary:
    """A recorded check as read back from MLflow (for trends and the status table)."""

    run_id: str
    version: str
    step: int
    status: str
    time: str  # ISO 8601 UTC when it was recorded
    drift_share: float | None
    drifted_columns: tuple[str, ...]
    performance: Mapping[str, float] = field(default_factory=dict)
    estimated: Mapping[str, tuple[float, float, float]] = field(default_factory=dict)  # (value, band_low, band_high)


@dataclass(frozen=True)
class ModelStatus:
    """One registered model's health: its aliases, last check and performance trend (oldest first)."""

    model: str
    champion: str | None
    challenger: str | None
    last_check: CheckSummary | None
    performance_metric: str | None
    performance_trend: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- metric keys ----------------------------------------------------------------------------------


def metric_key(column: str) -> str:
    """The metric-key part for a column: the name when MLflow accepts it as is, else a sanitized
    name plus a hash of the original, so two columns never share a key and reruns agree."""
    if column and len(column) <= 120 and not _SAFE_KEY.search(column) and column.strip() == column:
        return column
    digest = hashlib.sha1(column.encode("utf-8")).hexdigest()[:8]
    return f"{_SAFE_KEY.sub('_', column).strip()[:100]}-{digest}"


# -- the check ------------------------------------------------------------------------------------


def check_model(
    model_ref: str,
    batch: pd.DataFrame | str | Path,
    *,
    labels: pd.DataFrame | str | Path | None = None,
    id_column: str | None = None,
    step: int | None = None,
    timestamp: datetime | str | None = None,
    record: bool = True,
    detectors: Mapping[str, Any] | None = None,
    alpha: float = 0.05,
    correction: str = "holm",
    drift_share: float = 0.5,
    min_drifted: int | None = None,
    tolerance: float = 0.02,
    n_boot: int = 1000,
    seed: int = 0,
    tags: Mapping[str, str] | None = None,
    profile: Profile | None = None,
) -> ModelCheck:
    """Check a batch against a model version (``MODEL``, ``MODEL@ALIAS``, ``MODEL/VERSION``; default
    alias champion) and, with ``record``, log it as a run and tag the version with its last check.

    ``labels`` (a frame or CSV/Parquet file) holds ``id_column`` and the version's target column and
    is joined to the batch by id; labels may also be a target column inside the batch. ``step`` is
    the window index (default: one more than the model's last recorded check); ``timestamp`` the
    batch's time (default now). ``tolerance`` is the relative margin a metric must lose, significantly,
    to count as degraded. ``tags`` are added to the check run in the same write as the rest, so the
    run never exists without them. ``profile`` replaces the version's reference profile for the
    feature drift checks (a monitor that keeps an older reference after a promotion); prediction
    drift and performance still compare with the version's own.
    """
    from mlflow_ext.performance import evaluate

    parsed = tracking.parse_model_ref(model_ref)
    version = tracking.resolve_version(parsed)
    name, number = str(version.name), str(version.version)
    reference = tracking.load_version_reference(version)
    frame = _as_frame(batch, "The batch")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise ConfigError(f"step: expected a window index >= 0, got {step!r}.")
    when = _timestamp(timestamp)
    if id_column is not None and id_column not in frame.columns:
        raise DataError(f"The batch has no id column {id_column!r}. Columns: {_names(frame.columns)}.",
                        hint="Pass --id-column with the name of the batch's row id column.")
    labelled = _labels(frame, labels, id_column, reference.target)
    features = frame.drop(columns=[c for c in (id_column, reference.target) if c is not None and c in frame])
    settings = dict(alpha=alpha, correction=correction, drift_share=drift_share, min_drifted=min_drifted)
    baseline = reference.profile if profile is None else profile
    result = check(baseline, features, detectors=detectors, **settings)  # type: ignore[arg-type]
    prediction_drift: tuple[ColumnDrift, ...] = ()
    performance: tuple[PerformanceMetric, ...] = ()
    if result.status != "error" and (reference.predictions is not None or labelled is not None):
        outputs = _score(name, number, features, reference.features, required=labelled is not None)
        if outputs is not None and reference.predictions is not None:
            common = [c for c in reference.predictions.columns if c in outputs.columns]
            if common:
                prediction_drift = check(reference.predictions, outputs[common], alpha=alpha,
                                         correction=correction).drift
        if outputs is not None and labelled is not None:
            rows, truth = labelled
            classes = [c[len(PROBA_PREFIX):] for c in outputs.columns if c.startswith(PROBA_PREFIX)]
            proba = outputs[[PROBA_PREFIX + c for c in classes]].to_numpy()[rows] if classes else None
            performance = evaluate(
                reference.task, _align(truth, classes), _align(outputs[PREDICTION].to_numpy()[rows], classes),
                proba=proba, classes=classes or None, reference=reference.validation, alpha=alpha,
                tolerance=tolerance, n_boot=n_boot, seed=seed,
            )
        result = with_model_findings(result, prediction_drift=prediction_drift, performance=performance)
        result = dataclasses.replace(result, estimated=_estimated(reference, features, outputs))
    columns = [r.column for r in (*result.drift, *result.prediction_drift)]
    outcome = ModelCheck(
        result=result, model=name, version=number, alias=parsed.alias if parsed.version is None else None,
        step=step if step is not None else _next_step(name),
        timestamp=when.isoformat(timespec="seconds").replace("+00:00", "Z"),
        batch_fingerprint=_fingerprint(frame), n_labelled=0 if labelled is None else len(labelled[0]),
        metric_keys={c: metric_key(c) for c in dict.fromkeys(columns)},
    )
    if not record:
        return outcome
    return _record(outcome, baseline, features, when, tags or {})


def _as_frame(data: pd.DataFrame | str | Path, what: str) -> pd.DataFrame:
    if isinstance(data, (str, Path)):
        from mlflow_ext._io import read_frame

        return read_frame(data)
    return validate_frame(data, what)


def _names(names: Sequence[Any] | pd.Index, limit: int = 8) -> str:
    items = [str(n) for n in names]
    return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _timestamp(value: datetime | str | None) -> datetime:
    if value is None:
        return datetime.now(timezone.utc)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(f"timestamp: expected ISO 8601 (e.g. 2026-05-01T12:00:00Z), got {value!r}.") from exc
    if not isinstance(value, datetime):
        raise ConfigError(f"timestamp: expected a datetime or an ISO 8601 string, got {type(value).__name__}.")
    # a naive time is taken as UTC: batches are stamped by machines, not by local clocks
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _fingerprint(frame: pd.DataFrame) -> str:
    """A hash of the batch's content and column names (the same data gives the same fingerprint)."""
    digest = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode("utf-8"))
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _labels(frame: pd.DataFrame, labels: pd.DataFrame | str | Path | None, id_column: str | None,
            target: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The batch rows that have a label and their labels, or None when there are no labels."""
    if labels is None:
        if target is None or target not in frame.columns:
            return None
        known = frame[target].notna().to_numpy()
        return np.flatnonzero(known), frame[target].to_numpy()[known]
    if target is None:
        raise DataError("The model version does not name its target column (tag mlflow_ext.target), "
                        "so labels cannot be matched to it.",
                        hint="Register the model with @track, or set the version tag mlflow_ext.target.")
    if id_column is None:
        raise ConfigError("labels need an id column to be joined to the batch.",
                          hint="Pass --id-column (id_column=...) naming the row id in both files.")
    table = _as_frame(labels, "The labels")
    missing = [c for c in (id_column, target) if c not in table.columns]
    if missing:
        raise DataError(f"The labels have no column {missing[0]!r}; they need {id_column!r} (id) and "
                        f"{target!r} (target). Columns: {_names(table.columns)}.")
    table = table[table[target].notna()]
    for what, ids in (("batch", frame[id_column]), ("labels", table[id_column])):
        repeated = ids[ids.duplicated()]
        if len(repeated):
            raise DataError(f"The {what} repeat {len(repeated)} id(s) in {id_column!r}, e.g. "
                            f"{_names(repeated.unique()[:3])}; each row needs its own id.")
    rows = pd.Index(frame[id_column]).get_indexer(table[id_column])
    unmatched = table[id_column][rows < 0]
    if len(unmatched):
        raise DataError(
            f"{len(unmatched)} of {len(table)} label id(s) match no row of the batch, e.g. "
            f"{', '.join(repr(v) for v in unmatched[:3].tolist())} (batch ids look like "
            f"{', '.join(repr(v) for v in frame[id_column][:3].tolist())}).",
            hint="Check that the labels belong to this batch and that the id columns have the same type.",
        )
    if not len(table):
        raise DataError("The labels have no non-null target value.", hint=f"Fill the {target!r} column.")
    return rows, table[target].to_numpy()


def _align(values: np.ndarray, classes: list[str]) -> np.ndarray:
    """Labels as the strings that name the probability columns, so truth and classes compare."""
    return np.asarray([str(v) for v in values.tolist()]) if classes else values


# -- the model's outputs ---------------------------------------------------------------------------


def _score(name: str, version: str, features: pd.DataFrame, wanted: Sequence[str],
           *, required: bool) -> pd.DataFrame | None:
    """The model's outputs on the batch, as @track stored them for the reference: ``prediction`` and,
    for classifiers, ``proba_<class>``. None when the batch lacks features and nothing needs them."""
    columns = list(wanted) or [c for c in features.columns]
    missing = [c for c in columns if c not in features.columns]
    if missing:
        if not required:
            return None  # the check already reports the missing columns
        raise DataError(f"The model needs feature column(s) the batch lacks: {_names(missing)}, so it "
                        "cannot be scored against the labels.",
                        hint="Send the batch with every feature the model was trained on.")
    import mlflow.pyfunc

    uri = f"models:/{name}/{version}"
    with tracking.mlflow_errors(f"load the model {uri}"):
        model = mlflow.pyfunc.load_model(uri)
    try:
        raw = model.get_raw_model()
    except NotImplementedError:
        raw = None
    inputs = features[columns]
    try:
        if raw is not None and hasattr(raw, "predict_proba") and hasattr(raw, "classes_"):
            proba = np.asarray(raw.predict_proba(inputs), dtype=np.float64)
            classes = [str(c) for c in raw.classes_]
            frame = pd.DataFrame(proba, columns=[PROBA_PREFIX + c for c in classes])
            frame.insert(0, PREDICTION, np.asarray(raw.classes_)[proba.argmax(axis=1)])
            return frame
        predicted = np.asarray(model.predict(inputs))
    except Exception as exc:  # noqa: BLE001 - any model failure is reported as unusable input
        raise DataError(f"Model {uri} failed to score the batch: {type(exc).__name__}: {exc}",
                        hint="Check the batch's columns and types against the model's signature.") from exc
    return pd.DataFrame({PREDICTION: predicted.reshape(len(inputs), -1)[:, 0]})


def _estimated(reference: tracking.VersionReference, features: pd.DataFrame,
               outputs: pd.DataFrame | None) -> tuple[EstimatedPerformance, ...]:
    """The version's metrics estimated on the whole batch without labels (CBPE or DLE), when it has
    an estimator; each with its band and the value realized on the validation rows."""
    from mlflow_ext.estimation import CBPEModel, estimate

    estimator = None if outputs is None else reference.estimator
    if outputs is None or estimator is None:
        return ()
    if isinstance(estimator, CBPEModel):
        columns = [PROBA_PREFIX + str(c) for c in estimator.classes]
        if any(c not in outputs.columns for c in columns):
            raise DataError(f"The model's scores have columns {_names(outputs.columns)}, but its estimator was "
                            f"fitted on the classes {list(estimator.classes)}.",
                            hint="Register the model again with @track so the estimator matches it.")
        found = estimate(estimator, outputs[columns].to_numpy())
    else:
        found = estimate(estimator, outputs[PREDICTION].to_numpy(), features=features)
    realized = {m.name: m.value for m in estimator.reference}
    return tuple(EstimatedPerformance(m.name, m.value, m.band_low, m.band_high, m.method, realized.get(m.name))
                 for m in found if math.isfinite(m.value))


# -- recording ------------------------------------------------------------------------------------


def _record(outcome: ModelCheck, reference: Profile, features: pd.DataFrame, when: datetime,
            extra_tags: Mapping[str, str]) -> ModelCheck:
    from mlflow_ext.report import render_report

    experiment_id = tracking.monitoring_experiment(outcome.model)
    trend = (*reversed(recent_checks(outcome.model)), _summary_of(outcome))
    report = render_report(outcome.result, title=f"{outcome.model} version {outcome.version}",
                           subtitle=_context_line(outcome), reference=reference, current=features, trend=trend)
    result = outcome.result
    tags = {
        f"{P}kind": KIND_CHECK, f"{P}model": outcome.model, f"{P}version": outcome.version,
        f"{P}status": result.status, f"{P}step": str(outcome.step),
        f"{P}batch_fingerprint": outcome.batch_fingerprint, f"{P}batch_time": outcome.timestamp,
        f"{P}drifted_columns": json.dumps(list(result.drifted_columns))[:5000],
    }
    if outcome.alias:
        tags[f"{P}alias"] = outcome.alias
    tags = {**extra_tags, **tags}  # the caller's tags never overwrite what the check itself says
    artifacts: dict[str, bytes | str | Path] = {"check.json": tracking.to_json_bytes(outcome.to_dict()),
                                                "report.html": report.html}
    artifacts.update({f"plots/{name}": png for name, png in report.plots.items()})
    run_id = tracking.log_run(
        experiment_id, run_name=f"check {outcome.model}/{outcome.version} #{outcome.step}",
        metrics=metric_points(outcome, int(when.timestamp() * 1000)), tags=tags,
        params={"alpha": result.settings.alpha, "correction": result.settings.correction,
                "drift_share": result.settings.drift_share},
        description=describe(outcome), artifacts=artifacts,
    )
    tracking.set_version_tags(outcome.model, outcome.version, {
        f"{P}last_check.status": result.status, f"{P}last_check.run_id": run_id,
        f"{P}last_check.time": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
    })
    return dataclasses.replace(outcome, run_id=run_id, report_uri=f"runs:/{run_id}/report.html")


def metric_values(result: CheckResult, *, n_labelled: int = 0) -> dict[str, float]:
    """The metrics a recorded check logs, by key (drift per column, drift share, performance).

    One naming for every place that logs check metrics (check runs, late labels, the evaluator),
    so the MLflow UI charts them as one series.
    """
    values: dict[str, float | None] = {
        f"{P}drift_share": result.drift_share, f"{P}n_drifted": len(result.drifted_columns),
        f"{P}n_rows": result.n_rows,
    }
    for group, drift in (("drift", result.drift), ("prediction_drift", result.prediction_drift)):
        for r in drift:
            base = f"{P}{group}.{metric_key(r.column)}"
            values.update({f"{base}.statistic": r.statistic, f"{base}.p_value": r.p_value,
                           f"{base}.effect_size": r.effect_size})
            if group == "prediction_drift" and r.column == PREDICTION:
                values[f"{P}prediction_drift.statistic"] = r.statistic
    for m in result.performance:
        base = f"{P}perf.{m.name}"
        values.update({base: m.value, f"{base}.ci_low": m.ci_low, f"{base}.ci_high": m.ci_high,
                       f"{base}.p_value": m.p_value})
    if result.performance:
        values[f"{P}perf.n_labelled"] = n_labelled
    # same names after the prefix as perf.*, so the MLflow UI charts estimate and realized side by side
    for e in result.estimated:
        base = f"{P}{ESTIMATED}{e.name}"
        values.update({base: e.value, f"{base}.band_low": e.band_low, f"{base}.band_high": e.band_high})
    return {key: float(v) for key, v in values.items() if v is not None and math.isfinite(v)}


def metric_points(outcome: ModelCheck, timestamp_ms: int) -> list[tracking.MetricPoint]:
    """The metrics of a model check at its window's step and the batch's time."""
    values = metric_values(outcome.result, n_labelled=outcome.n_labelled)
    return [tracking.MetricPoint(key, v, outcome.step, timestamp_ms) for key, v in values.items()]


def describe(outcome: ModelCheck) -> str:
    """The run's two-line Markdown description: the verdict with its evidence, then the context."""
    result = outcome.result
    if result.status == "error":
        head = f"ERROR: {result.reasons[0]}"
    else:
        drifted = result.drifted_columns
        shown = ", ".join(drifted[:5]) + (f" and {len(drifted) - 5} more" if len(drifted) > 5 else "")
        head = (f"{result.status.upper()}: {len(drifted)} of {result.n_tested} columns drifted"
                f"{f' ({shown})' if drifted else ''}")
        for m in result.performance[:1]:
            ci = "" if m.ci_low is None or m.ci_high is None else f" [{m.ci_low:.2f}, {m.ci_high:.2f}]"
            ref = "" if m.reference is None else f" vs {m.reference:.2f} at validation"
            head += f"; {m.name} {m.value:.2f}{ci}{ref}"
        for e in () if result.performance else result.estimated[:1]:  # the estimate only stands in for labels
            ref = "" if e.reference is None else f" vs {e.reference:.2f} at validation"
            head += f"; estimated {e.name} {e.value:.2f} [{e.band_low:.2f}, {e.band_high:.2f}]{ref}"
        head += "."
    return f"{head}  \n{_context_line(outcome)}"


def _context_line(outcome: ModelCheck) -> str:
    alias = f" (@{outcome.alias})" if outcome.alias else ""
    labelled = f", {outcome.n_labelled} labelled" if outcome.n_labelled else ""
    return (f"{outcome.model} version {outcome.version}{alias}, window {outcome.step}, "
            f"{outcome.result.n_rows} rows{labelled}, batch of {outcome.timestamp}.")


# -- reading checks back --------------------------------------------------------------------------


def _experiment_id(model: str) -> str | None:
    """The id of the model's monitoring experiment, or None: reading never creates it."""
    with tracking.mlflow_errors(f"read the monitoring experiment of {model!r}"):
        found = tracking.client().get_experiment_by_name(tracking.MONITORING_EXPERIMENT.format(model=model))
    return None if found is None or found.lifecycle_stage == "deleted" else str(found.experiment_id)


def _search_checks(model: str, limit: int) -> list[Run]:
    experiment_id = _experiment_id(model)
    if experiment_id is None:
        return []
    with tracking.mlflow_errors(f"read the checks of {model!r}"):
        return list(tracking.client().search_runs(
            [experiment_id], filter_string=f"tags.`{P}kind` = '{KIND_CHECK}'",
            order_by=["attributes.start_time DESC"], max_results=limit,
        ))


def _next_step(model: str) -> int:
    """One more than the step of the model's last recorded check; 0 for the first."""
    runs = _search_checks(model, 1)
    if not runs:
        return 0
    return int(runs[0].data.tags.get(f"{P}step", "-1")) + 1


def recent_checks(model: str, limit: int = TREND_LENGTH) -> tuple[CheckSummary, ...]:
    """The model's last ``limit`` recorded checks, newest first."""
    return tuple(_summary(run) for run in _search_checks(model, limit))


def _summary(run: Run) -> CheckSummary:
    tags, metrics = run.data.tags, run.data.metrics
    perf = f"{P}perf."
    try:
        drifted = tuple(json.loads(tags.get(f"{P}drifted_columns", "[]")))
    except ValueError:
        drifted = ()  # truncated for a very wide batch; the run's check.json has them all
    return CheckSummary(
        run_id=str(run.info.run_id), version=tags.get(f"{P}version", ""),
        step=int(tags.get(f"{P}step", "0")), status=tags.get(f"{P}status", "unknown"),
        time=datetime.fromtimestamp(run.info.start_time / 1000, timezone.utc).isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        drift_share=metrics.get(f"{P}drift_share"), drifted_columns=drifted,
        performance={k[len(perf):]: v for k, v in metrics.items() if k.startswith(perf) and k.count(".") == 2
                     and not k.endswith("n_labelled")},
        estimated=_estimated_metrics(metrics),
    )


def _estimated_metrics(metrics: Mapping[str, float]) -> dict[str, tuple[float, float, float]]:
    """The estimated metrics a check run logged: name -> (value, band_low, band_high)."""
    est = f"{P}{ESTIMATED}"
    names = [k[len(est):] for k in metrics if k.startswith(est) and k.count(".") == 2]
    return {n: (metrics[f"{est}{n}"], metrics.get(f"{est}{n}.band_low", math.nan),
                metrics.get(f"{est}{n}.band_high", math.nan)) for n in names}


def _summary_of(outcome: ModelCheck) -> CheckSummary:
    result = outcome.result
    return CheckSummary(
        run_id="", version=outcome.version, step=outcome.step, status=result.status,
        time=datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        drift_share=result.drift_share, drifted_columns=result.drifted_columns,
        performance={m.name: m.value for m in result.performance},
        estimated={e.name: (e.value, e.band_low, e.band_high) for e in result.estimated},
    )


def status_table(model: str | None = None) -> tuple[ModelStatus, ...]:
    """Every registered model (or one) with its champion, challenger, last check and performance trend."""
    mlflow_client = tracking.client()
    if model is not None:
        with tracking.mlflow_errors(f"find the registered model {model!r}"):
            models = [mlflow_client.get_registered_model(model)]
    else:
        models, token = [], None
        with tracking.mlflow_errors("list the registered models"):
            while True:
                page = mlflow_client.search_registered_models(max_results=200, page_token=token)
                models.extend(page)
                token = page.token
                if not token:
                    break
    rows = []
    for registered in sorted(models, key=lambda m: str(m.name)):
        name = str(registered.name)
        aliases = {str(k): str(v) for k, v in (registered.aliases or {}).items()}
        checks = recent_checks(name, limit=10)
        metric = next((m for m in ("accuracy", "mae", "roc_auc", "rmse", "f1", "r2")
                       if any(m in c.performance for c in checks)), None)
        trend = tuple(c.performance[metric] for c in reversed(checks) if metric in c.performance) if metric else ()
        rows.append(ModelStatus(
            model=name, champion=aliases.get(tracking.DEFAULT_ALIAS), challenger=aliases.get("challenger"),
            last_check=checks[0] if checks else None, performance_metric=metric, performance_trend=trend,
        ))
    return tuple(rows)
