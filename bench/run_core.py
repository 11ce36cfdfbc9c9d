"""One run of mlflow-ext's ``check`` (default detectors, data quality included), with the floor.

The reference profile is computed before timing, as in production. The floor (sorting every float
column of the current batch once, column by column into one reusable buffer: an exact KS cannot do
less) is measured in this same process right before and right after ``check``.
"""

from __future__ import annotations

import data
import numpy as np
import pandas as pd
from _runner import arguments, emit, measure, timed


def sort_floor(frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
    """Sort each column once into one reusable buffer."""
    buffer = np.empty(len(frame), dtype=np.float64)
    for name in columns:
        np.copyto(buffer, frame[name].to_numpy())
        buffer.sort()


def main() -> None:
    folder = arguments(__doc__ or "").data
    reference, current, truth = data.load(folder)

    import mlflow_ext
    from mlflow_ext import Profile, check

    profile = Profile.from_frame(reference)
    del reference
    _, floor_before = timed(lambda: sort_floor(current, truth.numeric))
    result, figures = measure(lambda: check(profile, current))
    _, floor_after = timed(lambda: sort_floor(current, truth.numeric))
    emit(
        "mlflow-ext check", mlflow_ext.__version__,
        [d.column for d in result.drift if d.drifted],
        int(current.memory_usage(deep=True).sum()),
        status=result.status,
        floor_seconds=[floor_before, floor_after],
        **figures,
    )


if __name__ == "__main__":
    main()
