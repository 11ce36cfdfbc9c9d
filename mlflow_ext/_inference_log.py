"""The inference log: served requests and feedback labels, written in the background as Parquet files
in the folder layout ``mlflow-ext watch`` reads.

A request is queued in memory (cheap, on the request path) and a writer thread turns the queue into
Arrow tables a little at a time, then writes one ``batch-<time>-<seq>.parquet`` per interval.
Feedback labels wait beside it and are written as ``labels-<time>-<seq>.parquet`` right *after* the
batch of the same flush, so a label never arrives in the folder before the rows it labels (watch
processes files in (mtime, name) order). Every file is written under a dotted temporary name and
renamed into place, so a reader never sees a half file.

Memory is bounded: rows accepted but not yet written never exceed ``max_rows``. A request that does
not fit is dropped and counted (the server keeps answering); labels that do not fit are refused so
the client can retry.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["InferenceLog", "LabelRecord", "RequestRecord", "output_frame"]

PREDICTION = "prediction"  # the column the monitoring side knows the model's output by
ID_COLUMN = "request_id"
_DRAIN_EVERY = 0.2  # seconds: convert queued requests often, so a flush never holds the GIL for long


@dataclass(frozen=True)
class RequestRecord:
    """One served request: its rows, the model's raw output and when, how fast and by whom it was answered."""

    request_id: str
    time: float  # epoch seconds
    latency_ms: float
    version: str
    inputs: pd.DataFrame = field(repr=False)
    outputs: Any = field(repr=False)

    @property
    def n_rows(self) -> int:
        return len(self.inputs)


@dataclass(frozen=True)
class LabelRecord:
    """One label sent to /feedback for a logged row."""

    request_id: str
    label: Any


def row_ids(request_id: str, n_rows: int) -> list[str]:
    """The id of each row of a request: the request id itself for one row, ``<id>:<row>`` for several
    (labels are joined per row, so every row needs its own id)."""
    return [request_id] if n_rows == 1 else [f"{request_id}:{i}" for i in range(n_rows)]


def output_frame(outputs: Any, n_rows: int) -> pd.DataFrame:
    """The model's raw output as columns: ``prediction`` for one output, ``prediction_<name>`` for several."""
    import numpy as np
    import pandas as pd

    if isinstance(outputs, pd.DataFrame):
        frame = outputs.reset_index(drop=True)
        if frame.shape[1] == 1:
            return frame.set_axis([PREDICTION], axis=1)
        return frame.set_axis([f"{PREDICTION}_{c}" for c in frame.columns], axis=1)
    if isinstance(outputs, pd.Series):
        return pd.DataFrame({PREDICTION: outputs.to_numpy()})
    values = np.asarray(outputs)
    if values.ndim <= 1 or (values.ndim == 2 and values.shape[1] == 1):
        return pd.DataFrame({PREDICTION: values.reshape(n_rows)})
    return pd.DataFrame(values.reshape(n_rows, -1)).add_prefix(f"{PREDICTION}_")


