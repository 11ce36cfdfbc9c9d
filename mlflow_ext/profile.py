"""Profile: the summary of a reference dataset that checks compare production batches against.

A profile holds, per column, its kind (numeric, categorical, boolean, datetime), count and nulls,
min/max/mean/std, quantile edges and histogram counts (numeric) or top-K value counts plus an
'other' bucket (categorical, boolean), and a bounded uniform sample of the rows for the detectors
that need rows. It serializes to versioned JSON (the sample goes to Parquet beside it) and merges:
the merge of two profiles with the same edges equals the profile of the concatenated data.

Conventions (binning, NaN policy) are in docs/statistics.md.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlflow_ext.errors import ConfigError, DataError, ProfileError

__all__ = ["KINDS", "SCHEMA_VERSION", "ColumnProfile", "Profile", "column_kind", "histogram"]

SCHEMA_VERSION = 1
KINDS = ("numeric", "categorical", "boolean", "datetime")
JSON_NAME = "profile.json"
SAMPLE_NAME = "reference.parquet"
_FORMAT = "mlflow-ext.profile"

# infer_dtype answers for object columns that we read as numbers / as categories
_NUMERIC_OBJECTS = {"integer", "floating", "mixed-integer-float", "decimal"}
_CATEGORICAL_OBJECTS = {"string", "empty", "mixed", "mixed-integer", "categorical"}


@dataclass(frozen=True)
class ColumnProfile:
    """The summary of one column.

    ``count`` is the number of non-null values. Numeric columns carry ``edges`` (non-decreasing,
    at least two) and ``counts`` with one more entry than edges: values below the first edge, one
    bin per pair of edges (each ``[lo, hi)``, the last ``[lo, hi]``), values above the last edge.
    Categorical and boolean columns carry the top-K ``values`` (as strings) with their ``counts``,
    and ``other``: how many values fell outside the top K.
    """

    name: str
    kind: str
    dtype: str
    count: int
    nulls: int
    min: float | str | None = None
    max: float | str | None = None
    mean: float | None = None
    std: float | None = None
    edges: tuple[float, ...] = ()
    counts: tuple[int, ...] = ()
    values: tuple[str, ...] = ()
    other: int = 0


def column_kind(name: str, series: pd.Series) -> str:
    """The kind of a column (numeric, categorical, boolean, datetime); DataError for the rest."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_complex_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise _unknown_type(name, str(dtype))
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred == "boolean":
            return "boolean"
        if inferred in _NUMERIC_OBJECTS:
            return "numeric"
        if inferred in _CATEGORICAL_OBJECTS:
            return "categorical"
        raise _unknown_type(name, f"object holding {inferred} values")
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
        return "categorical"
    raise _unknown_type(name, str(dtype))


def _unknown_type(name: str, what: str) -> DataError:
    return DataError(
        f"Column {name!r} has an unsupported type: {what}. Supported: numbers, booleans, "
        "strings or categories, datetimes.",
        hint="Convert the column (e.g. timedeltas to seconds) or drop it before profiling.",
    )


def as_float(series: pd.Series) -> np.ndarray:
    """The values of a numeric or boolean column as float64, nulls as NaN (a view when possible)."""
    try:
        return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan))
    except (TypeError, ValueError) as exc:
        raise DataError(f"Column {series.name!r} has values that are not numbers: {exc}") from exc


