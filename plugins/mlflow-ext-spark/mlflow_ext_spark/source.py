"""A Spark table or Parquet path as the source of the watch loop: one batch per window.

``watch(settings, SparkSource(path="s3://bucket/scores/", batch_column="day"))`` processes each
value of ``batch_column`` once, in ascending order, like the files of a folder. A window's identity
is ``spark:<table or path>:<column>=<value>``; the loop records it, so a restarted watcher skips
the windows that are done. The loop scores the model on the window in the driver (``check_model``
takes pandas), so a window is collected with ``toPandas`` when it is processed, one at a time.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow_ext.errors import ConfigError
from mlflow_ext.monitor import Step
from mlflow_ext.tracking import TAG_PREFIX
from mlflow_ext.watch import recorded_sources

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame as SparkFrame

__all__ = ["SparkSource"]


class SparkSource:
    """The windows of a Spark table (``table``) or Parquet dataset (``path``), keyed by ``batch_column``."""

    def __init__(self, *, batch_column: str, table: str | None = None, path: str | Path | None = None,
                 spark: Any = None) -> None:
        self.batch_column = batch_column
        self.table = table
        self.path = path
        self.spark = spark

    def _location(self) -> str:
        if (self.table is None) == (self.path is None):
            raise ConfigError(f"SparkSource: give exactly one of table and path, got table={self.table!r}, "
                              f"path={self.path!r}.")
        return f"table:{self.table}" if self.table is not None else f"parquet:{self.path}"

    def _frame(self) -> SparkFrame:
        from pyspark.sql import SparkSession

        spark = self.spark or SparkSession.builder.getOrCreate()
        frame = spark.table(self.table) if self.table is not None else spark.read.parquet(str(self.path))
        if self.batch_column not in frame.columns:
            raise ConfigError(f"SparkSource: {self._location()} has no column {self.batch_column!r}. "
                              f"Columns: {', '.join(frame.columns[:10])}.",
                              hint="Pass batch_column=<the column that names each batch's window>.")
        return frame

    def steps(self) -> list[Step]:
        """One batch step per distinct value of the batch column, ascending (one small Spark job)."""
        location = self._location()
        frame = self._frame()
        values = sorted(row[0] for row in frame.select(self.batch_column).distinct().collect() if row[0] is not None)
        return [Step(kind="batch", name=f"{self.batch_column}={value}",
                     identity=f"spark:{location}:{self.batch_column}={value}",
                     loader=functools.partial(self._window, value)) for value in values]

    def _window(self, value: Any) -> pd.DataFrame:
        from pyspark.sql import functions as F

        frame = self._frame()
        window: pd.DataFrame = frame.where(F.col(self.batch_column) == F.lit(value)).drop(self.batch_column).toPandas()
        return window

    def processed(self, model: str) -> set[str]:
        """Identities of this source's windows that have a recorded result."""
        prefix = f"spark:{self._location()}:".replace("'", "\\'")
        return recorded_sources(model, f"tags.`{TAG_PREFIX}source_file` LIKE '{prefix}%'", self._location())
