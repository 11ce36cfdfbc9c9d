"""Train the house-price regressor under @track: the backtest's (and a retrain's) training function.

A linear model on scaled numbers and one-hot neighbourhoods; the last fifth of the data is the
validation set whose metrics @track records (``mlflow_ext.val.mae``, ``rmse``, ``r2``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

import mlflow_ext

TARGET = "price_k"
NUMERIC = ["area_m2", "bedrooms", "age_years", "distance_km"]
CATEGORICAL = ["neighbourhood"]
FEATURES = NUMERIC + CATEGORICAL


def pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    encode = ColumnTransformer([("num", StandardScaler(), NUMERIC),
                                ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)])
    return make_pipeline(encode, Ridge(alpha=1.0))


@mlflow_ext.track(model_name="housing", experiment="housing-training", target=TARGET, validation="valid",
                  sample_size=1000, pip_requirements=["scikit-learn"])
def fit(data: pd.DataFrame, valid: pd.DataFrame) -> Any:
    return pipeline().fit(data[FEATURES], data[TARGET])


def train(data: pd.DataFrame) -> mlflow_ext.Tracked[Any]:
    """Fit on every row of ``data`` but the last fifth, which validates."""
    rows = data[FEATURES + [TARGET]].reset_index(drop=True)
    cut = len(rows) * 4 // 5
    return fit(rows.iloc[:cut], rows.iloc[cut:])


if __name__ == "__main__":
    # What the policy's retrain command runs in production: train on a labelled file, register a version.
    import sys

    from mlflow_ext._io import read_frame

    print(train(read_frame(sys.argv[1])).model_uri)
