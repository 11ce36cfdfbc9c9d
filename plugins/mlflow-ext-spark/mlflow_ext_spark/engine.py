"""The Spark engine: profiles and checks of Spark DataFrames, computed inside Spark.

Only summaries leave Spark: per-column counts, nulls, min/max/mean/std, quantile edges, counts at a
set of cut points (bin edges and the reference sample's distinct values), top category counts, and
a bounded sample of rows when a detector needs rows. The core's own check code then runs on those
summaries, so findings, messages and statuses are the numpy engine's. Each call costs a fixed
number of passes over the data whatever the number of columns (profile 5, check 3 or 4). What is
exact and what is approximate is in this plugin's README: with the default ``ks_points`` a check is
exact; past it, KS's D is at most ``1 / ks_points`` too small, never too large.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from mlflow_ext.builtin.detectors import (
    KS,
    NumericReference,
    _Builtin,
    category_bins,
    reference_bins,
    reference_state,
)
from mlflow_ext.checks import CheckResult, _plan, _Run, _run_check, _settings
from mlflow_ext.errors import ConfigError, DataError
from mlflow_ext.profile import ColumnProfile, Profile, parse_bins

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column
    from pyspark.sql import DataFrame as SparkFrame

__all__ = ["SparkEngine"]

# Spark type -> the pandas dtype a numpy-engine profile of the same data records
_NUMERIC = {"DoubleType": "float64", "FloatType": "float32", "LongType": "int64", "IntegerType": "int32",
            "ShortType": "int16", "ByteType": "int8", "DecimalType": "float64"}
_STRINGS = {"StringType", "VarcharType", "CharType"}
_TIMES = {"TimestampType": "datetime64[us]", "TimestampNTZType": "datetime64[us]", "DateType": "datetime64[s]"}
_EXTRA_RANKS = 5  # unseen categories beyond the reference's that a finding names


@dataclass(frozen=True)
class _Column:
    """One column of a Spark frame: its name, position, kind and the dtype the numpy engine would say."""

    name: str
    index: int
    kind: str
    dtype: str

    @property
    def expr(self) -> Column:
        from pyspark.sql import functions as F

        return F.col("`" + self.name.replace("`", "``") + "`")

    def finite(self) -> Column:
        """The column as doubles, null where it is null, NaN or infinite."""
        from pyspark.sql import functions as F

        x = self.expr.cast("double")
        return F.when(~F.isnan(x) & (F.abs(x) != float("inf")), x)


@dataclass(frozen=True)
class _Stats:
    """What the first pass computes for one column (numbers are over finite values)."""

    nulls: int
    n_inf: int = 0
    count: int = 0
    min: Any = None
    max: Any = None
    mean: float | None = None
    std: float | None = None


@dataclass(frozen=True)
class _Categories:
    """Counts of one categorical column: the collected values (count desc, then value) and totals."""

    values: list[str]
    counts: np.ndarray
    total: int
    distinct: int


class SparkEngine:
    """Profiles and checks Spark DataFrames.

    ``relative_error`` is approxQuantile's, for a profile's inner quantile edges. ``ks_points`` caps
    the reference values per column at which a check evaluates the batch's CDF for ``ks``: a
    reference sample with more distinct values than that is thinned to ``ks_points + 1`` of them at
    evenly spaced reference quantiles, and D is then at most ``1 / ks_points`` smaller than the exact
    D (never larger). The default equals the default ``sample_size``, so default checks are exact.
    """

    def __init__(self, *, relative_error: float = 1e-4, ks_points: int = 10_000) -> None:
        self.relative_error = relative_error
        self.ks_points = ks_points

    def accepts(self, frame: object) -> bool:
        """True for a classic or Spark Connect DataFrame (without importing pyspark for anything else)."""
        return any(c.__name__ == "DataFrame" and c.__module__.startswith("pyspark.sql")
                   for c in type(frame).__mro__)

    # -- profile -------------------------------------------------------------------------------------

    def profile(
        self, frame: Any, *, sample_size: int = 10_000, top_k: int = 20,
        bins: int | Mapping[str, Sequence[float]] = 10, seed: int = 0,
    ) -> Profile:
        """The Profile of a Spark DataFrame, as ``Profile.from_frame`` computes it for pandas."""
        if not (isinstance(self.relative_error, float) and 0 <= self.relative_error < 1):
            raise ConfigError(f"relative_error: expected a number in [0, 1), got {self.relative_error!r}.")
        columns = _columns(frame, "The data to profile")
        explicit, default_bins = parse_bins(bins, [c.name for c in columns])
        for column in columns:
            if column.kind == "unsupported":
                raise _unsupported(column)
            if column.name in explicit and column.kind != "numeric":
                raise ConfigError(f"bins[{column.name!r}]: edges apply to numeric columns; "
                                  f"{column.name!r} is {column.kind}.")
        if not columns:
            raise DataError("The data to profile has no columns.")
        n_rows, stats = _first_pass(frame, columns)
        if n_rows == 0:
            raise DataError("The data to profile has no rows.", hint="Profile a non-empty frame.")
        numeric = [c for c in columns if c.kind == "numeric" and stats[c.name].count]
        for column in numeric:
            if stats[column.name].n_inf:
                raise DataError(
                    f"Column {column.name!r} has {stats[column.name].n_inf} infinite value(s); a profile needs "
                    "finite numbers or nulls.",
                    hint="Replace infinities with null or NaN before profiling, or drop them.",
                )
        edges = dict(explicit)
        edges.update(self._edges(frame, [c for c in numeric if c.name not in explicit], stats, default_bins))
        counts = _cut_counts(frame, {c.name: edges[c.name] for c in numeric}, columns)
        categorical = [c for c in columns if c.kind in ("categorical", "boolean")]
        categories = _category_counts(frame, categorical, {c.name: top_k for c in categorical}, {})
        profiled: dict[str, ColumnProfile] = {}
        for column in columns:
            s = stats[column.name]
            if column.kind == "numeric":
                given = tuple(edges.get(column.name, np.empty(0)).tolist())
                if not s.count:
                    profiled[column.name] = ColumnProfile(column.name, "numeric", column.dtype, 0, s.nulls, edges=given,
                                                          counts=(0,) * (len(given) + 1) if given else ())
                    continue
                below, upto = counts[column.name]
                profiled[column.name] = ColumnProfile(
                    column.name, "numeric", column.dtype, s.count, s.nulls, min=float(s.min), max=float(s.max),
                    mean=s.mean, std=s.std, edges=given,
                    counts=tuple(_histogram(below, upto, s.count).tolist()),
                )
            elif column.kind == "datetime":
                profiled[column.name] = ColumnProfile(
                    column.name, "datetime", column.dtype, s.count, s.nulls,
                    min=None if s.min is None else pd.Timestamp(s.min).isoformat(),
                    max=None if s.max is None else pd.Timestamp(s.max).isoformat(),
                )
            else:
                cats = categories[column.name]
                kept = cats.counts[:top_k]
                profiled[column.name] = ColumnProfile(
                    column.name, column.kind, column.dtype, cats.total, s.nulls, values=tuple(cats.values[:top_k]),
                    counts=tuple(int(n) for n in kept), other=cats.total - int(kept.sum()),
                )
        return Profile(n_rows=n_rows, columns=profiled, sample_size=sample_size, top_k=top_k, bins=default_bins,
                       seed=seed, sample=_sample(frame, n_rows, sample_size, seed))

    def _edges(self, frame: SparkFrame, columns: list[_Column], stats: Mapping[str, _Stats],
               bins: int) -> dict[str, np.ndarray]:
        """Quantile edges like ``quantile_edges``: approxQuantile inside, the exact min and max outside."""
        if not columns:
            return {}
        finite = frame.select([c.finite().alias(f"c{i}") for i, c in enumerate(columns)])
        probs = np.linspace(0.0, 1.0, bins + 1).tolist()
        found = finite.approxQuantile([f"c{i}" for i in range(len(columns))], probs, self.relative_error)
        edges = {}
        for column, values in zip(columns, found, strict=True):
            s = stats[column.name]
            inner = np.clip(np.asarray(values[1:-1], dtype=np.float64), s.min, s.max)
            unique = np.unique(np.concatenate(([s.min], inner, [s.max])))
            edges[column.name] = np.repeat(unique, 2) if len(unique) == 1 else unique
        return edges

    # -- check ---------------------------------------------------------------------------------------

    def check(
        self, reference: Profile, current: Any, *, detectors: Mapping[str, Any] | None = None, alpha: float = 0.05,
        correction: str = "holm", drift_share: float = 0.5, min_drifted: int | None = None,
        max_null_increase: float = 0.05, max_new_share: float = 0.01,
    ) -> CheckResult:
        """Check a Spark DataFrame against a reference profile; options as for ``mlflow_ext.check``."""
        if isinstance(self.ks_points, bool) or not (isinstance(self.ks_points, int) and self.ks_points >= 1):
            raise ConfigError(f"ks_points: expected a whole number >= 1, got {self.ks_points!r}.")
        columns = _columns(current, "The current batch")
        settings = _settings(alpha, correction, drift_share, min_drifted, max_null_increase, max_new_share)
        plan, overall = _plan(reference, detectors)
        common = [c for c in columns if c.name in reference.columns]
        n_rows, stats = _first_pass(current, common)
        rows_needed = overall is not None or any(
            plan[c.name] is not None and not _from_summaries(plan[c.name]) for c in common)
        sample = (_sample(current, n_rows, reference.sample_size, reference.seed) if rows_needed and n_rows
                  else pd.DataFrame(columns=[c.name for c in columns]))
        run = _SparkRun(reference, sample, settings, plan)
        run.n_rows = n_rows
        run.prepare(current, {c.name: c for c in columns}, stats, self.ks_points)
        return _run_check(run, overall)


def _from_summaries(detector: Any) -> bool:
    """Whether a detector runs on this engine's summaries (else on the bounded sample of rows)."""
    return isinstance(detector, _Builtin) and (
        isinstance(detector, KS) or type(detector)._numeric is _Builtin._numeric)


