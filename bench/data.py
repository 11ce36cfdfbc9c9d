"""The benchmark's datasets: seeded reference and current batches on disk, with their ground truth.

For N rows and F float columns (plus 3 categoricals), ``ensure(n, f)`` writes once, under
bench/.data/n{N}_f{F}_s{seed}/: ``reference.parquet``, ``current.parquet`` and ``truth.json``.
Column j is Normal(mu_j, sigma_j) in both; in the current batch, 20% of the float columns (chosen
by the seed, listed in truth.json as ``drifted``) have their mean moved by 0.2 sigma_j. The
categoricals have the same distribution in both, so any categorical flagged is a false positive.

Every contender reads these files, so this module needs only numpy, pandas and pyarrow: it runs in
the project venv (to write) and in each peer's venv (to read and score).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent / ".data"
SHIFT_SD = 0.2
DRIFTED_SHARE = 0.2
# (name, number of levels): small, medium, and more levels than a profile's default top_k of 20
CATEGORICALS = (("cat_small", 3), ("cat_medium", 12), ("cat_large", 40))


@dataclass(frozen=True)
class Truth:
    """What was injected into a dataset: the columns by kind and the drifted ones."""

    n: int
    f: int
    seed: int
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    drifted: tuple[str, ...]
    shift_sd: float


@dataclass(frozen=True)
class Score:
    """Columns a contender flagged, against the truth."""

    true_positives: int
    false_positives: int
    missed: tuple[str, ...]
    wrongly_flagged: tuple[str, ...]


def folder(n: int, f: int, seed: int = 0, root: Path = ROOT) -> Path:
    """Where the dataset of that size and seed lives."""
    return root / f"n{n}_f{f}_s{seed}"


def _frame(rng: np.random.Generator, n: int, mu: np.ndarray, sigma: np.ndarray,
           shift: np.ndarray, cat_probs: list[np.ndarray]) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    for j in range(len(mu)):
        # one column at a time: a 1M x 100 float64 batch is 800 MB, no need for twice that
        columns[f"x{j:03d}"] = rng.normal(mu[j] + shift[j], sigma[j], size=n)
    for (name, levels), probs in zip(CATEGORICALS, cat_probs, strict=True):
        labels = np.array([f"{name}_{k:02d}" for k in range(levels)], dtype=object)
        columns[name] = labels[rng.choice(levels, size=n, p=probs)]
    return pd.DataFrame(columns)


def ensure(n: int, f: int, seed: int = 0, root: Path = ROOT) -> Path:
    """The dataset's folder, written first if it is not complete (truth.json is written last)."""
    out = folder(n, f, seed, root)
    if (out / "truth.json").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, n, f])
    mu = rng.uniform(-5.0, 5.0, size=f)
    sigma = rng.uniform(0.5, 3.0, size=f)
    k = max(1, round(DRIFTED_SHARE * f))
    drifted_idx = np.sort(rng.choice(f, size=k, replace=False))
    shift = np.zeros(f)
    shift[drifted_idx] = SHIFT_SD * sigma[drifted_idx]
    cat_probs = [rng.dirichlet(np.full(levels, 2.0)) for _, levels in CATEGORICALS]
    for stream, (name, batch_shift) in enumerate((("reference", np.zeros(f)), ("current", shift)), start=1):
        frame = _frame(np.random.default_rng([seed, n, f, stream]), n, mu, sigma, batch_shift, cat_probs)
        tmp = out / f".{name}.parquet.tmp"
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, out / f"{name}.parquet")
        del frame
    truth = Truth(
        n=n, f=f, seed=seed,
        numeric=tuple(f"x{j:03d}" for j in range(f)),
        categorical=tuple(name for name, _ in CATEGORICALS),
        drifted=tuple(f"x{j:03d}" for j in drifted_idx),
        shift_sd=SHIFT_SD,
    )
    (out / "truth.json").write_text(json.dumps(dataclasses.asdict(truth), indent=1))
    return out


def load_truth(path: Path) -> Truth:
    """The truth.json of a dataset folder."""
    raw = json.loads((path / "truth.json").read_text())
    return Truth(n=int(raw["n"]), f=int(raw["f"]), seed=int(raw["seed"]), numeric=tuple(raw["numeric"]),
                 categorical=tuple(raw["categorical"]), drifted=tuple(raw["drifted"]),
                 shift_sd=float(raw["shift_sd"]))


def load(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, Truth]:
    """Reference, current and truth of a dataset folder."""
    return (pd.read_parquet(path / "reference.parquet"), pd.read_parquet(path / "current.parquet"),
            load_truth(path))


def score(flagged: list[str], truth: Truth) -> Score:
    """True and false positive columns of a contender's flagged columns."""
    drifted, got = set(truth.drifted), set(flagged)
    return Score(
        true_positives=len(got & drifted),
        false_positives=len(got - drifted),
        missed=tuple(sorted(drifted - got)),
        wrongly_flagged=tuple(sorted(got - drifted)),
    )


def parse_size(text: str) -> tuple[int, int]:
    """'1000000x100' -> (1000000, 100); also accepts '1e6x100' and '100kx20' / '1mx20'."""
    try:
        rows, cols = text.lower().split("x")
        factor = {"k": 1_000, "m": 1_000_000}.get(rows[-1], 1)
        n = int(float(rows[:-1] if factor > 1 else rows) * factor)
        f = int(cols)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected ROWSxFLOATS, e.g. 100000x20 or 1mx100") from None
    if n < 2 or f < 1:
        raise argparse.ArgumentTypeError(f"size {text!r}: needs at least 2 rows and 1 float column")
    return n, f


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the benchmark datasets (once per size and seed).")
    parser.add_argument("sizes", nargs="+", type=parse_size, help="ROWSxFLOATS, e.g. 100kx20 1mx100")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for n, f in args.sizes:
        print(ensure(n, f, args.seed))


if __name__ == "__main__":
    main()
