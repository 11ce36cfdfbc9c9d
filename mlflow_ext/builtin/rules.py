"""The built-in promotion rules (entry points in mlflow-ext's own pyproject, like any plugin).

- ``metric_threshold``: a metric logged on the candidate's run is at least ``min`` / at most ``max``.
- ``beats_champion``: on the fresh labelled evaluation data, the candidate beats the champion by at
  least ``min_delta`` and the paired test (exact McNemar for accuracy, paired bootstrap otherwise)
  is significant at ``alpha``. With no champion yet it passes and says so.
- ``no_regression``: on the same data, no listed metric is worse than the champion's by more than
  ``tolerance`` (absolute, in the metric's units). No champion: passes.
- ``schema_compatible``: the candidate's input signature accepts what the champion's accepts.
- ``max_latency``: the ``percentile`` of predict latency on batches of ``batch_size`` rows is at
  most ``max_ms`` milliseconds, measured now on this machine.
- ``approval``: the version tag ``tag`` names the person ``by``.
- ``no_drift_alert``: the candidate's last check (version tag ``mlflow_ext.last_check.status``) is
  not ``alert``. A version never checked passes unless ``require_check`` is true.
"""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np

from mlflow_ext._stats import METRICS, MetricName, paired_test
from mlflow_ext.errors import ConfigError, DataError
from mlflow_ext.rules import RuleContext, RuleResult
from mlflow_ext.tracking import TAG_PREFIX

__all__ = [
    "Approval",
    "BeatsChampion",
    "MaxLatency",
    "MetricThreshold",
    "NoDriftAlert",
    "NoRegression",
    "SchemaCompatible",
]

VALIDATION_PREFIX = f"{TAG_PREFIX}val."  # where @track logs validation metrics on the training run
LAST_CHECK_STATUS = f"{TAG_PREFIX}last_check.status"
APPROVED_BY = f"{TAG_PREFIX}approved_by"


def _no_eval_data(rule: str) -> RuleResult:
    return RuleResult(rule=rule, passed=False, observed=None, bound=None,
                      message=f"{rule} needs fresh labelled data: pass --eval-data (and --labels).")


def _no_champion(rule: str, context: RuleContext) -> RuleResult:
    return RuleResult(rule=rule, passed=True, observed=None, bound=None,
                      message=f"{context.model!r} has no champion yet, so there is nothing to compare with: passes.")


