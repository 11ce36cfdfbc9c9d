"""`make demo`: the most complete path that exists today, end to end on the embedded default.

Profiles a seeded training set, checks a clean batch and a drifted batch against it, and prints
what a user would see. It grows with the project: tracking, promotion and the closed loop.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mlflow_ext import Profile, check
from mlflow_ext.cli.data import render_check

OUT = Path("demo-output")


def make_frame(n: int, *, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.normal(40 + 8 * shift, 10, n).round(),
        "income": rng.lognormal(10 + 0.3 * shift, 0.5, n),
        "tenure months": rng.exponential(24, n),
        "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2] if shift == 0 else [0.3, 0.3, 0.4]),
    })


def main() -> int:
    OUT.mkdir(exist_ok=True)
    reference = Profile.from_frame(make_frame(50_000, shift=0.0, seed=1))
    reference.save(OUT / "profile")
    print(f"Profiled 50,000 training rows into {OUT / 'profile'}\n")
    for title, batch in [("clean batch", make_frame(20_000, shift=0.0, seed=2)),
                         ("drifted batch", make_frame(20_000, shift=1.0, seed=3))]:
        print(f"== {title}")
        render_check(check(reference, batch))
        print()
    print("Same from the command line: .venv/bin/mlflow-ext check DATA.parquet --reference demo-output/profile")
    return 0


if __name__ == "__main__":
    sys.exit(main())