def histogram(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of sorted finite values in the bins of ``edges`` (see ColumnProfile), int64."""
    cuts = np.empty(len(edges), dtype=np.int64)
    cuts[:-1] = np.searchsorted(sorted_values, edges[:-1], side="left")
    cuts[-1] = np.searchsorted(sorted_values, edges[-1], side="right")
    return np.diff(cuts, prepend=0, append=len(sorted_values))


def quantile_edges(sorted_values: np.ndarray, bins: int) -> np.ndarray:
    """Deduplicated quantile edges of sorted finite values; a constant column gets [c, c]."""
    edges = np.unique(np.quantile(sorted_values, np.linspace(0.0, 1.0, bins + 1)))
    return np.repeat(edges, 2) if len(edges) == 1 else edges


def category_counts(series: pd.Series) -> tuple[list[str], np.ndarray, int]:
    """Distinct values as strings, their counts (by count desc, then value) and the null count."""
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    except TypeError as exc:
        raise DataError(
            f"Column {series.name!r} holds values that cannot be counted as categories: {exc}",
            hint="Keep only scalars (strings, numbers, booleans) in categorical columns.",
        ) from exc
    valid = codes[codes >= 0]
    nulls = len(codes) - len(valid)
    counts = np.bincount(valid, minlength=len(uniques))
    names = pd.Index(uniques).astype(str)
    if names.has_duplicates:  # 1 and "1" are one category once compared as strings
        summed = pd.Series(counts, index=names).groupby(level=0, sort=False).sum()
        names, counts = summed.index, summed.to_numpy()
    order = np.lexsort((np.asarray(names, dtype=object), -counts))
    return [str(names[i]) for i in order], counts[order].astype(np.int64), nulls


def _finite_sorted(name: str, series: pd.Series) -> tuple[np.ndarray, int]:
    values = as_float(series)
    nulls = int(np.isnan(values).sum())
    finite = np.sort(values[~np.isnan(values)])
    if len(finite) and not (np.isfinite(finite[0]) and np.isfinite(finite[-1])):
        n_inf = int(np.isinf(finite).sum())
        raise DataError(
            f"Column {name!r} has {n_inf} infinite value(s); a profile needs finite numbers or nulls.",
            hint="Replace infinities with NaN (df.replace([np.inf, -np.inf], np.nan)) or drop them.",
        )
    return finite, nulls


def _numeric_profile(name: str, series: pd.Series, bins: int | np.ndarray) -> ColumnProfile:
    finite, nulls = _finite_sorted(name, series)
    dtype = str(series.dtype)
    if not len(finite):
        given = () if isinstance(bins, int) else tuple(bins.tolist())
        return ColumnProfile(
            name, "numeric", dtype, 0, nulls, edges=given, counts=(0,) * (len(given) + 1) if given else ()
        )
    # scaled so that sums of huge values do not overflow
    scale = max(abs(float(finite[0])), abs(float(finite[-1]))) or 1.0
    mean = float(np.mean(finite / scale)) * scale
    std = float(np.std(finite / scale, ddof=1)) * scale if len(finite) > 1 else None
    if not math.isfinite(mean) or (std is not None and not math.isfinite(std)):
        raise DataError(f"Column {name!r} has values too large to summarize (mean or std overflows).")
    edges = quantile_edges(finite, bins) if isinstance(bins, int) else bins
    return ColumnProfile(
        name,
        "numeric",
        dtype,
        len(finite),
        nulls,
        min=float(finite[0]),
        max=float(finite[-1]),
        mean=mean,
        std=std,
        edges=tuple(edges.tolist()),
        counts=tuple(histogram(finite, edges).tolist()),
    )


def _categorical_profile(name: str, series: pd.Series, kind: str, top_k: int) -> ColumnProfile:
    values, counts, nulls = category_counts(series)
    return ColumnProfile(
        name=name,
        kind=kind,
        dtype=str(series.dtype),
        count=int(counts.sum()),
        nulls=nulls,
        values=tuple(values[:top_k]),
        counts=tuple(counts[:top_k].tolist()),
        other=int(counts[top_k:].sum()),
    )


def _datetime_profile(name: str, series: pd.Series) -> ColumnProfile:
    valid = series.dropna()
    return ColumnProfile(
        name=name,
        kind="datetime",
        dtype=str(series.dtype),
        count=len(valid),
        nulls=len(series) - len(valid),
        min=valid.min().isoformat() if len(valid) else None,
        max=valid.max().isoformat() if len(valid) else None,
    )


def validate_frame(frame: Any, what: str) -> pd.DataFrame:
    """The frame itself when it can be profiled or checked; DataError naming what is wrong."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}.")
    bad = [c for c in frame.columns if not isinstance(c, str)]
    if bad:
        raise DataError(
            f"{what} has column names that are not strings: {bad[:5]!r}.",
            hint="Rename them, e.g. df.columns = df.columns.astype(str).",
        )
    duplicated = sorted(set(frame.columns[frame.columns.duplicated()]))
    if duplicated:
        raise DataError(f"{what} has duplicate column names: {duplicated[:5]!r}.", hint="Make names unique.")
    return frame


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return value


