"""mlflow-ext-spark: the Spark engine of mlflow-ext (profiles and checks computed inside Spark).

Installed, it is found through the ``mlflow_ext.engines`` entry point: ``Profile.from_frame`` and
``mlflow_ext.check`` accept Spark DataFrames. ``SparkEngine`` is importable for its options;
``SparkSource`` feeds the watch loop from a Spark table or Parquet path.
"""

from mlflow_ext_spark.engine import SparkEngine
from mlflow_ext_spark.source import SparkSource

__all__ = ["SparkEngine", "SparkSource"]
