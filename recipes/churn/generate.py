"""Seeded churn stream: a stable start, then a covariate shift that breaks the champion.

Customers have a tenure, monthly charges, support calls and a contract. The churn risk rises with
the monthly charges up to about 80 a month and falls above it (premium customers stay): the same
relation before and after the shift, P(churn | features) never changes. From batch ``shift_at`` on,
new customers pay 95-125 a month, where a model trained on the 40-80 range extrapolates the wrong
way: its accuracy collapses. Labels (did the customer churn?) arrive ``label_delay`` steps after
their batch.

    python recipes/churn/generate.py OUT_DIR [--no-drift] [--seed N]

writes OUT_DIR/history.toml (the backtest manifest), train.parquet, batches/ and labels/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mlflow_ext.backtest import write_manifest

HERE = Path(__file__).resolve().parent
ID, TARGET = "customer_id", "churned"
FEATURES = ["tenure_months", "monthly_charges", "support_calls", "contract"]
CONTRACTS = ["month-to-month", "one-year", "two-year"]


def customers(n: int, *, seed: int, shifted: bool, start_id: int) -> pd.DataFrame:
    """``n`` customers with their churn label; ``shifted`` moves the monthly charges up."""
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 12.0, n).round(1)
    charges = (rng.normal(110.0, 8.0, n) if shifted else rng.normal(60.0, 10.0, n)).round(2)
    calls = rng.poisson(1.5, n)
    contract = rng.choice(CONTRACTS, n, p=[0.5, 0.3, 0.2])
    # risk peaks at 80 a month: rising below, falling faster above
    price = np.where(charges <= 80.0, 0.15 * (charges - 60.0), 3.0 - 0.25 * (charges - 80.0))
    logit = (price - 0.06 * (tenure - 24.0) + 0.6 * (calls - 1.5)
             + np.select([contract == "month-to-month", contract == "one-year"], [1.0, -0.5], -1.5))
    churned = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return pd.DataFrame({ID: np.arange(start_id, start_id + n), "tenure_months": tenure,
                         "monthly_charges": charges, "support_calls": calls, "contract": contract,
                         TARGET: churned})


def generate(out: str | Path, *, seed: int = 0, drift: bool = True, n_batches: int = 7, batch_rows: int = 1000,
             train_rows: int = 1000, shift_at: int = 3, label_delay: int = 1) -> Path:
    """Write the stream and its manifest under ``out``; the manifest's path."""
    out = Path(out)
    (out / "batches").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(exist_ok=True)
    customers(train_rows, seed=seed, shifted=False, start_id=0).to_parquet(out / "train.parquet")
    steps: list[dict[str, object]] = []
    for index in range(n_batches + label_delay):
        step: dict[str, object] = {"at": index}
        if index < n_batches:
            frame = customers(batch_rows, seed=seed + 1 + index, shifted=drift and index >= shift_at,
                              start_id=100_000 * (index + 1))
            frame.drop(columns=[TARGET]).to_parquet(out / "batches" / f"batch-{index:02d}.parquet")
            frame[[ID, TARGET]].to_parquet(out / "labels" / f"labels-{index:02d}.parquet")
            step["batch"] = f"batches/batch-{index:02d}.parquet"
        if index >= label_delay:
            labelled = index - label_delay
            step["labels"] = [{"batch": f"batch-{labelled:02d}", "file": f"labels/labels-{labelled:02d}.parquet"}]
        steps.append(step)
    return write_manifest(out / "history.toml", model="churn", id_column=ID, target=TARGET,
                          train=f"{HERE / 'train.py'}:train", training="train.parquet", steps=steps,
                          comment=f"Churn stream from recipes/churn/generate.py (seed {seed}, "
                                  f"{'shift from batch ' + str(shift_at) if drift else 'no drift'}).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--no-drift", action="store_true", help="a stationary stream (nothing should fire)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(generate(args.out, seed=args.seed, drift=not args.no_drift))
    return 0


if __name__ == "__main__":
    sys.exit(main())
