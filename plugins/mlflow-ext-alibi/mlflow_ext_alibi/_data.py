"""Frames to the arrays alibi-detect takes: per column without nulls, or one standardized matrix."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from mlflow_ext.errors import ConfigError, DataError, PluginError
from mlflow_ext.profile import as_float, column_kind, validate_frame

if TYPE_CHECKING:
    import pandas as pd

TORCH_PIN = "torch==2.13.0"


def columns(detector: str, kinds: frozenset[str], reference: pd.DataFrame, current: pd.DataFrame
            ) -> list[tuple[str, str]]:
    """The (name, kind) of every column of ``current``, checked against ``reference`` and ``kinds``."""
    current = validate_frame(current, "The current batch")
    reference = validate_frame(reference, "The reference")
    missing = [name for name in current.columns if name not in reference.columns]
    if missing:
        raise DataError(f"Columns {missing[:5]!r} of the current batch are not in the reference.",
                        hint="Compare frames with the same columns.")
    out = []
    for name in current.columns:
        kind = column_kind(name, reference[name])
        if kind not in kinds:
            raise ConfigError(f"Detector {detector!r} cannot test {kind} column {name!r}; "
                              f"it tests {', '.join(sorted(kinds))} columns.")
        out.append((name, kind))
    return out


def finite(name: str, reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The finite values of one numeric column in both frames (nulls are a quality finding, not drift)."""
    ref, cur = as_float(reference), as_float(current)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if not len(ref) or not len(cur):
        raise DataError(f"Column {name!r} has no finite values to compare in "
                        f"{'the reference' if not len(ref) else 'the current batch'}.")
    return ref, cur


def codes(name: str, reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of one categorical column in both frames, over the union of their categories."""
    import pandas as pd

    ref, cur = reference.dropna().astype(str), current.dropna().astype(str)
    if not len(ref) or not len(cur):
        raise DataError(f"Column {name!r} has no values to compare in "
                        f"{'the reference' if not len(ref) else 'the current batch'}.")
    coded, _ = pd.factorize(pd.concat([ref, cur], ignore_index=True))
    return coded[: len(ref)].astype(np.int64), coded[len(ref):].astype(np.int64)


def cramers_v(ref: np.ndarray, cur: np.ndarray) -> float:
    """Cramér's V of two code arrays as if both had the same size, as the core's chi2 computes it."""
    size = int(max(ref.max(), cur.max())) + 1
    p = np.bincount(ref, minlength=size) / len(ref)
    q = np.bincount(cur, minlength=size) / len(cur)
    both = p + q
    return float(np.sqrt(np.sum((p - q)[both > 0] ** 2 / (2 * both[both > 0]))))


def subsample(rows: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most ``limit`` rows, drawn without replacement and kept in order (deterministic per seed)."""
    if len(rows) <= limit:
        return rows
    take = np.sort(np.random.default_rng(seed).choice(len(rows), size=limit, replace=False))
    return rows[take]


def matrix(detector: str, reference: pd.DataFrame, current: pd.DataFrame, kinds: list[tuple[str, str]],
           *, limit: int, seed: int, drop_missing: bool) -> tuple[np.ndarray, np.ndarray]:
    """Both frames as float32 matrices: numeric columns standardized by the reference, categories as codes.

    Kernel detectors need complete rows (``drop_missing``); tree classifiers take NaN as a value.
    """
    ref_cols, cur_cols = [], []
    for name, kind in kinds:
        if kind == "numeric":
            ref, cur = as_float(reference[name]), as_float(current[name])
            ref, cur = np.where(np.isfinite(ref), ref, np.nan), np.where(np.isfinite(cur), cur, np.nan)
            mean, std = np.nanmean(ref), np.nanstd(ref)
            # a kernel's bandwidth is one number for all columns: put them on the same scale
            scale = std if np.isfinite(std) and std > 0 else 1.0
            ref_cols.append((ref - mean) / scale)
            cur_cols.append((cur - mean) / scale)
        else:
            import pandas as pd

            joined = pd.concat([reference[name], current[name]], ignore_index=True)
            coded, _ = pd.factorize(joined.astype(str).where(joined.notna()))
            values = np.where(coded < 0, np.nan, coded).astype(np.float64)
            ref_cols.append(values[: len(reference)])
            cur_cols.append(values[len(reference):])
    ref_m = np.column_stack(ref_cols).astype(np.float32)
    cur_m = np.column_stack(cur_cols).astype(np.float32)
    if drop_missing:
        ref_m = ref_m[~np.isnan(ref_m).any(axis=1)]
        cur_m = cur_m[~np.isnan(cur_m).any(axis=1)]
    if len(ref_m) < 2 or len(cur_m) < 2:
        what = "the reference" if len(ref_m) < 2 else "the current batch"
        raise DataError(f"Detector {detector!r} needs at least 2 complete rows in {what}; "
                        f"it has {min(len(ref_m), len(cur_m))}.",
                        hint="Rows with a null or infinite value in any tested column are left out.")
    return subsample(ref_m, limit, seed), subsample(cur_m, limit, seed + 1)


def require_torch(detector: str) -> None:
    """Raise a PluginError naming the extra to install when PyTorch is missing."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise PluginError(
            f"Detector {detector!r} runs on alibi-detect's PyTorch backend, and PyTorch is not installed.",
            hint=f"Install the plugin's torch extra: pip install 'mlflow-ext-alibi[torch]' (it pins the CPU "
                 f"build, {TORCH_PIN}).",
        ) from exc