def _check_unit(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ConfigError(f"{name}: expected a number between 0 and 1 (exclusive), got {value!r}.")


class MetricThreshold:
    """A metric logged on the candidate's run is at least ``min`` and/or at most ``max``.

    ``metric`` is the logged name; a bare name such as ``accuracy`` also finds the validation metric
    ``mlflow_ext.val.accuracy`` that @track logs.
    """

    name = "metric_threshold"

    def __init__(self, *, metric: str, min: float | None = None, max: float | None = None) -> None:  # noqa: A002
        self.metric = metric
        self.min = min
        self.max = max

    def validate(self) -> None:
        if self.min is None and self.max is None:
            raise ConfigError(f"metric_threshold on {self.metric!r} needs min, max or both.")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(f"metric_threshold on {self.metric!r}: min {self.min} is above max {self.max}.")

    def evaluate(self, context: RuleContext) -> RuleResult:
        logged = context.run_metrics("candidate")
        key = next((k for k in (self.metric, VALIDATION_PREFIX + self.metric) if k in logged), None)
        if key is None:
            have = ", ".join(sorted(logged)) or "none"
            raise ConfigError(
                f"metric_threshold: version {context.candidate} of {context.model!r} never logged the metric "
                f"{self.metric!r}. Its run has: {have}.",
                hint="Fix the metric name in the policy, or log the metric when training.",
            )
        value = float(logged[key])
        low_ok = self.min is None or value >= self.min
        high_ok = self.max is None or value <= self.max
        if self.min is not None and self.max is not None:
            bound: float | str = f"[{self.min:g}, {self.max:g}]"
            needs = f"between {self.min:g} and {self.max:g}"
        elif self.min is not None:
            bound, needs = float(self.min), f"at least {self.min:g}"
        else:
            bound, needs = float(self.max or 0.0), f"at most {self.max:g}"
        return RuleResult(rule=self.name, passed=low_ok and high_ok, observed=value, bound=bound,
                          message=f"{key} of version {context.candidate} is {value:.4g} (needs {needs}).")


class BeatsChampion:
    """The candidate beats the champion on the fresh evaluation data, by ``min_delta`` and significantly.

    ``min_delta`` is in the metric's units and counts as improvement whichever way the metric runs
    (a lower rmse is an improvement). The test is one-sided at ``alpha``: exact McNemar for
    accuracy, a paired bootstrap of ``n_boot`` resamples (seeded by ``seed``) otherwise.
    """

    name = "beats_champion"

    def __init__(self, *, metric: MetricName = "accuracy", min_delta: float = 0.0, alpha: float = 0.05,
                 n_boot: int = 2000, seed: int = 0) -> None:
        self.metric = metric
        self.min_delta = min_delta
        self.alpha = alpha
        self.n_boot = n_boot
        self.seed = seed

    def validate(self) -> None:
        _check_unit("alpha", self.alpha)
        if self.min_delta < 0:
            raise ConfigError(f"min_delta: expected a number >= 0, got {self.min_delta!r}.")
        if self.n_boot < 100:
            raise ConfigError(f"n_boot: expected at least 100 resamples, got {self.n_boot!r}.")

    def evaluate(self, context: RuleContext) -> RuleResult:
        if context.champion is None:
            return _no_champion(self.name, context)
        if context.eval_data is None:
            return _no_eval_data(self.name)
        for role in ("candidate", "champion"):
            context.metric(role, self.metric)  # checks the metric fits the task; recorded with the decision
        test = paired_test(self.metric, context.labels(), context.outputs("candidate"),
                           context.outputs("champion"), n_boot=self.n_boot, seed=self.seed)
        large = test.delta >= self.min_delta
        significant = test.p_value <= self.alpha
        verdict = ("better" if large and significant else
                   "not better by enough" if not large else "not significantly better")
        method = "exact McNemar" if test.test == "mcnemar" else f"paired bootstrap ({self.n_boot} resamples)"
        return RuleResult(
            rule=self.name, passed=large and significant, observed=test.delta, bound=float(self.min_delta),
            message=(f"{self.metric} on {test.n} fresh rows: candidate {test.candidate:.4g} vs champion "
                     f"{context.champion} {test.champion:.4g}, improvement {test.delta:+.4g} (needs "
                     f"{self.min_delta:g}); {method} p = {test.p_value:.3g} (alpha {self.alpha:g}): {verdict}."),
        )


class NoRegression:
    """On the fresh evaluation data, no listed metric is worse than the champion's by more than ``tolerance``."""

    name = "no_regression"

    def __init__(self, *, metrics: list[MetricName], tolerance: float = 0.0) -> None:
        self.metrics = metrics
        self.tolerance = tolerance

    def validate(self) -> None:
        if not self.metrics:
            raise ConfigError("no_regression needs at least one metric in metrics.")
        if self.tolerance < 0:
            raise ConfigError(f"tolerance: expected a number >= 0, got {self.tolerance!r}.")

    def evaluate(self, context: RuleContext) -> RuleResult:
        if context.champion is None:
            return _no_champion(self.name, context)
        if context.eval_data is None:
            return _no_eval_data(self.name)
        worse: dict[str, float] = {}
        parts = []
        for metric in self.metrics:
            cand, champ = context.metric("candidate", metric), context.metric("champion", metric)
            worse[metric] = champ - cand if METRICS[metric].higher_is_better else cand - champ
            parts.append(f"{metric} {cand:.4g} vs {champ:.4g}")
        worst = max(worse, key=lambda m: worse[m])
        passed = worse[worst] <= self.tolerance
        summary = (f"no metric is worse by more than {self.tolerance:g}" if passed else
                   f"{worst} is worse by {worse[worst]:.4g}, more than the tolerance {self.tolerance:g}")
        return RuleResult(
            rule=self.name, passed=passed, observed=worse[worst], bound=float(self.tolerance),
            message=(f"On {len(context.labels())} fresh rows, candidate vs champion {context.champion}: "
                     f"{'; '.join(parts)}: {summary}."),
        )


# Input types a model accepts in place of the one it declares (MLflow's safe upcasts).
_WIDENS = {("integer", "long"), ("integer", "float"), ("integer", "double"), ("long", "double"),
           ("float", "double")}


def _column_types(signature: Any) -> dict[str, tuple[str, bool]] | None:
    """{column: (type, required)} of a column-based input schema; None for tensor schemas."""
    schema = signature.inputs
    if schema is None or not schema.has_input_names() or schema.is_tensor_spec():
        return None
    return {str(spec.name): (str(getattr(spec.type, "name", spec.type)), bool(getattr(spec, "required", True)))
            for spec in schema.inputs}


class SchemaCompatible:
    """The candidate's input signature accepts every input the champion's accepts.

    Every column the candidate requires must be a champion input, and for each shared column the
    candidate's type must be the champion's or a safe widening of it (integer -> long/float/double,
    long -> double, float -> double). Champion inputs the candidate ignores are fine. A model
    logged without a signature cannot be checked, which refuses.
    """

    name = "schema_compatible"

    def evaluate(self, context: RuleContext) -> RuleResult:
        if context.champion is None:
            return _no_champion(self.name, context)
        signatures = {role: context.signature(role) for role in ("candidate", "champion")}
        unsigned = [f"{role} (version {context.resolve(role)})" for role, s in signatures.items()
                    if s is None or s.inputs is None]
        if unsigned:
            return RuleResult(rule=self.name, passed=False, observed=None, bound=None,
                              message=f"Cannot compare input schemas: the {' and '.join(unsigned)} has no input "
                                      "signature (log the model with an input_example or signature).")
        cand, champ = (_column_types(signatures[r]) for r in ("candidate", "champion"))
        if cand is None or champ is None:
            same = signatures["candidate"].inputs == signatures["champion"].inputs  # type: ignore[union-attr]
            return RuleResult(rule=self.name, passed=same, observed=None, bound=None,
                              message="The tensor input schemas are " + ("identical." if same else "different."))
        problems = [f"it requires {name!r}, which the champion does not take"
                    for name, (_, required) in cand.items() if required and name not in champ]
        problems += [f"{name!r} is {cand[name][0]} but the champion takes {kind}"
                     for name, (kind, _) in champ.items()
                     if name in cand and cand[name][0] != kind and (kind, cand[name][0]) not in _WIDENS]
        ignored = [name for name in champ if name not in cand]
        note = f" It ignores {', '.join(map(repr, ignored))}." if ignored and not problems else ""
        message = (f"Version {context.candidate} accepts every input of champion {context.champion}.{note}"
                   if not problems else
                   f"Version {context.candidate} does not accept the inputs of champion {context.champion}: "
                   f"{'; '.join(problems)}.")
        return RuleResult(rule=self.name, passed=not problems, observed=float(len(problems)), bound=0.0,
                          message=message)


class MaxLatency:
    """The ``percentile`` of predict latency on batches of ``batch_size`` rows is at most ``max_ms``.

    Measured at promotion time on this machine: one untimed warm-up call, then ``samples`` timed
    calls on consecutive batches of the evaluation data (or, without it, of the reference sample
    @track stored with the version).
    """

    name = "max_latency"

    def __init__(self, *, max_ms: float, batch_size: int = 100, samples: int = 30,
                 percentile: float = 95.0) -> None:
        self.max_ms = max_ms
        self.batch_size = batch_size
        self.samples = samples
        self.percentile = percentile

    def validate(self) -> None:
        if self.max_ms <= 0:
            raise ConfigError(f"max_ms: expected a number of milliseconds > 0, got {self.max_ms!r}.")
        if self.batch_size < 1 or self.samples < 1:
            raise ConfigError(f"batch_size and samples must be >= 1, got {self.batch_size} and {self.samples}.")
        if not 0 < self.percentile <= 100:
            raise ConfigError(f"percentile: expected a number in (0, 100], got {self.percentile!r}.")

    def _rows(self, context: RuleContext) -> Any:
        if context.eval_data is not None:
            return context.features("candidate"), "the evaluation data"
        sample = _reference_sample(context)
        if sample is None:
            return None, ""
        wanted = [c for c in context.inputs("candidate") if c in sample.columns]
        return sample[wanted or list(sample.columns)], "the version's reference sample"

    def evaluate(self, context: RuleContext) -> RuleResult:
        rows, source = self._rows(context)
        if rows is None or len(rows) == 0:
            return RuleResult(rule=self.name, passed=False, observed=None, bound=float(self.max_ms),
                              message="max_latency needs rows to time predict on: pass --eval-data (the version "
                                      "has no reference sample).")
        model = context.load_model("candidate")
        # Cycle through the rows so every timed call sees a full batch, even on small data.
        index = np.resize(np.arange(len(rows)), self.batch_size * (self.samples + 1))
        batches = [rows.iloc[index[i * self.batch_size:(i + 1) * self.batch_size]] for i in range(self.samples + 1)]
        timings = []
        try:
            model.predict(batches[0])
            for batch in batches[1:]:
                start = time.perf_counter()
                model.predict(batch)
                timings.append((time.perf_counter() - start) * 1000.0)
        except Exception as exc:  # noqa: BLE001 - any model failure names the version
            raise DataError(f"Version {context.candidate} of {context.model!r} failed to predict {source}: "
                            f"{type(exc).__name__}: {exc}") from exc
        observed = float(np.percentile(timings, self.percentile))
        return RuleResult(
            rule=self.name, passed=observed <= self.max_ms, observed=observed, bound=float(self.max_ms),
            message=(f"p{self.percentile:g} predict latency of version {context.candidate} is {observed:.3g} ms "
                     f"on {self.samples} batches of {self.batch_size} rows of {source} "
                     f"(needs at most {self.max_ms:g} ms)."),
        )


def _reference_sample(context: RuleContext) -> Any:
    """The reference sample @track stored with the candidate, or None."""
    location = context.model_version("candidate").tags.get(f"{TAG_PREFIX}profile")
    if not location:
        return None
    import mlflow.artifacts

    from mlflow_ext.profile import Profile
    from mlflow_ext.tracking import mlflow_errors

    with mlflow_errors(f"download the profile {location}"):
        local = mlflow.artifacts.download_artifacts(location)
    return Profile.load(local).sample


class Approval:
    """The version tag ``tag`` names the person ``by`` (names separated by commas or spaces)."""

    name = "approval"

    def __init__(self, *, by: str, tag: str = APPROVED_BY) -> None:
        self.by = by
        self.tag = tag

    def validate(self) -> None:
        if not self.by.strip():
            raise ConfigError("approval: by must name a person, got an empty string.")

    def evaluate(self, context: RuleContext) -> RuleResult:
        value = context.model_version("candidate").tags.get(self.tag)
        names = {n.casefold() for n in re.split(r"[,\s]+", value or "") if n}
        passed = self.by.strip().casefold() in names
        if passed:
            message = f"{self.by} approved version {context.candidate} (tag {self.tag} = {value!r})."
        elif value:
            message = f"Version {context.candidate} is approved by {value!r}, not by {self.by}."
        else:
            message = (f"Version {context.candidate} has no approval tag {self.tag}; {self.by} must set it "
                       f"(mlflow: set model version tag {self.tag}={self.by}).")
        return RuleResult(rule=self.name, passed=passed, observed=value, bound=self.by, message=message)


class NoDriftAlert:
    """The candidate's last check is not in alert.

    A version with no recorded check passes (a fresh retrain has not met production data yet)
    unless ``require_check`` is true. A check that ended in ``error`` is not an alert and passes.
    """

    name = "no_drift_alert"

    def __init__(self, *, require_check: bool = False) -> None:
        self.require_check = require_check

    def evaluate(self, context: RuleContext) -> RuleResult:
        status = context.model_version("candidate").tags.get(LAST_CHECK_STATUS)
        if status is None:
            return RuleResult(
                rule=self.name, passed=not self.require_check, observed=None, bound="not alert",
                message=(f"Version {context.candidate} has never been checked"
                         + (" and require_check is set." if self.require_check else
                            "; passes (set require_check to refuse unchecked versions).")),
            )
        return RuleResult(rule=self.name, passed=status != "alert", observed=status, bound="not alert",
                          message=f"The last check of version {context.candidate} is {status!r}.")