class InferenceLog:
    """A bounded, batched, asynchronous Parquet writer of served requests and their labels."""

    def __init__(self, *, folder: str | Path, target: str = "label", interval: float = 10.0,
                 max_rows: int = 100_000) -> None:
        self.folder = folder
        self.target = target  # name of the label column in labels files (the version's target)
        self.interval = interval
        self.max_rows = max_rows

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the folder and start the writer thread."""
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._labels: list[LabelRecord] = []
        self._tables: list[pa.Table] = []
        self._pending_rows = 0  # accepted, not yet written
        self._queued = 0  # requests not yet converted (the queue depth)
        self.dropped_rows = 0
        self.written_rows = 0
        self.written_labels = 0
        self.files = 0
        self.errors: list[str] = []
        self._seq = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlflow-ext-inference-log", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 60.0) -> None:
        """Stop the writer after it has written everything accepted so far."""
        self._stop.set()
        self._thread.join(timeout)

    @property
    def depth(self) -> int:
        """Requests waiting in the queue."""
        return self._queued

    # -- the request path ----------------------------------------------------------------------------

    def submit(self, record: RequestRecord) -> bool:
        """Queue a request; False (and the rows counted as dropped) when the log is full."""
        with self._lock:
            if self._pending_rows + record.n_rows > self.max_rows:
                self.dropped_rows += record.n_rows
                return False
            self._requests.append(record)
            self._pending_rows += record.n_rows
            self._queued += 1
        return True

    def submit_labels(self, labels: Sequence[LabelRecord]) -> bool:
        """Queue labels; False (nothing queued) when the log is full."""
        with self._lock:
            if self._pending_rows + len(labels) > self.max_rows:
                return False
            self._labels.extend(labels)
            self._pending_rows += len(labels)
        return True

    # -- the writer thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        next_flush = time.monotonic() + self.interval
        while not self._stop.wait(min(_DRAIN_EVERY, max(0.0, next_flush - time.monotonic()))):
            self._drain()
            if time.monotonic() >= next_flush:
                self._flush()
                next_flush = time.monotonic() + self.interval
        self._drain()
        self._flush()

    def _drain(self) -> None:
        """Turn queued requests into Arrow tables (outside the lock: the request path never waits on it)."""
        with self._lock:
            requests, self._requests = self._requests, []
        if not requests:
            return
        import pyarrow as pa

        try:
            self._tables.append(pa.Table.from_pandas(_frame(requests), preserve_index=False))
        except Exception as exc:  # noqa: BLE001 - a row pyarrow cannot hold must not stop the log
            self._lose(sum(r.n_rows for r in requests), f"could not convert {len(requests)} request(s): {exc}")
        with self._lock:
            self._queued -= len(requests)

    def _flush(self) -> None:
        """Write the interval's requests, then its labels, each as one file (atomically)."""
        tables, self._tables = self._tables, []
        with self._lock:
            labels, self._labels = self._labels, []
        if tables:
            rows = sum(t.num_rows for t in tables)
            table = self._combine(tables)
            written = table is not None and self._write("batch", table)
            with self._lock:
                self._pending_rows -= rows
                if written:
                    self.written_rows += rows
                else:
                    self.dropped_rows += rows
        if labels:
            import pyarrow as pa

            try:
                table = pa.table({ID_COLUMN: [r.request_id for r in labels],
                                  self.target: [r.label for r in labels]})
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                # labels of mixed types (1 and "yes"): keep them all, as text
                table = pa.table({ID_COLUMN: [r.request_id for r in labels],
                                  self.target: [str(r.label) for r in labels]})
            if self._write("labels", table):
                self.written_labels += len(labels)
            with self._lock:
                self._pending_rows -= len(labels)

    def _combine(self, tables: list[pa.Table]) -> pa.Table | None:
        import pyarrow as pa

        try:
            return pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
        # the same column arrived with different types in different requests: let pandas find a common one
        import pandas as pd

        try:
            return pa.Table.from_pandas(pd.concat([t.to_pandas() for t in tables], ignore_index=True),
                                        preserve_index=False)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for unmixable columns
            self._report(f"could not combine {sum(t.num_rows for t in tables)} logged row(s): {exc}")
            return None

    def _write(self, kind: str, table: pa.Table) -> bool:
        import pyarrow.parquet as pq

        self._seq += 1
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{kind}-{stamp}-{self._seq:06d}.parquet"
        final = Path(self.folder, name)
        temporary = Path(self.folder, f".{name}.tmp")  # watch ignores dotted and .tmp names
        try:
            pq.write_table(table, temporary)
            os.replace(temporary, final)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            self._report(f"could not write {final}: {exc}")
            return False
        self.files += 1
        return True

    def _lose(self, rows: int, message: str) -> None:
        with self._lock:
            self.dropped_rows += rows
            self._pending_rows -= rows
        self._report(message)

    def _report(self, message: str) -> None:
        self.errors.append(message)
        del self.errors[:-20]
        print(f"mlflow-ext serve: inference log: {message}", file=sys.stderr, flush=True)


def _frame(requests: Sequence[RequestRecord]) -> pd.DataFrame:
    """The rows of several requests with their request columns, inputs and outputs side by side."""
    import numpy as np
    import pandas as pd

    counts = [r.n_rows for r in requests]
    meta = pd.DataFrame({
        ID_COLUMN: [rid for r in requests for rid in row_ids(r.request_id, r.n_rows)],
        "time": pd.to_datetime(np.repeat([r.time for r in requests], counts), unit="s", utc=True),
        "latency_ms": np.repeat([r.latency_ms for r in requests], counts),
        "version": np.repeat([r.version for r in requests], counts),
    })
    inputs = pd.concat([r.inputs.reset_index(drop=True) for r in requests], ignore_index=True)
    outputs = pd.concat([output_frame(r.outputs, r.n_rows) for r in requests], ignore_index=True)
    inputs = inputs.drop(columns=[c for c in inputs.columns if c in meta.columns or c in outputs.columns])
    return pd.concat([meta, inputs, outputs], axis=1)
