"""One run of Evidently's data drift report (``DataDriftPreset``, default settings), in its own venv.

Evidently takes both frames on every run (nothing about the reference can be prepared beforehand),
so the timed part is ``Report.run`` plus reading the per-column verdicts. They come from the
report's own per-column drift tests (``include_tests=True``): a column is flagged when its
"Value Drift" test failed, i.e. Evidently's default method and threshold for that column said drift.
"""

from __future__ import annotations

from typing import Any

import data
from _runner import arguments, emit, measure


def flagged_columns(report: dict[str, Any]) -> list[str]:
    """Columns whose ValueDrift test failed in a report's dict."""
    out = []
    for test in report["tests"]:
        params = test.get("metric_config", {}).get("params", {})
        status = getattr(test["status"], "value", test["status"])
        if params.get("type") == "evidently:metric_v2:ValueDrift" and status == "FAIL":
            out.append(params["column"])
    return out


def main() -> None:
    folder = arguments(__doc__ or "").data
    reference, current, _ = data.load(folder)

    import evidently
    from evidently import Report
    from evidently.presets import DataDriftPreset

    def run() -> list[str]:
        snapshot = Report([DataDriftPreset()], include_tests=True).run(
            current_data=current, reference_data=reference)
        return flagged_columns(snapshot.dict())

    flagged, figures = measure(run)
    emit("Evidently DataDriftPreset", evidently.__version__, flagged,
         int(current.memory_usage(deep=True).sum()), **figures)


if __name__ == "__main__":
    main()
