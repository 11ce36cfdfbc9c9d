"""Check: one monitoring pass of a batch against a reference profile (quality, drift, status).

``check(reference, current)`` returns a frozen ``CheckResult``. Status, from worst to best:

- ``error``: the batch cannot be checked (no rows, no column in common with the reference);
- ``alert``: the share of drifted columns reached ``drift_share`` (or their count ``min_drifted``),
  a multivariate detector found drift, or a model metric degraded;
- ``warn``: some columns drifted below the alert share, a data-quality finding of severity warn
  (missing column, kind change, null-rate increase, all-null column, many out-of-range values or
  unseen categories, infinite values), or the model's predictions drifted;
- ``ok``: none of these.

A column drifts only when its effect size reaches the detector's threshold *and*, for tests with a
p-value, the p-value corrected for the number of tests (Holm by default) is at most ``alpha``.
Conventions are in docs/statistics.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlflow_ext import _registry
from mlflow_ext.builtin.detectors import (
    Raw,
    _Builtin,
    category_bins,
    reference_bins,
    reference_state,
)
from mlflow_ext.detectors import ColumnDrift, Detector, DetectorResult
from mlflow_ext.errors import ConfigError, DataError, MlflowExtError, PluginError
from mlflow_ext.profile import ColumnProfile, Profile, as_float, category_counts, column_kind, validate_frame

__all__ = [
    "CORRECTIONS",
    "CheckResult",
    "CheckSettings",
    "EstimatedPerformance",
    "PerformanceMetric",
    "QualityFinding",
    "adjust_pvalues",
    "check",
    "with_model_findings",
]

CORRECTIONS = ("holm", "bonferroni", "bh", "none")
DEFAULT_DETECTORS: dict[str, str | None] = {
    "numeric": "ks",
    "categorical": "chi2",
    "boolean": "chi2",
    "datetime": None,
}
_SPEC_KEYS = (*DEFAULT_DETECTORS, "columns", "overall")

Observed = Mapping[str, float | int | str | None]
DetectorSpec = str | Detector | None


@dataclass(frozen=True)
class QualityFinding:
    """One data-quality observation; severity info (recorded), warn (status warn) or error."""

    kind: str
    column: str | None
    severity: str
    message: str
    observed: Observed = field(default_factory=dict)


@dataclass(frozen=True)
class PerformanceMetric:
    """A model metric on a labelled batch against its reference value (filled by monitoring)."""

    name: str
    value: float
    reference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    degraded: bool = False


@dataclass(frozen=True)
class EstimatedPerformance:
    """A model metric estimated on an unlabelled batch (CBPE or DLE), with its band and reference.

    ``reference`` is the metric realized on the version's validation rows; a band that excludes it
    is a significant change (see mlflow_ext.estimation).
    """

    name: str
    value: float
    band_low: float
    band_high: float
    method: str
    reference: float | None = None


@dataclass(frozen=True)
class CheckSettings:
    """The decision settings a result was computed with (kept to recompute its status)."""

    alpha: float = 0.05
    correction: str = "holm"
    drift_share: float = 0.5
    min_drifted: int | None = None
    max_null_increase: float = 0.05
    max_new_share: float = 0.01


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: status, the sentences that say why, and every finding."""

    status: str
    reasons: tuple[str, ...]
    n_rows: int
    drift: tuple[ColumnDrift, ...]
    quality: tuple[QualityFinding, ...]
    drifted_columns: tuple[str, ...]
    drift_share: float
    n_tested: int
    settings: CheckSettings
    overall: tuple[ColumnDrift, ...] = ()
    prediction_drift: tuple[ColumnDrift, ...] = ()
    performance: tuple[PerformanceMetric, ...] = ()
    estimated: tuple[EstimatedPerformance, ...] = ()  # filled by monitoring when the version has an estimator

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; ``CheckResult.from_dict`` reads it back."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        """Read back the output of ``to_dict``; DataError when it is not one."""
        try:
            return cls(
                status=str(data["status"]),
                reasons=tuple(str(r) for r in data["reasons"]),
                n_rows=int(data["n_rows"]),
                drift=tuple(ColumnDrift(**d) for d in data["drift"]),
                quality=tuple(
                    QualityFinding(**{**q, "observed": dict(q.get("observed", {}))}) for q in data["quality"]
                ),
                drifted_columns=tuple(str(c) for c in data["drifted_columns"]),
                drift_share=float(data["drift_share"]),
                n_tested=int(data["n_tested"]),
                settings=CheckSettings(**data["settings"]),
                overall=tuple(ColumnDrift(**d) for d in data.get("overall", ())),
                prediction_drift=tuple(ColumnDrift(**d) for d in data.get("prediction_drift", ())),
                performance=tuple(PerformanceMetric(**m) for m in data.get("performance", ())),
                estimated=tuple(EstimatedPerformance(**m) for m in data.get("estimated", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"Not a check result: {type(exc).__name__}: {exc}") from exc


# -- multiple testing ---------------------------------------------------------------------------


def adjust_pvalues(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """P-values adjusted for multiple tests: holm, bonferroni, bh (Benjamini-Hochberg) or none."""
    _check_correction(method)
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0 or method == "none":
        return [float(x) for x in p]
    if method == "bonferroni":
        return [float(x) for x in np.minimum(p * m, 1.0)]
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adjusted = np.maximum.accumulate(ranked * (m - np.arange(m)))
    else:  # bh: step-up, so the running minimum is taken from the largest p-value down
        adjusted = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return [float(x) for x in out]


def _check_correction(method: str) -> None:
    if method not in CORRECTIONS:
        raise ConfigError(f"correction: unknown method {method!r}. Valid: {', '.join(CORRECTIONS)}.")


# -- the check --------------------------------------------------------------------------------


def check(
    reference: Profile,
    current: pd.DataFrame,
    *,
    detectors: Mapping[str, Any] | None = None,
    alpha: float = 0.05,
    correction: str = "holm",
    drift_share: float = 0.5,
    min_drifted: int | None = None,
    max_null_increase: float = 0.05,
    max_new_share: float = 0.01,
) -> CheckResult:
    """Check a batch against a reference profile: data quality, drift per column, status and reasons.

    ``detectors`` chooses the detector per column kind and per column, by registered name or as a
    configured instance, ``None`` to skip; e.g. ``{"numeric": "psi", "columns": {"id": None, "x":
    "wasserstein"}, "overall": MyMultivariate()}``. Defaults: numeric ks, categorical and boolean
    chi2, datetime none. Another kind of batch (a Spark DataFrame) is checked by the installed engine
    that accepts it.
    """
    if not isinstance(reference, Profile):
        raise DataError(f"reference must be a Profile, got {type(reference).__name__}.",
                        hint="Load one with Profile.load(path) or build it with Profile.from_frame(df).")
    if not isinstance(current, pd.DataFrame):
        from mlflow_ext.engines import engine_for

        return engine_for(current, "The current batch").check(
            reference, current, detectors=detectors, alpha=alpha, correction=correction, drift_share=drift_share,
            min_drifted=min_drifted, max_null_increase=max_null_increase, max_new_share=max_new_share,
        )
    current = validate_frame(current, "The current batch")
    settings = _settings(alpha, correction, drift_share, min_drifted, max_null_increase, max_new_share)
    plan, overall_detector = _plan(reference, detectors)
    return _run_check(_Run(reference, current, settings, plan), overall_detector)


def _run_check(run: _Run, overall_detector: Detector | None) -> CheckResult:
    """Every finding and test of a prepared run, then its status (engines call this too)."""
    reference, settings = run.reference, run.settings
    if run.n_rows == 0:
        return _error_result(settings, 0, "empty_batch", "The batch is empty (0 rows); nothing to check.")
    common = [name for name in reference.columns if name in run.current.columns]
    if not common:
        return _error_result(
            settings, run.n_rows, "no_common_columns",
            f"The batch has no column in common with the reference: batch {_names(run.current.columns)}, "
            f"reference {_names(reference.columns)}.",
        )
    run.schema(common)
    for name in common:
        run.column(name)
    drift = run.drift()
    overall = run.overall(overall_detector, common)
    return _assemble(run.n_rows, drift, overall, tuple(run.findings), settings, (), ())


def with_model_findings(
    result: CheckResult,
    *,
    prediction_drift: Iterable[ColumnDrift] = (),
    performance: Iterable[PerformanceMetric] = (),
) -> CheckResult:
    """The same result with the model's prediction drift and metrics added, status and reasons recomputed."""
    if result.status == "error":
        return dataclasses.replace(result, prediction_drift=tuple(prediction_drift), performance=tuple(performance))
    assembled = _assemble(
        result.n_rows, result.drift, result.overall, result.quality, result.settings,
        tuple(prediction_drift), tuple(performance),
    )
    return dataclasses.replace(assembled, estimated=result.estimated)


