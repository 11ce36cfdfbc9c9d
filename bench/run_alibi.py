"""One run of alibi-detect's KSDrift (float columns) or TabularDrift (all columns), in its own venv.

Both are built on the full reference before timing (as a deployed detector would be); the timed
part turns the current DataFrame into the array alibi-detect takes and calls ``predict``. A column
is flagged when its p-value is below alibi-detect's own threshold (default Bonferroni correction,
p_val=0.05). TabularDrift gets the 3 categoricals as integer codes with ``categories_per_feature``.
"""

from __future__ import annotations

import data
import numpy as np
import pandas as pd
from _runner import arguments, emit, measure


def as_array(frame: pd.DataFrame, numeric: tuple[str, ...], categories: dict[str, pd.Index]) -> np.ndarray:
    """Float columns then categorical codes (in the reference's category order), as one float matrix."""
    out = np.empty((len(frame), len(numeric) + len(categories)), dtype=np.float64)
    out[:, : len(numeric)] = frame[list(numeric)].to_numpy(dtype=np.float64)
    for j, (name, levels) in enumerate(categories.items(), start=len(numeric)):
        out[:, j] = pd.Categorical(frame[name], categories=levels).codes
    return out


def main() -> None:
    args = arguments(__doc__ or "", variants=("ks", "tabular"))
    reference, current, truth = data.load(args.data)

    import alibi_detect
    from alibi_detect.cd import KSDrift, TabularDrift

    if args.variant == "ks":
        columns = list(truth.numeric)
        detector = KSDrift(reference[columns].to_numpy(dtype=np.float64), p_val=0.05)

        def prepare() -> np.ndarray:
            return np.asarray(current[columns].to_numpy(dtype=np.float64))
    else:
        columns = [*truth.numeric, *truth.categorical]
        categories = {name: pd.Index(sorted(reference[name].unique())) for name in truth.categorical}
        x_ref = as_array(reference, truth.numeric, categories)
        first_cat = len(truth.numeric)
        detector = TabularDrift(x_ref, p_val=0.05,
                                categories_per_feature={first_cat + i: None for i in range(len(categories))})
        del x_ref

        def prepare() -> np.ndarray:
            return as_array(current, truth.numeric, categories)
    del reference

    def run() -> np.ndarray:
        # drift_type="batch" (the default) is the one whose threshold carries the Bonferroni
        # correction; "feature" compares every p-value with the uncorrected p_val
        found = detector.predict(prepare(), drift_type="batch", return_p_val=True)["data"]
        return np.asarray(found["p_val"]) < float(found["threshold"])

    drifted, figures = measure(run)
    emit(
        f"alibi-detect {'KSDrift' if args.variant == 'ks' else 'TabularDrift'}", alibi_detect.__version__,
        [name for name, flag in zip(columns, drifted, strict=True) if flag],
        int(current.memory_usage(deep=True).sum()),
        **figures,
    )


if __name__ == "__main__":
    main()
