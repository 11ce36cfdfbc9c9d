"""Reading tabular files (CSV, Parquet) into a pandas DataFrame, with DataError for anything else."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlflow_ext.errors import DataError

__all__ = ["read_frame"]

_PARQUET = {".parquet", ".pq"}
_CSV = {".csv", ".tsv", ".txt"}


def read_frame(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file (chosen by suffix) into a DataFrame; DataError when it cannot."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"No data file at {str(path)!r}.", hint="Pass the path of a CSV or Parquet file.")
    suffix = path.suffix.lower()
    if suffix not in _PARQUET | _CSV:
        raise DataError(
            f"{str(path)!r} is not a tabular file: suffix {suffix or '(none)'!r}. "
            f"Readable: {', '.join(sorted(_PARQUET | _CSV))}.",
            hint="Convert the data to CSV or Parquet.",
        )
    try:
        if suffix in _PARQUET:
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except Exception as exc:  # noqa: BLE001 - pandas/pyarrow raise many types for a bad file
        raise DataError(
            f"Cannot read {str(path)!r} as {'Parquet' if suffix in _PARQUET else 'CSV'}: "
            f"{type(exc).__name__}: {exc}",
            hint="Check that the file is complete and in the format its suffix says.",
        ) from exc
    if frame.shape[1] == 0:
        raise DataError(f"{str(path)!r} has no columns.", hint="Pass a file with a header and columns.")
    return frame
