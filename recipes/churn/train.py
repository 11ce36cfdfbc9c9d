"""Train the churn classifier under @track: the backtest's (and a retrain's) training function.

``train(data)`` fits on the most recent ``WINDOW`` labelled rows only (a sliding window): after a
shift, older rows describe customers who are gone, and a reference profile built on a mix of old
and new rows would keep reporting drift against the new ones. The last quarter of the window is
the validation set whose metrics @track records (``mlflow_ext.val.accuracy``, ...).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

import mlflow_ext

TARGET = "churned"
NUMERIC = ["tenure_months", "monthly_charges", "support_calls"]
CATEGORICAL = ["contract"]
FEATURES = NUMERIC + CATEGORICAL
WINDOW = 1000


def pipeline() -> Any:
    """Scaled numbers and one-hot contracts into a logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    encode = ColumnTransformer([("num", StandardScaler(), NUMERIC),
                                ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)])
    return make_pipeline(encode, LogisticRegression(max_iter=500))


# pip_requirements given: MLflow would otherwise infer them in a subprocess, most of @track's cost
@mlflow_ext.track(model_name="churn", experiment="churn-training", target=TARGET, validation="valid",
                  sample_size=1000, pip_requirements=["scikit-learn"])
def fit(data: pd.DataFrame, valid: pd.DataFrame) -> Any:
    return pipeline().fit(data[FEATURES], data[TARGET])


def train(data: pd.DataFrame) -> mlflow_ext.Tracked[Any]:
    """Fit on the last WINDOW rows of ``data`` (oldest first), validating on the last quarter of them."""
    recent = data[FEATURES + [TARGET]].tail(WINDOW).reset_index(drop=True)
    cut = len(recent) * 3 // 4
    return fit(recent.iloc[:cut], recent.iloc[cut:])


def train_stale(data: pd.DataFrame) -> mlflow_ext.Tracked[Any]:
    """A deliberately weak candidate: fit on the oldest rows only (the demo shows it refused)."""
    old = data[FEATURES + [TARGET]].head(WINDOW).reset_index(drop=True)
    cut = len(old) * 3 // 4
    return fit(old.iloc[:cut], old.iloc[cut:])


if __name__ == "__main__":
    # What the policy's retrain command runs in production: train on a labelled file, register a version.
    import sys

    from mlflow_ext._io import read_frame

    print(train(read_frame(sys.argv[1])).model_uri)
