"""Seeded house-price stream: the inputs drift, the model's error does not.

Prices (in thousands) are linear in floor area, bedrooms, age, distance to the centre and the
neighbourhood, with the same noise everywhere. From batch ``shift_at`` on, a new development
brings larger, newer houses in other neighbourhoods: every input column drifts, but the linear
model extrapolates exactly, so its error stays where it was. The right behaviour is a drift
warning and nothing else: no alert, no retrain. Sale prices arrive ``label_delay`` steps late.

    python recipes/housing/generate.py OUT_DIR [--no-drift] [--seed N]

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
ID, TARGET = "sale_id", "price_k"
NEIGHBOURHOODS = ["centre", "riverside", "hills", "docks"]
PREMIUM = {"centre": 60.0, "riverside": 40.0, "hills": 25.0, "docks": 0.0}


def sales(n: int, *, seed: int, shifted: bool, start_id: int) -> pd.DataFrame:
    """``n`` house sales with their price; ``shifted`` brings bigger, newer houses elsewhere."""
    rng = np.random.default_rng(seed)
    area = rng.normal(190.0 if shifted else 120.0, 25.0, n).clip(40.0).round(1)  # square metres
    bedrooms = np.clip(np.round(area / 40.0 + rng.normal(0.0, 0.7, n)), 1, 8).astype(int)
    age = rng.gamma(2.0, 5.0 if shifted else 15.0, n).round(1)
    distance = rng.gamma(2.0, 6.0 if shifted else 3.0, n).round(2)
    mix = [0.1, 0.2, 0.3, 0.4] if shifted else [0.4, 0.3, 0.2, 0.1]
    neighbourhood = rng.choice(NEIGHBOURHOODS, n, p=mix)
    price = (40.0 + 2.2 * area + 12.0 * bedrooms - 1.1 * age - 4.0 * distance
             + np.vectorize(PREMIUM.get)(neighbourhood) + rng.normal(0.0, 30.0, n))
    return pd.DataFrame({ID: np.arange(start_id, start_id + n), "area_m2": area, "bedrooms": bedrooms,
                         "age_years": age, "distance_km": distance, "neighbourhood": neighbourhood,
                         TARGET: price.round(1)})


def generate(out: str | Path, *, seed: int = 0, drift: bool = True, n_batches: int = 5, batch_rows: int = 500,
             train_rows: int = 1500, shift_at: int = 2, label_delay: int = 1) -> Path:
    """Write the stream and its manifest under ``out``; the manifest's path."""
    out = Path(out)
    (out / "batches").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(exist_ok=True)
    sales(train_rows, seed=seed, shifted=False, start_id=0).to_parquet(out / "train.parquet")
    steps: list[dict[str, object]] = []
    for index in range(n_batches + label_delay):
        step: dict[str, object] = {"at": index}
        if index < n_batches:
            frame = sales(batch_rows, seed=seed + 1 + index, shifted=drift and index >= shift_at,
                          start_id=100_000 * (index + 1))
            frame.drop(columns=[TARGET]).to_parquet(out / "batches" / f"batch-{index:02d}.parquet")
            frame[[ID, TARGET]].to_parquet(out / "labels" / f"labels-{index:02d}.parquet")
            step["batch"] = f"batches/batch-{index:02d}.parquet"
        if index >= label_delay:
            labelled = index - label_delay
            step["labels"] = [{"batch": f"batch-{labelled:02d}", "file": f"labels/labels-{labelled:02d}.parquet"}]
        steps.append(step)
    return write_manifest(out / "history.toml", model="housing", id_column=ID, target=TARGET,
                          train=f"{HERE / 'train.py'}:train", training="train.parquet", steps=steps,
                          comment=f"House-price stream from recipes/housing/generate.py (seed {seed}, "
                                  f"{'inputs drift from batch ' + str(shift_at) if drift else 'no drift'}).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--no-drift", action="store_true", help="a stationary stream")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(generate(args.out, seed=args.seed, drift=not args.no_drift))
    return 0


if __name__ == "__main__":
    sys.exit(main())
