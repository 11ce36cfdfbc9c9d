"""Conformance checks for detector plugins: run them in your plugin's test suite.

    from mlflow_ext.testing import check_detector, parametrize_detectors

    def test_my_detector():
        check_detector(MyDetector)            # a class, an instance or a registered name

    @parametrize_detectors()                  # every installed detector, by name
    def test_all(detector_name):
        check_detector(detector_name)

A violation raises PluginError saying which rule broke and what was seen.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mlflow_ext import _registry
from mlflow_ext.detectors import ColumnDrift, Detector, DetectorResult
from mlflow_ext.errors import PluginError
from mlflow_ext.profile import KINDS

__all__ = ["check_detector", "parametrize_detectors", "synthetic_frames"]


def synthetic_frames(kinds: frozenset[str] | set[str], *, n: int = 400, shift: bool, seed: int = 0
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reference and a current frame with one column per kind (names with spaces and unicode).

    With ``shift`` the current frame is far from the reference in every column; without, both
    are the same frame.
    """
    rng = np.random.default_rng(seed)
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    if "numeric" in kinds:
        ref["num x"] = rng.normal(size=n)
        cur["num x"] = rng.normal(3.0, 1.0, size=n) if shift else ref["num x"]
        ref["numé.2"] = rng.exponential(size=n)
        cur["numé.2"] = rng.exponential(size=n) * 4 + 2 if shift else ref["numé.2"]
    if "categorical" in kinds:
        ref["cat"] = rng.choice(["a", "b", "c"], size=n, p=[0.6, 0.3, 0.1])
        cur["cat"] = rng.choice(["a", "b", "c"], size=n, p=[0.1, 0.3, 0.6]) if shift else ref["cat"]
    if "boolean" in kinds:
        ref["flag"] = rng.random(n) < 0.2
        cur["flag"] = rng.random(n) < 0.8 if shift else ref["flag"]
    if "datetime" in kinds:
        start = pd.Timestamp("2024-01-01")
        ref["when"] = start + pd.to_timedelta(rng.integers(0, 86_400 * 30, size=n), unit="s")
        cur["when"] = ref["when"] + pd.Timedelta(days=365) if shift else ref["when"]
    return pd.DataFrame(ref), pd.DataFrame(cur)


def _fail(label: str, rule: str, seen: Any) -> PluginError:
    return PluginError(f"Detector {label!r} breaks the detector contract: {rule}; got {seen!r}.",
                       hint="See the mlflow_ext.detectors module docstring for the contract.")


def _instantiate(detector: str | type | Detector) -> tuple[str, Detector]:
    if isinstance(detector, str):
        return detector, _registry.create("detector", detector)
    if inspect.isclass(detector):
        label = detector.__name__
        signature = inspect.signature(detector)
        for name, param in signature.parameters.items():
            if param.kind not in (param.KEYWORD_ONLY, param.VAR_KEYWORD):
                raise _fail(label, f"__init__ parameter {name!r} must be keyword-only", str(param.kind))
            if param.kind is param.KEYWORD_ONLY and param.default is param.empty:
                raise _fail(label, f"__init__ parameter {name!r} needs a default", "no default")
        instance = detector()
        for name, param in signature.parameters.items():
            # configuration is stored as given, under its own name: no logic in __init__
            if param.kind is param.KEYWORD_ONLY and getattr(instance, name, param.empty) != param.default:
                raise _fail(label, f"__init__ must store option {name!r} unchanged as self.{name}",
                            getattr(instance, name, "missing"))
        if not isinstance(instance, Detector):
            raise _fail(label, "the class must provide 'kinds' and 'detect'", sorted(vars(detector)))
        return label, instance
    if isinstance(detector, Detector):
        return type(detector).__name__, detector
    raise PluginError(f"check_detector takes a detector name, class or instance, got {type(detector).__name__}.")


def _check_result(label: str, result: Any, columns: list[str]) -> DetectorResult:
    if not isinstance(result, DetectorResult):
        raise _fail(label, "detect must return a DetectorResult", type(result).__name__)
    if not result.columns and result.overall is None:
        raise _fail(label, "a result needs per-column results or an overall one", result)
    if result.columns and [r.column for r in result.columns] != columns:
        raise _fail(label, f"one ColumnDrift per column, in order {columns}", [r.column for r in result.columns])
    for r in (*result.columns, *([result.overall] if result.overall else [])):
        if not isinstance(r, ColumnDrift):
            raise _fail(label, "results must be ColumnDrift", type(r).__name__)
        if not isinstance(r.detector, str) or not r.detector:
            raise _fail(label, "ColumnDrift.detector must name the detector", r.detector)
        if r.p_value is not None and not 0.0 <= r.p_value <= 1.0:
            raise _fail(label, f"p_value of {r.column!r} must be in [0, 1] or None", r.p_value)
        for name in ("statistic", "effect_size", "threshold"):
            value = getattr(r, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise _fail(label, f"{name} of {r.column!r} must be a finite number", value)
        if not isinstance(r.drifted, bool):
            raise _fail(label, f"drifted of {r.column!r} must be a bool", r.drifted)
    return result


def _drifted(result: DetectorResult) -> list[bool]:
    return [r.drifted for r in result.columns] or [result.overall is not None and result.overall.drifted]


def check_detector(detector: str | type | Detector) -> None:
    """Run every conformance check on a detector (registered name, class or instance)."""
    label, instance = _instantiate(detector)
    kinds = getattr(instance, "kinds", None)
    if not isinstance(kinds, (frozenset, set)) or not kinds or not set(kinds) <= set(KINDS):
        raise _fail(label, f"kinds must be a non-empty set of {', '.join(KINDS)}", kinds)
    same_ref, same_cur = synthetic_frames(kinds, shift=False)
    far_ref, far_cur = synthetic_frames(kinds, shift=True)
    columns = list(same_cur.columns)
    before = (far_ref.copy(), far_cur.copy())
    same = _check_result(label, instance.detect(same_ref, same_cur), columns)
    if any(_drifted(same)):
        raise _fail(label, "identical reference and batch must not drift", same)
    far = _check_result(label, instance.detect(far_ref, far_cur), columns)
    if not all(_drifted(far)):
        raise _fail(label, "a batch far from the reference in every column must drift in every column", far)
    if not (far_ref.equals(before[0]) and far_cur.equals(before[1])):
        raise _fail(label, "detect must not modify its input frames", "a modified frame")
    again = instance.detect(far_ref, far_cur)
    if again != far:
        raise _fail(label, "detect must be deterministic on the same input", (far, again))
    for r in far.columns:
        if not dataclasses.is_dataclass(r) or not type(r).__dataclass_params__.frozen:  # type: ignore[attr-defined]
            raise _fail(label, "results must be frozen dataclasses", type(r).__name__)
    one = columns[:1]
    single = _check_result(label, instance.detect(far_ref[one], far_cur[one]), one)
    if single.columns and single.columns[0] != far.columns[0]:
        raise _fail(label, "a column's result must not depend on the other columns",
                    (single.columns[0], far.columns[0]))


def parametrize_detectors(argname: str = "detector_name") -> Callable[[Any], Any]:
    """A pytest.mark.parametrize over every installed detector name."""
    import pytest

    return pytest.mark.parametrize(argname, _registry.available("detector"))