def _explicit_edges(name: str, edges: Sequence[float]) -> np.ndarray:
    try:
        array = np.asarray(edges, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bins[{name!r}]: edges must be numbers, got {edges!r}.") from exc
    if array.ndim != 1 or len(array) < 1 or not np.isfinite(array).all() or (np.diff(array) < 0).any():
        raise ConfigError(
            f"bins[{name!r}]: edges must be a non-empty, non-decreasing list of finite numbers, "
            f"got {list(array.ravel())[:10]!r}."
        )
    array = np.unique(array)
    return np.repeat(array, 2) if len(array) == 1 else array


def parse_bins(
    bins: int | Mapping[str, Sequence[float]], columns: Sequence[str] | pd.Index
) -> tuple[dict[str, np.ndarray], int]:
    """The explicit edges per column and the default number of bins that ``bins=`` asks for."""
    if isinstance(bins, Mapping):
        unknown = sorted(set(bins) - set(columns))
        if unknown:
            raise ConfigError(f"bins names columns that are not in the data: {unknown[:5]!r}.")
        return {name: _explicit_edges(name, edges) for name, edges in bins.items()}, 10
    return {}, _check_int(bins, "bins", 1)


@dataclass(frozen=True)
class Profile:
    """The summary of a reference dataset, with a bounded uniform sample of its rows beside it."""

    n_rows: int
    columns: Mapping[str, ColumnProfile]
    sample_size: int = 10_000
    top_k: int = 20
    bins: int = 10
    seed: int = 0
    schema_version: int = SCHEMA_VERSION
    sample: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    # learned state of detectors (sorted sample columns...), computed once per profile
    learned: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        *,
        sample_size: int = 10_000,
        top_k: int = 20,
        bins: int | Mapping[str, Sequence[float]] = 10,
        seed: int = 0,
    ) -> Profile:
        """Profile a DataFrame; ``bins`` is a number of quantile bins or edges per column name.

        Another kind of frame (a Spark DataFrame) is profiled by the installed engine that accepts it.
        """
        _check_int(sample_size, "sample_size", 1)
        _check_int(top_k, "top_k", 1)
        _check_int(seed, "seed", 0)
        if not isinstance(df, pd.DataFrame):
            from mlflow_ext.engines import engine_for

            engine = engine_for(df, "The data to profile")
            return engine.profile(df, sample_size=sample_size, top_k=top_k, bins=bins, seed=seed)
        df = validate_frame(df, "The data to profile")
        explicit, default_bins = parse_bins(bins, df.columns)
        if df.shape[1] == 0:
            raise DataError("The data to profile has no columns.")
        if len(df) == 0:
            raise DataError("The data to profile has no rows.", hint="Profile a non-empty frame.")
        columns: dict[str, ColumnProfile] = {}
        for name in df.columns:
            series = df[name]
            kind = column_kind(name, series)
            if name in explicit and kind != "numeric":
                raise ConfigError(f"bins[{name!r}]: edges apply to numeric columns; {name!r} is {kind}.")
            if kind == "numeric":
                columns[name] = _numeric_profile(name, series, explicit.get(name, default_bins))
            elif kind == "datetime":
                columns[name] = _datetime_profile(name, series)
            else:
                columns[name] = _categorical_profile(name, series, kind, top_k)
        rng = np.random.default_rng(seed)
        take = np.sort(rng.choice(len(df), size=min(sample_size, len(df)), replace=False))
        sample = df.iloc[take].reset_index(drop=True)
        return cls(
            n_rows=len(df), columns=columns, sample_size=sample_size, top_k=top_k,
            bins=default_bins, seed=seed, sample=sample,
        )

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> Profile:
        """Profile a CSV or Parquet file; options as for ``from_frame``."""
        from mlflow_ext._io import read_frame

        return cls.from_frame(read_frame(path), **options)

    @property
    def edges(self) -> dict[str, tuple[float, ...]]:
        """The bin edges of every numeric column (pass as ``bins=`` to profile more data alike)."""
        return {name: col.edges for name, col in self.columns.items() if col.kind == "numeric" and col.edges}

    # -- JSON ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the summary (the sample is not part of it)."""
        return {
            "format": _FORMAT,
            "schema_version": self.schema_version,
            "n_rows": self.n_rows,
            "sample_size": self.sample_size,
            "top_k": self.top_k,
            "bins": self.bins,
            "seed": self.seed,
            "columns": [dataclasses.asdict(col) for col in self.columns.values()],
        }

    def to_json(self) -> str:
        """The versioned JSON text of the summary."""
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "profile") -> Profile:
        """Read a profile back from ``to_json`` text; ProfileError when corrupt or too new."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProfileError(
                f"{source}: not valid JSON ({exc}).", hint="Recompute it with 'mlflow-ext profile'."
            ) from exc
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "profile") -> Profile:
        """Read a profile from ``to_dict`` output; ProfileError when corrupt or too new."""
        reader = _Reader(source)
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise reader.error("", "not an mlflow-ext profile (no 'format': 'mlflow-ext.profile')")
        version = reader.get(data, "schema_version", int)
        if version > SCHEMA_VERSION:
            raise ProfileError(
                f"{source}: written by a newer mlflow-ext (profile schema {version}); this version "
                f"reads schema {SCHEMA_VERSION} and older.",
                hint="Upgrade mlflow-ext (pip install -U mlflow-ext).",
            )
        if version < 1:
            raise reader.error("schema_version", f"expected >= 1, got {version}")
        raw_columns = reader.get(data, "columns", list)
        columns: dict[str, ColumnProfile] = {}
        for i, raw in enumerate(raw_columns):
            col = reader.column(raw, f"columns[{i}]")
            if col.name in columns:
                raise reader.error(f"columns[{i}].name", f"duplicate column {col.name!r}")
            columns[col.name] = col
        return cls(
            n_rows=reader.get(data, "n_rows", int),
            columns=columns,
            sample_size=reader.get(data, "sample_size", int),
            top_k=reader.get(data, "top_k", int),
            bins=reader.get(data, "bins", int),
            seed=reader.get(data, "seed", int),
            schema_version=version,
        )

    # -- files --------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the JSON and the sample; ``path`` is a directory or a ``.json`` file. Returns the JSON path.

        In a directory: ``profile.json`` and ``reference.parquet``; for ``x.json``: ``x.parquet``
        beside it. Files are written to temporaries and renamed, so a failure leaves nothing half-written.
        """
        path = Path(path)
        json_path = path if path.suffix.lower() == ".json" else path / JSON_NAME
        sample_path = json_path.with_suffix(".parquet") if json_path.name != JSON_NAME else (
            json_path.parent / SAMPLE_NAME
        )
        json_path.parent.mkdir(parents=True, exist_ok=True)
        document = self.to_dict()
        document["sample_file"] = sample_path.name if self.sample is not None else None
        sample = self.sample
        # the sample is renamed into place before the JSON that points at it
        with _Staged(json_path) as staged_json, _Staged(sample_path) as staged_sample:
            if sample is not None:
                sample.to_parquet(staged_sample.path, index=False)
            staged_json.path.write_text(
                json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False), encoding="utf-8"
            )
        return json_path

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        """Load a saved profile (its directory or its JSON path), with its sample when saved."""
        path = Path(path)
        json_path = path / JSON_NAME if path.is_dir() else path
        try:
            text = json_path.read_bytes()
        except OSError as exc:
            raise ProfileError(
                f"Cannot read the profile {str(json_path)!r}: {exc.strerror or exc}.",
                hint="Pass a profile directory or its profile.json, as written by 'mlflow-ext profile'.",
            ) from exc
        profile = cls.from_json(text, source=str(json_path))
        sample_file = json.loads(text).get("sample_file")
        if sample_file is None:
            return profile
        if not isinstance(sample_file, str) or "/" in sample_file or "\\" in sample_file:
            raise ProfileError(f"{json_path}: sample_file: expected a file name, got {sample_file!r}.")
        sample_path = json_path.parent / sample_file
        try:
            sample = pd.read_parquet(sample_path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
            raise ProfileError(
                f"Cannot read the reference sample {str(sample_path)!r} of {str(json_path)!r}: "
                f"{type(exc).__name__}: {exc}",
                hint="Keep the .parquet file beside the profile JSON, or recompute the profile.",
            ) from exc
        if list(sample.columns) != list(profile.columns):
            raise ProfileError(
                f"The reference sample {str(sample_path)!r} has columns {list(sample.columns)[:5]!r}..., "
                f"not the profile's {list(profile.columns)[:5]!r}...",
                hint="Recompute the profile: the sample and the JSON are from different data.",
            )
        return dataclasses.replace(profile, sample=sample)

    # -- merge --------------------------------------------------------------------------------

    def merge(self, other: Profile) -> Profile:
        """The profile of both datasets together; both need the same columns, kinds and edges."""
        if not isinstance(other, Profile):
            raise ProfileError(f"Can only merge a Profile with a Profile, got {type(other).__name__}.")
        if list(self.columns) != list(other.columns):
            raise ProfileError(
                f"Cannot merge profiles of different columns: {list(self.columns)[:5]!r} vs "
                f"{list(other.columns)[:5]!r}.",
            )
        columns = {name: _merge_column(col, other.columns[name], self.top_k) for name, col in self.columns.items()}
        return dataclasses.replace(
            self, n_rows=self.n_rows + other.n_rows, columns=columns, sample=self._merged_sample(other)
        )

    def _merged_sample(self, other: Profile) -> pd.DataFrame | None:
        """A uniform sample of the union from the two uniform samples (hypergeometric split)."""
        if self.sample is None or other.sample is None:
            return None
        rng = np.random.default_rng(self.seed)
        size = min(self.sample_size, self.n_rows + other.n_rows)
        from_self = int(rng.hypergeometric(self.n_rows, other.n_rows, size))
        from_self = min(from_self, len(self.sample))
        from_other = min(size - from_self, len(other.sample))
        parts = [
            frame.iloc[np.sort(rng.choice(len(frame), size=k, replace=False))]
            for frame, k in ((self.sample, from_self), (other.sample, from_other))
        ]
        return pd.concat(parts, ignore_index=True)


def _merge_column(a: ColumnProfile, b: ColumnProfile, top_k: int) -> ColumnProfile:
    if a.kind != b.kind:
        raise ProfileError(f"Cannot merge column {a.name!r}: it is {a.kind} in one profile, {b.kind} in the other.")
    count, nulls = a.count + b.count, a.nulls + b.nulls
    if a.kind == "numeric":
        if a.edges != b.edges and a.count and b.count:
            raise ProfileError(
                f"Cannot merge column {a.name!r}: the profiles have different bin edges.",
                hint="Profile the second dataset with bins=first.edges so both share them.",
            )
        if not b.count:
            return dataclasses.replace(a, nulls=nulls)
        if not a.count:
            return dataclasses.replace(b, nulls=nulls)
        assert a.mean is not None and b.mean is not None  # count > 0 guarantees them
        delta = b.mean - a.mean
        mean = a.mean + delta * b.count / count
        m2 = _m2(a) + _m2(b) + delta * delta * a.count * b.count / count
        std = math.sqrt(m2 / (count - 1))
        if not (math.isfinite(mean) and math.isfinite(std)):
            raise ProfileError(f"Cannot merge column {a.name!r}: the values are too large (overflow).")
        return dataclasses.replace(
            a,
            count=count,
            nulls=nulls,
            min=min(_num(a.min), _num(b.min)),
            max=max(_num(a.max), _num(b.max)),
            mean=mean,
            std=std,
            counts=tuple(x + y for x, y in zip(a.counts, b.counts, strict=True)),
        )
    if a.kind == "datetime":
        stamps = [pd.Timestamp(v) for v in (a.min, a.max, b.min, b.max) if v is not None]
        return dataclasses.replace(
            a, count=count, nulls=nulls,
            min=min(stamps).isoformat() if stamps else None,
            max=max(stamps).isoformat() if stamps else None,
        )
    merged: dict[str, int] = dict(zip(a.values, a.counts, strict=True))
    for value, n in zip(b.values, b.counts, strict=True):
        merged[value] = merged.get(value, 0) + n
    ranked = sorted(merged.items(), key=lambda item: (-item[1], item[0]))
    return dataclasses.replace(
        a,
        count=count,
        nulls=nulls,
        values=tuple(v for v, _ in ranked[:top_k]),
        counts=tuple(n for _, n in ranked[:top_k]),
        other=a.other + b.other + sum(n for _, n in ranked[top_k:]),
    )


def _num(value: float | str | None) -> float:
    assert isinstance(value, float)  # numeric columns with count > 0 always have min and max
    return value


def _m2(col: ColumnProfile) -> float:
    return 0.0 if col.std is None else col.std * col.std * (col.count - 1)


class _Reader:
    """Typed access to a JSON document that turns every surprise into a ProfileError naming the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, where: str, what: str) -> ProfileError:
        place = f"{self.source}: {where}: " if where else f"{self.source}: "
        return ProfileError(f"{place}{what}.", hint="The file is corrupt; recompute it with 'mlflow-ext profile'.")

    def get(self, data: dict[str, Any], key: str, kind: type, where: str = "", optional: bool = False) -> Any:
        path = f"{where}.{key}" if where else key
        if key not in data:
            raise self.error(path, "missing")
        value = data[key]
        if value is None and optional:
            return None
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            value = float(value) if ok else value
        if not ok:
            raise self.error(path, f"expected {kind.__name__}, got {value!r}")
        return value

    def column(self, raw: Any, where: str) -> ColumnProfile:
        if not isinstance(raw, dict):
            raise self.error(where, f"expected an object, got {raw!r}")
        kind = self.get(raw, "kind", str, where)
        if kind not in KINDS:
            raise self.error(f"{where}.kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
        bound = str if kind == "datetime" else float
        col = ColumnProfile(
            name=self.get(raw, "name", str, where),
            kind=kind,
            dtype=self.get(raw, "dtype", str, where),
            count=self.get(raw, "count", int, where),
            nulls=self.get(raw, "nulls", int, where),
            min=self.get(raw, "min", bound, where, optional=True),
            max=self.get(raw, "max", bound, where, optional=True),
            mean=self.get(raw, "mean", float, where, optional=True),
            std=self.get(raw, "std", float, where, optional=True),
            edges=tuple(self.get({"v": v}, "v", float, f"{where}.edges") for v in self.get(raw, "edges", list, where)),
            counts=tuple(self.get({"v": v}, "v", int, f"{where}.counts") for v in self.get(raw, "counts", list, where)),
            values=tuple(self.get({"v": v}, "v", str, f"{where}.values") for v in self.get(raw, "values", list, where)),
            other=self.get(raw, "other", int, where),
        )
        if kind == "numeric" and col.edges and (len(col.counts) != len(col.edges) + 1 or len(col.edges) < 2):
            raise self.error(f"{where}.counts", "expected at least two edges and one more count than edges")
        if kind == "numeric" and col.count and not col.edges:
            raise self.error(f"{where}.edges", "missing for a numeric column with values")
        if kind in ("categorical", "boolean") and len(col.values) != len(col.counts):
            raise self.error(f"{where}.counts", "expected one count per value")
        if any(n < 0 for n in (col.count, col.nulls, col.other, *col.counts)):
            raise self.error(where, "counts must not be negative")
        return col


class _Staged:
    """A temporary file beside ``target`` renamed onto it on success, removed on failure."""

    def __init__(self, target: Path) -> None:
        self.target = target
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        self.path = Path(name)

    def __enter__(self) -> _Staged:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None and self.path.stat().st_size:
            os.replace(self.path, self.target)
        else:
            self.path.unlink(missing_ok=True)