def _thin(state: NumericReference, k: int) -> NumericReference:
    """The reference's CDF at no more than ``k + 1`` of its distinct values, for KS (all of them when
    there are at most ``k``).

    Kept: the smallest value and, for each j = 1..k, the first value at which the reference CDF
    reaches j/k. Between two kept values the reference sample has at most a 1/k share of its values,
    so the largest CDF difference found at the kept values is at most 1/k below the one at all of
    them: for a dropped value u between kept a < b, F_ref(u) - F_cur(u) <= F_ref(a) + 1/k - F_cur(a),
    and F_cur(u-) - F_ref(u-) <= F_cur(b-) - F_ref(b-) + 1/k.
    """
    if len(state.unique) <= k:
        return state
    n = len(state.sorted)
    targets = -(-np.arange(1, k + 1, dtype=np.int64) * n // k)  # ceil(j n / k): integers, no rounding
    keep = np.unique(np.concatenate(([0], np.searchsorted(state.upto_count, targets, side="left"))))
    return replace(state, unique=state.unique[keep], below=state.below[keep], upto=state.upto[keep],
                   upto_count=state.upto_count[keep])


class _SparkRun(_Run):
    """The core's check run, fed with summaries computed in Spark instead of pandas columns."""

    def prepare(self, frame: SparkFrame, columns: Mapping[str, _Column], stats: Mapping[str, _Stats],
                ks_points: int) -> None:
        """Compute the cut counts and category counts every tested column needs, in two Spark jobs."""
        self.columns, self.stats = columns, stats
        self.ks: dict[str, NumericReference] = {}
        tested = [columns[n] for n in self.reference.columns if n in columns and stats[n].count
                  and columns[n].kind == self.reference.columns[n].kind]
        cuts: dict[str, np.ndarray] = {}
        for column in tested:
            ref = self.reference.columns[column.name]
            if column.kind != "numeric" or not ref.count:
                continue
            points = [np.asarray(ref.edges, dtype=np.float64), np.asarray([ref.min, ref.max], dtype=np.float64)]
            if isinstance(self.plan[column.name], KS):
                self.ks[column.name] = _thin(reference_state(self.reference, column.name), ks_points)
                points.append(self.ks[column.name].unique)
            cuts[column.name] = np.unique(np.concatenate(points))
        self.cuts = cuts
        self.counts = _cut_counts(frame, cuts, list(columns.values()))
        categorical = [c for c in tested if c.kind in ("categorical", "boolean")]
        known = {c.name: self.reference.columns[c.name].values for c in categorical}
        self.categories = _category_counts(
            frame, categorical, {name: len(values) + _EXTRA_RANKS for name, values in known.items()}, known)

    def column(self, name: str) -> None:
        ref, column, s = self.reference.columns[name], self.columns[name], self.stats[name]
        if not self.comparable(name, ref, column.kind, column.dtype, lambda: s.nulls == self.n_rows):
            return
        if column.kind == "numeric":
            self._numeric_summary(name, ref, s)
        elif column.kind == "datetime":
            self._nulls(name, ref, s.nulls)
        else:
            self._categorical_summary(name, ref, s)

    def _numeric_summary(self, name: str, ref: ColumnProfile, s: _Stats) -> None:
        if not self._nulls(name, ref, s.nulls):
            return
        outside = 0
        if s.count:
            below, upto = self._at(name, [ref.min, ref.max])
            outside = int(below[0]) + s.count - int(upto[1])
        bounds = (float(s.min), float(s.max)) if s.count else (math.nan, math.nan)
        if not self.numeric_range(name, ref, s.n_inf, s.count, outside, *bounds):
            return
        detector = self.plan[name]
        if isinstance(detector, KS):
            state = self.ks[name]
            before, at = self._at(name, state.unique)
            self._raw(detector, name, detector._counts(state, before, at, s.count))
        elif detector is not None and _from_summaries(detector):
            assert isinstance(detector, _Builtin)  # _from_summaries says so
            below, upto = self._at(name, ref.edges)
            current = _histogram(below, upto, s.count).astype(np.float64)
            self._raw(detector, name, detector._categorical(np.asarray(ref.counts, dtype=np.float64), current))
        elif isinstance(detector, _Builtin):  # Wasserstein: on the bounded sample of the batch
            values = self.current[name].to_numpy(dtype=np.float64, na_value=np.nan)
            finite = np.sort(values[np.isfinite(values)])
            if len(finite):
                self._raw(detector, name, detector._numeric(reference_state(self.reference, name), finite))
        elif detector is not None:
            self._generic(detector, name)

    def _at(self, name: str, points: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Counts of the batch's finite values below and at or below each point (all cut points)."""
        below, upto = self.counts[name]
        where = np.searchsorted(self.cuts[name], np.asarray(points, dtype=np.float64))
        return below[where], upto[where]

    def _categorical_summary(self, name: str, ref: ColumnProfile, s: _Stats) -> None:
        if not self._nulls(name, ref, s.nulls):
            return
        cats = self.categories[name]
        known = set(ref.values)
        present = [i for i, v in enumerate(cats.values) if v in known]
        seen = int(cats.counts[present].sum()) if present else 0
        unseen = [v for v in cats.values if v not in known]
        self.unseen_categories(name, ref, cats.total, cats.total - seen, cats.distinct - len(present), unseen[:5])
        detector = self.plan[name]
        if isinstance(detector, _Builtin):
            bins = category_bins(ref, cats.values, cats.counts)
            bins[-1] += cats.total - int(cats.counts.sum())  # values beyond the collected ranks: all unseen
            self._raw(detector, name, detector._categorical(reference_bins(ref), bins))
        elif detector is not None:
            self._generic(detector, name)


# -- Spark passes -----------------------------------------------------------------------------------


def _columns(frame: Any, what: str) -> list[_Column]:
    """The frame's columns with their kinds; DataError for duplicate names."""
    names = [f.name for f in frame.schema.fields]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DataError(f"{what} has duplicate column names: {duplicated[:5]!r}.", hint="Make names unique.")
    columns = []
    for i, field in enumerate(frame.schema.fields):
        kind = type(field.dataType).__name__
        if kind in _NUMERIC:
            columns.append(_Column(field.name, i, "numeric", _NUMERIC[kind]))
        elif kind == "BooleanType":
            columns.append(_Column(field.name, i, "boolean", "bool"))
        elif kind in _STRINGS:
            columns.append(_Column(field.name, i, "categorical", str(pd.Series(["a"]).dtype)))
        elif kind in _TIMES:
            columns.append(_Column(field.name, i, "datetime", _TIMES[kind]))
        else:
            columns.append(_Column(field.name, i, "unsupported", field.dataType.simpleString()))
    return columns


def _unsupported(column: _Column) -> DataError:
    return DataError(
        f"Column {column.name!r} has an unsupported type: {column.dtype}. Supported: numbers, booleans, "
        "strings, dates and timestamps.",
        hint="Cast the column (e.g. intervals to seconds) or drop it before profiling.",
    )


def _first_pass(frame: SparkFrame, columns: Sequence[_Column]) -> tuple[int, dict[str, _Stats]]:
    """The row count and every column's null count, range and moments: one pass over the numeric
    columns and, when there are others, one over those (each reads only its own columns from a
    columnar source).

    The numeric columns are exploded into (column, value) rows aggregated per column: one row of
    seven aggregates per column would exceed whole-stage codegen's field limit (100) from about 14
    columns on, and Spark would evaluate it interpreted, several times slower.
    """
    from pyspark.sql import functions as F

    numeric = [c for c in columns if c.kind == "numeric"]
    others = [c for c in columns if c.kind != "numeric"]
    n_rows: int | None = None
    stats = {}
    if others or not numeric:
        exprs: list[Column] = [F.count(F.lit(1)).alias("n")]
        for c in others:
            i = c.index
            exprs += [F.count_if(c.expr.isNull()).alias(f"nulls{i}"), F.count(c.expr).alias(f"count{i}")]
            if c.kind == "datetime":
                exprs += [F.min(c.expr).alias(f"min{i}"), F.max(c.expr).alias(f"max{i}")]
        row = frame.select(exprs).first()
        assert row is not None  # a global aggregate always has one row
        data = row.asDict()
        n_rows = int(data["n"])
        for c in others:
            i = c.index
            stats[c.name] = _Stats(nulls=int(data[f"nulls{i}"]), count=int(data[f"count{i}"]),
                                   min=data.get(f"min{i}"), max=data.get(f"max{i}"))
    if numeric:
        pairs = F.posexplode(F.array(*[c.expr.cast("double") for c in numeric])).alias("c", "x")
        x = F.col("x")
        finite = F.when(~F.isnan(x) & (F.abs(x) != float("inf")), x)
        found = {r["c"]: r for r in frame.select(pairs).groupBy("c").agg(
            F.count(F.lit(1)).alias("n"), F.count_if(x.isNull() | F.isnan(x)).alias("nulls"),
            F.count_if(F.abs(x) == float("inf")).alias("inf"), F.count(finite).alias("count"),
            F.min(finite).alias("min"), F.max(finite).alias("max"), F.avg(finite).alias("mean"),
            F.stddev_samp(finite).alias("std")).collect()}
        if n_rows is None:  # every row gives one (column, value) row per column
            n_rows = int(found[0]["n"]) if found else 0
        for j, c in enumerate(numeric):
            r = found.get(j)  # none when the frame has no rows
            std = None if r is None else r["std"]
            stats[c.name] = _Stats(nulls=0) if r is None else _Stats(
                nulls=int(r["nulls"]), n_inf=int(r["inf"]), count=int(r["count"]), min=r["min"], max=r["max"],
                mean=r["mean"], std=None if std is None or math.isnan(std) else float(std))
    assert n_rows is not None  # one of the two passes ran
    return n_rows, stats


def _cut_counts(frame: SparkFrame, cuts: Mapping[str, np.ndarray],
                columns: Sequence[_Column]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each column, how many finite values lie below / at or below each of its (sorted, distinct)
    cut points: one pass over the columns, whatever their number or that of the cuts.

    Each partition is counted where it lies, by numpy in the executors' Python workers
    (``mapInArrow``): a value x with l cut points below it gets the code 2l + (x == cut l), which
    names the open interval or the cut point it falls on (one binary search per value), and
    ``bincount`` counts the codes. Only non-zero counts leave a partition; Spark sums them per
    (column, code), so the driver receives at most 2m + 1 numbers for a column of m cuts. Then
    below[j] is the number of codes < 2j + 1 and upto[j] that of codes <= 2j + 1. The executors need
    numpy and pyarrow (as for any pandas UDF), not mlflow-ext: the counting function is shipped by
    value.
    """
    if not cuts:
        return {}
    from pyspark.sql import functions as F

    by_name = {c.name: c for c in columns}
    names = list(cuts)
    # a sentinel above every finite value, so that the equality test needs no bounds check
    points = [np.append(np.asarray(cuts[n], dtype=np.float64), math.inf) for n in names]

    def count(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import numpy as np  # where the function runs: in an executor's Python worker
        import pyarrow as pa

        totals = [np.zeros(2 * len(p) - 1, dtype=np.int64) for p in points]
        for batch in batches:
            for i, p in enumerate(points):
                x = batch.column(i).to_numpy(zero_copy_only=False)  # nulls come out as NaN
                x = x[np.isfinite(x)]
                below = np.searchsorted(p, x, side="left")
                totals[i] += np.bincount(2 * below + (p[below] == x), minlength=len(totals[i]))
        where = [np.flatnonzero(t) for t in totals]
        yield pa.RecordBatch.from_arrays(
            [pa.array(np.repeat(np.arange(len(where), dtype=np.int32), [len(w) for w in where])),
             pa.array(np.concatenate(where).astype(np.int32)),
             pa.array(np.concatenate([t[w] for t, w in zip(totals, where, strict=True)]))],
            names=["c", "code", "n"])

    values = frame.select([by_name[n].expr.cast("double").alias(f"x{i}") for i, n in enumerate(names)])
    summed = (values.mapInArrow(count, "c int, code int, n long")
              .groupBy("c", "code").agg(F.sum("n").alias("n")).toArrow())
    c, code, n = (summed.column(k).to_numpy() for k in ("c", "code", "n"))
    result = {}
    for i, name in enumerate(names):
        m = len(cuts[name])
        per_code = np.zeros(2 * m + 1, dtype=np.int64)
        mine = c == i
        per_code[code[mine]] = n[mine]
        total = np.cumsum(per_code)
        result[name] = (total[0::2][:m], total[1::2])
    return result


def _histogram(below: np.ndarray, upto: np.ndarray, n: int) -> np.ndarray:
    """Counts in the bins of edges (see ColumnProfile) from the counts below / at or below each edge,
    exactly as ``profile.histogram`` counts sorted values."""
    return np.diff(np.concatenate(([0], below[:-1], upto[-1:], [n]))).astype(np.int64)


def _category_counts(frame: SparkFrame, columns: Sequence[_Column], ranks: Mapping[str, int],
                     keep: Mapping[str, Sequence[str]]) -> dict[str, _Categories]:
    """Value counts of categorical columns as strings (booleans as 'True'/'False'), most frequent
    first: the top ``ranks[name]`` values plus any value in ``keep[name]``, and each column's total
    and number of distinct values. One Spark job for all the columns."""
    if not columns:
        return {}
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    def as_text(c: _Column) -> Column:
        if c.kind == "boolean":
            return F.when(c.expr, F.lit("True")).when(~c.expr, F.lit("False"))
        return c.expr.cast("string")

    pairs = F.explode(F.array(*[F.struct(F.lit(i).alias("c"), as_text(c).alias("v")) for i, c in enumerate(columns)]))
    counts = frame.select(pairs.alias("p")).select("p.*").where(F.col("v").isNotNull()).groupBy("c", "v").count()
    ranked = counts.select(
        "c", "v", "count", F.row_number().over(Window.partitionBy("c").orderBy(F.desc("count"), "v")).alias("rank"),
        F.count(F.lit(1)).over(Window.partitionBy("c")).alias("distinct"),
        F.sum("count").over(Window.partitionBy("c")).alias("total"))
    wanted: Column = F.lit(False)
    for i, c in enumerate(columns):
        wanted = wanted | ((F.col("c") == i) & (F.col("rank") <= ranks[c.name]))
        if keep.get(c.name):
            wanted = wanted | ((F.col("c") == i) & F.col("v").isin(list(keep[c.name])))
    rows = ranked.where(wanted).orderBy("c", "rank").collect()
    result = {}
    for i, c in enumerate(columns):
        mine = [row for row in rows if row["c"] == i]
        result[c.name] = _Categories(
            values=[row["v"] for row in mine], counts=np.asarray([row["count"] for row in mine], dtype=np.int64),
            total=int(mine[0]["total"]) if mine else 0, distinct=int(mine[0]["distinct"]) if mine else 0)
    return result


def _sample(frame: SparkFrame, n_rows: int, size: int, seed: int) -> pd.DataFrame:
    """A uniform sample of at most ``size`` rows: a Bernoulli sample in Spark a little larger than
    ``size`` (so almost surely enough rows), cut down to ``size`` uniformly in the driver."""
    margin = size + 6 * math.sqrt(size) + 10
    fraction = min(1.0, margin / max(n_rows, 1))
    chosen = frame if fraction >= 1.0 else frame.sample(withReplacement=False, fraction=fraction, seed=seed)
    rows: pd.DataFrame = chosen.toPandas()
    if len(rows) > size:
        take = np.sort(np.random.default_rng(seed).choice(len(rows), size=size, replace=False))
        rows = rows.iloc[take]
    return rows.reset_index(drop=True)