def _settings(
    alpha: float, correction: str, drift_share: float, min_drifted: int | None,
    max_null_increase: float, max_new_share: float,
) -> CheckSettings:
    _check_correction(correction)
    for name, value, low_open in (
        ("alpha", alpha, True), ("drift_share", drift_share, True),
        ("max_null_increase", max_null_increase, False), ("max_new_share", max_new_share, False),
    ):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (0 < value <= 1 if low_open
                                                                                  else 0 <= value <= 1)
        if not ok:
            raise ConfigError(f"{name}: expected a number in {'(0, 1]' if low_open else '[0, 1]'}, got {value!r}.")
    if min_drifted is not None and (isinstance(min_drifted, bool) or not isinstance(min_drifted, int)
                                    or min_drifted < 1):
        raise ConfigError(f"min_drifted: expected an integer >= 1 or None, got {min_drifted!r}.")
    return CheckSettings(float(alpha), correction, float(drift_share), min_drifted,
                         float(max_null_increase), float(max_new_share))


def _names(names: Iterable[Any], limit: int = 5) -> str:
    items = list(names)
    shown = ", ".join(repr(n) for n in items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)})"


# -- detector plan ----------------------------------------------------------------------------


def _plan(reference: Profile, spec: Mapping[str, Any] | None) -> tuple[dict[str, Detector | None], Detector | None]:
    """The detector of every reference column (None: not tested) and the multivariate one."""
    spec = dict(spec or {})
    if not isinstance(spec, dict):
        raise ConfigError(f"detectors: expected a mapping, got {type(spec).__name__}.")
    unknown = [key for key in spec if key not in _SPEC_KEYS]
    if unknown:
        raise ConfigError(f"detectors: unknown key {unknown[0]!r}. Valid: {', '.join(_SPEC_KEYS)}.")
    made: dict[str, Detector] = {}

    def resolve(value: Any, where: str) -> Detector | None:
        if value is None:
            return None
        if isinstance(value, str):
            if value not in made:
                made[value] = _registry.create("detector", value, {}, where=where)
            return made[value]
        if isinstance(value, Detector):
            return value
        raise ConfigError(
            f"{where}: expected a detector name, a detector instance or None, got {type(value).__name__}."
        )

    by_kind = {kind: resolve(spec.get(kind, default), f"detectors.{kind}")
               for kind, default in DEFAULT_DETECTORS.items()}
    per_column = spec.get("columns") or {}
    if not isinstance(per_column, Mapping):
        raise ConfigError(f"detectors.columns: expected a mapping of column name to detector, got {per_column!r}.")
    unknown_columns = [name for name in per_column if name not in reference.columns]
    if unknown_columns:
        raise ConfigError(
            f"detectors.columns: {unknown_columns[0]!r} is not a column of the reference. "
            f"Columns: {_names(reference.columns)}."
        )
    plan: dict[str, Detector | None] = {}
    for name, column in reference.columns.items():
        where = f"detectors.columns[{name!r}]" if name in per_column else f"detectors.{column.kind}"
        detector = resolve(per_column[name], where) if name in per_column else by_kind[column.kind]
        if detector is not None and column.kind not in detector.kinds:
            raise ConfigError(
                f"{where}: detector {_label(detector)!r} cannot test {column.kind} column {name!r}; "
                f"it tests {', '.join(sorted(detector.kinds))} columns."
            )
        plan[name] = detector
    return plan, resolve(spec.get("overall"), "detectors.overall")


