"""The Detector protocol: what a drift detector plugin implements, and the results it returns.

A detector compares a reference with a current batch and says, per column, whether it drifted.
Implementing one takes a class with two members::

    import numpy as np
    from mlflow_ext.detectors import ColumnDrift, DetectorResult

    class MeanShift:
        '''Drift when the mean moves by more than `threshold` reference standard deviations.'''

        kinds = frozenset({"numeric"})          # the column kinds it can test

        def __init__(self, *, threshold: float = 0.5) -> None:
            self.threshold = threshold          # keyword-only configuration, no logic here

        def detect(self, reference, current):   # two DataFrames with the same columns
            results = []
            for name in current.columns:
                ref, cur = reference[name].dropna(), current[name].dropna()
                effect = abs(cur.mean() - ref.mean()) / (ref.std() or 1.0)
                results.append(ColumnDrift(
                    column=name, detector="mean_shift", statistic=effect, p_value=None,
                    effect_size=effect, threshold=self.threshold,
                    drifted=effect >= self.threshold,
                ))
            return DetectorResult(columns=tuple(results))

and an entry point in the ``mlflow_ext.detectors`` group (``mean_shift = "pkg.mod:MeanShift"``).
``reference`` is the profile's reference sample (at most ``sample_size`` rows) restricted to the
columns the detector was chosen for; ``current`` is the batch restricted to the same columns.
Nulls are left in: a detector drops them itself (the null rate is a data-quality finding, not drift).

Rules the checks rely on (``mlflow_ext.testing.check_detector`` verifies them):

- one ``ColumnDrift`` per column of ``current``, in order, with ``p_value`` in [0, 1] or None and
  a finite ``effect_size``; ``drifted`` is the detector's own verdict at its own alpha;
- a multivariate detector (MMD, classifier drift) returns its verdict over all the columns as
  ``DetectorResult.overall`` (``column="*"``) and may leave ``columns`` empty;
- ``check`` re-decides ``drifted`` for every column with p-values: corrected for the number of
  tests (``p_adjusted``) *and* ``effect_size >= threshold``, so set ``threshold`` to a practical
  effect size, not to 0.

The built-in detectors (mlflow_ext.builtin.detectors) implement the same protocol; ``check`` also
drives them through a faster private path that sorts each batch column once for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["OVERALL", "ColumnDrift", "Detector", "DetectorResult"]

OVERALL = "*"  # the column name of a multivariate result


@dataclass(frozen=True)
class ColumnDrift:
    """One drift test on one column (or on all of them, ``column == "*"``)."""

    column: str
    detector: str
    statistic: float
    p_value: float | None
    effect_size: float
    threshold: float
    drifted: bool
    p_adjusted: float | None = None


@dataclass(frozen=True)
class DetectorResult:
    """What a detector returns: one result per column, and optionally one multivariate verdict."""

    columns: tuple[ColumnDrift, ...] = ()
    overall: ColumnDrift | None = None


@runtime_checkable
class Detector(Protocol):
    """A drift detector plugin; see the module docstring for the contract."""

    kinds: ClassVar[frozenset[str]]
    """The column kinds it tests: a subset of numeric, categorical, boolean, datetime."""

    def detect(self, reference: pd.DataFrame, current: pd.DataFrame) -> DetectorResult:
        """Compare the reference sample with the current batch, column by column."""
        ...
