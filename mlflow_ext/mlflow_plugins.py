"""What mlflow-ext registers with MLflow itself (entry points in pyproject.toml).

- ``LineageContextProvider`` (``mlflow.run_context_provider``): adds the lineage tags (git commit and
  dirty flag of the working folder, mlflow-ext version) to every run ``mlflow.start_run`` creates.
- ``DriftEvaluator`` (``mlflow.model_evaluator``, name ``drift``): ``mlflow.models.evaluate(...,
  evaluators=["drift"], evaluator_config={"drift": {"reference": ...}})`` checks the evaluation
  data against a reference profile and logs the same drift metrics as a recorded check. It says yes
  to ``can_evaluate`` only when its config names a ``reference``, so installing mlflow-ext never
  adds anything to anyone's default evaluations (``evaluators=None`` passes it an empty config).

MLflow imports this module at every run start: nothing heavy at module level.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.tracking.context.abstract_context import RunContextProvider

from mlflow_ext import _lineage

if TYPE_CHECKING:
    import pandas as pd

    from mlflow_ext.profile import Profile

__all__ = ["DriftEvaluator", "LineageContextProvider"]

STATUS_TAG = "mlflow_ext.drift.status"
DRIFT_ARTIFACT = "mlflow_ext/drift.json"  # the whole CheckResult, as check.json of a recorded check
CHECK_OPTIONS = ("detectors", "alpha", "correction", "drift_share", "min_drifted", "max_null_increase",
                 "max_new_share")


class LineageContextProvider(RunContextProvider):
    """Adds git commit, dirty flag and mlflow-ext version to every run (git asked once per folder)."""

    def in_context(self) -> bool:
        return True

    def tags(self) -> dict[str, str]:
        return _lineage.lineage_tags(cached=True)


class DriftEvaluator:
    """MLflow model evaluator ``drift``: checks the evaluation features against a reference profile.

    Config (``evaluator_config={"drift": {...}}``): ``reference`` (required) is a Profile, the path of
    a saved profile, or a registered model reference (``churn@champion``, ``churn/3``) whose stored
    training profile is used; the other keys are ``check``'s options: detectors, alpha, correction,
    drift_share, min_drifted, max_null_increase, max_new_share.
    """

    name = "drift"

    @classmethod
    def can_evaluate(cls, *, model_type: Any, evaluator_config: Any, **kwargs: Any) -> bool:
        return isinstance(evaluator_config, Mapping) and "reference" in evaluator_config

    def evaluate(
        self,
        *,
        model_type: Any,
        dataset: Any,
        run_id: str,
        evaluator_config: Mapping[str, Any],
        model: Any = None,
        extra_metrics: Any = None,
        custom_artifacts: Any = None,
        predictions: Any = None,
        **kwargs: Any,
    ) -> Any:
        from mlflow.entities import Metric, RunTag
        from mlflow.models.evaluation import EvaluationResult

        from mlflow_ext import tracking
        from mlflow_ext.checks import check
        from mlflow_ext.model_check import metric_values

        options = _check_options(evaluator_config)
        reference = _reference(evaluator_config["reference"])
        result = check(reference, _features(dataset), **options)
        metrics = metric_values(result)
        now = int(time.time() * 1000)
        mlflow_client = tracking.client()
        with tracking.mlflow_errors(f"log the drift metrics to run {run_id}"):
            items = [Metric(k, v, now, 0) for k, v in metrics.items()]
            for start in range(0, len(items), 1000):  # MLflow's limit of metrics per batch
                mlflow_client.log_batch(run_id, metrics=items[start:start + 1000],
                                        tags=[] if start else [RunTag(STATUS_TAG, result.status)], synchronous=True)
            mlflow_client.log_dict(run_id, result.to_dict(), DRIFT_ARTIFACT)
        return EvaluationResult(metrics=metrics, artifacts={}, run_id=run_id)  # type: ignore[no-untyped-call]


def _check_options(config: Mapping[str, Any]) -> dict[str, Any]:
    from mlflow_ext.errors import ConfigError

    unknown = sorted(set(config) - {"reference", *CHECK_OPTIONS})
    if unknown:
        raise ConfigError(
            f"evaluator_config of 'drift': unknown key(s) {', '.join(map(repr, unknown))}. "
            f"Valid: reference, {', '.join(CHECK_OPTIONS)}."
        )
    return {k: v for k, v in config.items() if k in CHECK_OPTIONS}


def _reference(value: Any) -> Profile:
    """The reference profile named by the config: a Profile, a saved profile's path or a model reference."""
    from mlflow_ext import tracking
    from mlflow_ext.errors import ConfigError
    from mlflow_ext.profile import Profile

    if isinstance(value, Profile):
        return value
    if isinstance(value, Path) or (isinstance(value, str) and Path(value).exists()):
        return Profile.load(value)
    if isinstance(value, str):
        return tracking.load_version_reference(value).profile
    raise ConfigError(
        f"evaluator_config of 'drift': reference must be a Profile, a profile path or a model reference "
        f"(MODEL@ALIAS, MODEL/VERSION), got {type(value).__name__}."
    )


def _features(dataset: Any) -> pd.DataFrame:
    """The evaluation dataset's feature columns as a DataFrame (MLflow may hold them as an array)."""
    import pandas as pd

    data = dataset.features_data
    if isinstance(data, pd.DataFrame):
        return data
    return pd.DataFrame(data, columns=list(dataset.feature_names))