def _label(detector: Detector) -> str:
    return str(getattr(detector, "name", type(detector).__name__))


# -- one pass over the batch --------------------------------------------------------------------


class _Run:
    """State of one check: findings so far and the detectors' per-column outputs.

    The findings take the batch's summaries (counts, range, categories), so an engine that computes
    them elsewhere (mlflow-ext-spark) reuses everything here; ``current`` then holds a bounded
    sample of the batch for the detectors that need rows, and ``n_rows`` the batch's size.
    """

    def __init__(self, reference: Profile, current: pd.DataFrame, settings: CheckSettings,
                 plan: dict[str, Detector | None]) -> None:
        self.reference = reference
        self.current = current
        self.n_rows = len(current)
        self.settings = settings
        self.plan = plan
        self.findings: list[QualityFinding] = []
        self.raws: dict[int, tuple[_Builtin, list[str], list[Raw]]] = {}
        self.generic: dict[int, tuple[Detector, list[str]]] = {}
        self.buffer = np.empty(len(current), dtype=np.float64)  # reused by every numeric column

    def note(self, kind: str, column: str | None, severity: str, message: str, **observed: Any) -> None:
        self.findings.append(QualityFinding(kind, column, severity, message, observed))

    def schema(self, common: list[str]) -> None:
        for name in self.reference.columns:
            if name not in self.current.columns:
                self.note("missing_column", name, "warn",
                          f"Column {name!r} of the reference is missing from the batch.")
        extra = [name for name in self.current.columns if name not in self.reference.columns]
        if extra:
            self.note("extra_columns", None, "info",
                      f"The batch has {len(extra)} column(s) the reference does not: {_names(extra)}.",
                      count=len(extra), columns=", ".join(extra[:20]))

    def column(self, name: str) -> None:
        ref = self.reference.columns[name]
        series = self.current[name]
        try:
            kind = column_kind(name, series)
        except DataError:
            kind = "unsupported"
        if not self.comparable(name, ref, kind, str(series.dtype), lambda: bool(series.isna().all())):
            return
        if kind == "numeric":
            self._numeric(name, ref, series)
        elif kind == "datetime":
            self._nulls(name, ref, int(series.isna().sum()))
        else:
            self._categorical(name, ref, series)

    def comparable(self, name: str, ref: ColumnProfile, kind: str, dtype: str, all_null: Callable[[], bool]) -> bool:
        """Record kind and dtype findings; True when the column is of the reference's kind."""
        if (kind != ref.kind or dtype != ref.dtype) and all_null():
            self._nulls(name, ref, self.n_rows)  # an all-null column has no meaningful dtype
            return False
        if kind != ref.kind:
            self.note("kind_changed", name, "warn",
                      f"Column {name!r} was {ref.kind} ({ref.dtype}) in the reference and is {kind} "
                      f"({dtype}) in the batch; it is not tested for drift.",
                      reference=ref.dtype, current=dtype)
            return False
        if dtype != ref.dtype:
            self.note("dtype_changed", name, "info",
                      f"Column {name!r} changed dtype from {ref.dtype} to {dtype} (still {kind}).",
                      reference=ref.dtype, current=dtype)
        return True

    def _nulls(self, name: str, ref: ColumnProfile, nulls: int) -> bool:
        """Record null findings; True when the column has values to test."""
        n = self.n_rows
        if nulls == n:
            self.note("all_null", name, "warn", f"Column {name!r} is entirely null in the batch ({n} rows).", nulls=n)
            return False
        rate, ref_rate = nulls / n, ref.nulls / max(ref.nulls + ref.count, 1)
        if rate - ref_rate > self.settings.max_null_increase:
            self.note("null_rate", name, "warn",
                      f"Column {name!r} is null in {rate:.1%} of the batch vs {ref_rate:.1%} of the reference.",
                      current=rate, reference=ref_rate)
        if not ref.count:
            self.note("reference_empty", name, "info",
                      f"Column {name!r} has no values in the reference; it is not tested for drift.")
            return False
        return True

    def _numeric(self, name: str, ref: ColumnProfile, series: pd.Series) -> None:
        buffer = self.buffer
        values = series.to_numpy() if series.dtype == np.float64 else as_float(series)
        np.copyto(buffer, values, casting="unsafe")
        buffer.sort()  # NaN sorts last, -inf first and +inf just before the NaNs
        valid = int(np.searchsorted(buffer, np.nan))
        low = int(np.searchsorted(buffer[:valid], -np.inf, side="right"))
        high = int(np.searchsorted(buffer[:valid], np.inf, side="left"))
        if not self._nulls(name, ref, len(buffer) - valid):
            return
        finite = buffer[low:high]
        outside = 0
        if len(finite):
            assert isinstance(ref.min, float) and isinstance(ref.max, float)  # a numeric column with values
            outside = int(np.searchsorted(finite, ref.min, side="left")) + len(finite) - int(
                np.searchsorted(finite, ref.max, side="right"))
        bounds = (float(finite[0]), float(finite[-1])) if len(finite) else (math.nan, math.nan)
        if not self.numeric_range(name, ref, low + valid - high, len(finite), outside, *bounds):
            return
        detector = self.plan[name]
        if isinstance(detector, _Builtin):
            self._raw(detector, name, detector._numeric(reference_state(self.reference, name), finite))
        elif detector is not None:
            self._generic(detector, name)

    def numeric_range(self, name: str, ref: ColumnProfile, n_inf: int, count: int, outside: int,
                      low: float, high: float) -> bool:
        """Record infinite and out-of-range findings of a column with ``count`` finite values in
        [low, high], ``outside`` of them beyond the reference range; True when there is one to test."""
        if n_inf:
            self.note("non_finite", name, "warn",
                      f"Column {name!r} has {n_inf} infinite value(s); they are left out of the drift tests.",
                      count=n_inf)
        if not count:
            return False
        if outside:
            share = outside / count
            self.note("out_of_range", name, "warn" if share > self.settings.max_new_share else "info",
                      f"Column {name!r} has {outside} value(s) ({share:.2%}) outside the reference range "
                      f"[{ref.min:g}, {ref.max:g}] (batch range [{low:g}, {high:g}]).",
                      count=outside, share=share, min=low, max=high)
        return True

    def unseen_categories(self, name: str, ref: ColumnProfile, total: int, n_unseen: int, categories: int,
                          examples: Sequence[str]) -> None:
        """Record ``n_unseen`` of ``total`` values in ``categories`` categories the reference lacks
        (``examples``: the first five, most frequent first)."""
        if not categories:
            return
        share = n_unseen / total
        where = "seen in the reference" if not ref.other else f"among the reference's top {len(ref.values)}"
        self.note("unseen_categories", name, "warn" if share > self.settings.max_new_share else "info",
                  f"Column {name!r} has {n_unseen} value(s) ({share:.2%}) in {categories} categories not "
                  f"{where}: {', '.join(repr(v) for v in examples[:5])}{', ...' if categories > 5 else ''}.",
                  count=n_unseen, share=share, categories=categories)

    def _categorical(self, name: str, ref: ColumnProfile, series: pd.Series) -> None:
        values, counts, nulls = category_counts(series)
        if not self._nulls(name, ref, nulls):
            return
        known = set(ref.values)
        unseen = [(v, int(c)) for v, c in zip(values, counts, strict=True) if v not in known]
        self.unseen_categories(name, ref, int(counts.sum()), sum(c for _, c in unseen), len(unseen),
                               [v for v, _ in unseen[:5]])
        detector = self.plan[name]
        if isinstance(detector, _Builtin):
            bins = category_bins(ref, values, counts)
            self._raw(detector, name, detector._categorical(reference_bins(ref), bins))
        elif detector is not None:
            self._generic(detector, name)

    def _raw(self, detector: _Builtin, name: str, raw: Raw) -> None:
        entry = self.raws.setdefault(id(detector), (detector, [], []))
        entry[1].append(name)
        entry[2].append(raw)

    def _generic(self, detector: Detector, name: str) -> None:
        self.generic.setdefault(id(detector), (detector, []))[1].append(name)

    def drift(self) -> list[ColumnDrift]:
        """Every column's result, with p-values corrected across all tests and drift re-decided."""
        results: list[ColumnDrift] = []
        for detector, names, raws in self.raws.values():
            results.extend(detector._finish(names, raws))
        for plugin, columns in self.generic.values():
            results.extend(self._call(plugin, columns).columns)
        order = {name: i for i, name in enumerate(self.reference.columns)}
        results.sort(key=lambda r: order.get(r.column, len(order)))
        tested = [i for i, r in enumerate(results) if r.p_value is not None]
        adjusted = adjust_pvalues([results[i].p_value or 0.0 for i in tested], self.settings.correction)
        for i, p in zip(tested, adjusted, strict=True):
            results[i] = dataclasses.replace(results[i], p_adjusted=p)
        return [
            dataclasses.replace(r, drifted=bool(
                r.effect_size >= r.threshold and (r.p_adjusted is None or r.p_adjusted <= self.settings.alpha)))
            for r in results
        ]

    def overall(self, detector: Detector | None, common: list[str]) -> tuple[ColumnDrift, ...]:
        if detector is None:
            return ()
        names = [n for n in common if self.reference.columns[n].kind in detector.kinds]
        if not names:
            return ()
        result = self._call(detector, names).overall
        return () if result is None else (result,)

    def _call(self, detector: Detector, names: list[str]) -> DetectorResult:
        """Run a plugin detector on the reference sample and the batch, naming it when it fails."""
        sample = self.reference.sample
        if sample is None:
            raise DataError("The reference profile has no sample of rows, which the detectors need.",
                            hint="Load the profile with Profile.load(directory).")
        try:
            result = detector.detect(sample[names], self.current[names])
        except MlflowExtError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's failure must name the plugin
            raise PluginError(f"Detector {_label(detector)!r} failed on columns {_names(names)}: "
                              f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(result, DetectorResult):
            raise PluginError(f"Detector {_label(detector)!r} returned {type(result).__name__}, "
                              "not a DetectorResult.")
        wanted = set(names)
        stray = [r.column for r in result.columns if r.column not in wanted]
        if stray:
            raise PluginError(f"Detector {_label(detector)!r} returned results for columns it was not given: "
                              f"{_names(stray)}.")
        return result


# -- status and reasons -----------------------------------------------------------------------


def _error_result(settings: CheckSettings, n_rows: int, kind: str, message: str) -> CheckResult:
    finding = QualityFinding(kind, None, "error", message, {})
    return _assemble(n_rows, [], (), (finding,), settings, (), ())


def _assemble(
    n_rows: int,
    drift: Sequence[ColumnDrift],
    overall: tuple[ColumnDrift, ...],
    quality: tuple[QualityFinding, ...],
    settings: CheckSettings,
    prediction_drift: tuple[ColumnDrift, ...],
    performance: tuple[PerformanceMetric, ...],
) -> CheckResult:
    tested = list(dict.fromkeys(r.column for r in drift))
    drifted = list(dict.fromkeys(r.column for r in drift if r.drifted))
    share = len(drifted) / len(tested) if tested else 0.0
    errors = [f.message for f in quality if f.severity == "error"]
    alerts: list[str] = []
    warnings: list[str] = []
    if drifted:
        by_share = share >= settings.drift_share
        by_count = settings.min_drifted is not None and len(drifted) >= settings.min_drifted
        limit = (f"the alert share of {settings.drift_share:.0%}" if settings.min_drifted is None
                 else f"the alert share of {settings.drift_share:.0%} or count of {settings.min_drifted}")
        sentence = (f"{len(drifted)} of {len(tested)} columns drifted ({share:.0%}), "
                    f"{'reaching' if by_share or by_count else 'below'} {limit}: {_drift_list(drift)}.")
        (alerts if by_share or by_count else warnings).append(sentence)
    for r in overall:
        if r.drifted:
            alerts.append(f"Detector {r.detector!r} found drift over all columns together "
                          f"(statistic {r.statistic:.4g}{_p(r)}, effect {r.effect_size:.3g} >= {r.threshold:g}).")
    for m in performance:
        if m.degraded:
            ref = "" if m.reference is None else f" vs {m.reference:.4g} for the reference"
            alerts.append(f"Model metric {m.name!r} degraded: {m.value:.4g}{ref}"
                          f"{'' if m.p_value is None else f' (p={m.p_value:.3g})'}.")
    for r in prediction_drift:
        if r.drifted:
            warnings.append(f"The model's prediction {r.column!r} drifted ({r.detector}, effect "
                            f"{r.effect_size:.3g} >= {r.threshold:g}{_p(r)}).")
    warnings.extend(f.message for f in quality if f.severity == "warn")
    if errors:
        status, reasons = "error", errors
    elif alerts:
        status, reasons = "alert", alerts + warnings
    elif warnings:
        status, reasons = "warn", warnings
    else:
        status = "ok"
        reasons = [f"No drift or data-quality problem in {len(tested)} tested column(s) of {n_rows} rows."]
    return CheckResult(
        status=status, reasons=tuple(reasons), n_rows=n_rows, drift=tuple(drift), quality=quality,
        drifted_columns=tuple(drifted), drift_share=share, n_tested=len(tested), settings=settings,
        overall=overall, prediction_drift=prediction_drift, performance=performance,
    )


def _p(r: ColumnDrift) -> str:
    if r.p_adjusted is not None:
        return f", adjusted p={r.p_adjusted:.3g}"
    return "" if r.p_value is None else f", p={r.p_value:.3g}"


def _drift_list(drift: Sequence[ColumnDrift], limit: int = 5) -> str:
    shown = [f"{r.column!r} ({r.detector} {r.effect_size:.3g}{_p(r)})" for r in drift if r.drifted]
    return ", ".join(shown[:limit]) + (f" and {len(shown) - limit} more" if len(shown) > limit else "")
