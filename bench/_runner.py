"""What every contender's runner shares: argument, peak-memory reset, timing, one JSON line out.

A runner measures one run in a fresh process: it loads the dataset and prepares what production
would have prepared beforehand (not timed), resets the peak resident set size, times the
operation, and prints one JSON object on stdout for bench_drift.py.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
MB = 1024 * 1024


def arguments(description: str, variants: tuple[str, ...] = ()) -> argparse.Namespace:
    """The dataset folder (``.data``) and, for runners of several detectors, ``.variant``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("data", type=Path, help="a folder written by bench/data.py")
    if variants:
        parser.add_argument("variant", choices=variants)
    return parser.parse_args()


def peak_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    """Lower the peak RSS to the current RSS, so the next peak is the operation's, not the load's.

    Reading Parquet into pandas peaks above what stays resident; without the reset that transient
    would hide the operation's own peak. Linux only (/proc/self/clear_refs, value 5).
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def timed(operation: Callable[[], T]) -> tuple[T, float]:
    """The operation's value and its wall-clock seconds."""
    start = time.perf_counter()
    value = operation()
    return value, time.perf_counter() - start


def measure(operation: Callable[[], T]) -> tuple[T, dict[str, Any]]:
    """Run the operation once: its value, seconds, baseline and peak RSS (MB), extra over baseline."""
    reset = reset_peak()
    baseline = peak_mb()
    value, seconds = timed(operation)
    peak = peak_mb()
    return value, {
        "seconds": seconds,
        "baseline_mb": baseline,
        "peak_mb": peak,
        "extra_mb": peak - baseline,
        "peak_reset": reset,
    }


def emit(contender: str, version: str, flagged: list[str], batch_bytes: int, **figures: Any) -> None:
    """Print the run's one JSON line."""
    record = {"contender": contender, "version": version, "flagged": sorted(flagged),
              "batch_mb": batch_bytes / MB, **figures}
    sys.stdout.write(json.dumps(record) + "\n")
