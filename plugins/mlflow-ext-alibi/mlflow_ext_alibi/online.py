"""alibi-detect's online detectors for streams, with their state kept in MLflow between batches.

``alibi_cvm_online`` (numeric columns, Cramér-von Mises) and ``alibi_fet_online`` (boolean
columns, Fisher's exact test) watch a stream one row at a time over sliding test windows, with
thresholds calibrated to an expected run time (``ert``: rows between false alarms, per column).
Each ``detect`` call feeds one batch. With ``model`` set, the state of every column (time since the
last reset, the test windows) is loaded from MLflow before the batch and saved after it, so a
restarted monitor continues where it stopped; without it, every batch starts from a fresh state.

Where the state lives: one run per detector, tagged ``mlflow_ext.alibi.online = <detector>``, in
the model's experiment ``mlflow-ext/<model>``. Each save writes a new artifact
``online-state/<id>.npz`` and then moves the tag ``mlflow_ext.alibi.state`` to it, so a crash
between the two leaves the previous state in force, never half of a new one. Two monitors feeding
the same model's stream at once overwrite each other's state (last writer wins): run one per model.
The state is tied to the reference sample and the options; when they change, the column restarts.

Results, per column: ``drifted`` when alibi detected drift during this batch (the column's state
is then reset, as alibi prescribes, so the next drift is detected afresh); ``statistic`` the largest
test statistic of the batch; ``effect_size`` that statistic as a multiple of alibi's threshold at
that time, so ``threshold`` is 1; no p-value (the error rate is set by ``ert``).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from mlflow_ext.detectors import ColumnDrift, DetectorResult
from mlflow_ext.errors import DataError

from mlflow_ext_alibi import _data
from mlflow_ext_alibi.detectors import quiet, seeded

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AlibiCVMOnline", "AlibiFETOnline", "OnlineState", "load_state"]

DETECTOR_TAG = "mlflow_ext.alibi.online"
POINTER_TAG = "mlflow_ext.alibi.state"
STATE_FORMAT = 1


@dataclass(frozen=True)
class OnlineState:
    """Where one column's stream stands: rows since the last reset, and drifts detected so far."""

    column: str
    t: int
    detections: int


@dataclass
class _Saved:
    fingerprint: str
    detections: int
    arrays: dict[str, np.ndarray]


class _Store:
    """The state run of one online detector in ``mlflow-ext/<model>``."""

    def __init__(self, model: str, detector: str) -> None:
        self.model = model
        self.detector = detector

    def _run_id(self, create: bool) -> str | None:
        from mlflow_ext import tracking

        experiment = tracking.monitoring_experiment(self.model)
        client = tracking.client()
        with tracking.mlflow_errors(f"find the state of {self.detector!r} for model {self.model!r}"):
            # the oldest wins, so two processes that both created one agree on which to use
            runs = client.search_runs([experiment], f"tags.`{DETECTOR_TAG}` = '{self.detector}'",
                                      order_by=["attributes.start_time ASC"], max_results=1)
            if runs:
                return str(runs[0].info.run_id)
            if not create:
                return None
            run = client.create_run(experiment, run_name=f"{self.detector} state",
                                    tags={DETECTOR_TAG: self.detector, "mlflow_ext.model": self.model})
            client.set_terminated(run.info.run_id)
            return str(run.info.run_id)

    def load(self) -> dict[str, _Saved]:
        from mlflow_ext import tracking

        run_id = self._run_id(create=False)
        if run_id is None:
            return {}
        client = tracking.client()
        with tracking.mlflow_errors(f"load the state of {self.detector!r} for model {self.model!r}"):
            pointer = client.get_run(run_id).data.tags.get(POINTER_TAG)
            if pointer is None:
                return {}
            with tempfile.TemporaryDirectory() as tmp:
                path = client.download_artifacts(run_id, pointer, tmp)
                with np.load(path, allow_pickle=False) as npz:
                    files = {key: npz[key] for key in npz.files}
        return _unpack(files, f"{pointer} of run {run_id}")

    def save(self, states: dict[str, _Saved]) -> None:
        from mlflow.entities import RunTag
        from mlflow_ext import tracking

        run_id = self._run_id(create=True)
        assert run_id is not None  # created when missing
        client = tracking.client()
        with tracking.mlflow_errors(f"save the state of {self.detector!r} for model {self.model!r}"), \
                tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{uuid.uuid4().hex}.npz"
            np.savez_compressed(path, **_pack(states))  # type: ignore[arg-type]  # numpy 2 stubs: allow_pickle
            client.log_artifact(run_id, str(path), "online-state")
            # the pointer moves only once the whole file is stored
            client.log_batch(run_id, tags=[RunTag(POINTER_TAG, f"online-state/{path.name}")])


def _pack(states: dict[str, _Saved]) -> dict[str, np.ndarray]:
    meta = {"format": STATE_FORMAT, "columns": [
        {"name": name, "fingerprint": s.fingerprint, "detections": s.detections, "keys": sorted(s.arrays)}
        for name, s in states.items()]}
    files = {"meta": np.array(json.dumps(meta))}
    for i, state in enumerate(states.values()):
        files.update({f"{i}.{key}": value for key, value in state.arrays.items()})
    return files


def _unpack(files: dict[str, np.ndarray], where: str) -> dict[str, _Saved]:
    try:
        meta = json.loads(str(files["meta"]))
        if meta["format"] != STATE_FORMAT:
            raise ValueError(f"format {meta['format']!r}, this plugin reads format {STATE_FORMAT}")
        return {c["name"]: _Saved(c["fingerprint"], int(c["detections"]),
                                  {key: files[f"{i}.{key}"] for key in c["keys"]})
                for i, c in enumerate(meta["columns"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"The online detector state {where} is not readable: {type(exc).__name__}: {exc}",
                        hint="Delete the tag mlflow_ext.alibi.state on that run to start the streams afresh.") from exc


def load_state(model: str, detector: str) -> dict[str, OnlineState]:
    """Where each column's stream of an online detector stands for ``model`` ({} before the first batch)."""
    return {name: OnlineState(name, int(s.arrays["t"]), s.detections)
            for name, s in _Store(model, detector).load().items()}


class _Online:
    """Feed a batch row by row to one alibi online detector per column."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]
    ert: float
    window_sizes: Sequence[int]
    n_bootstraps: int
    reference_size: int
    seed: int
    model: str | None

    def _make(self, ref: np.ndarray) -> Any:
        raise NotImplementedError  # every subclass builds its own alibi detector

    def _values(self, name: str, reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError  # every subclass reads its own kinds

    def _detector(self, ref: np.ndarray, fingerprint: str) -> Any:
        # calibrating thresholds simulates thousands of streams: once per reference and options
        cache: dict[str, Any] = self.__dict__.setdefault("detectors_", {})
        if fingerprint not in cache:
            with quiet(), seeded(self.seed):
                cache[fingerprint] = self._make(ref)
        return cache[fingerprint]

    def _fingerprint(self, ref: np.ndarray) -> str:
        digest = hashlib.sha256(np.ascontiguousarray(ref, dtype=np.float64).tobytes())
        digest.update(repr((self.name, float(self.ert), [int(w) for w in self.window_sizes],
                            self.n_bootstraps, self.seed)).encode())
        return digest.hexdigest()[:16]

    def detect(self, reference: pd.DataFrame, current: pd.DataFrame) -> DetectorResult:
        """Feed the batch to every column's stream (continuing its saved state when ``model`` is set)."""
        kinds = _data.columns(self.name, self.kinds, reference, current)
        store = _Store(self.model, self.name) if self.model else None
        saved = store.load() if store is not None else {}
        results, states = [], dict(saved)
        for name, _kind in kinds:
            ref, cur = self._values(name, reference[name], current[name])
            ref = _data.subsample(ref, self.reference_size, self.seed)
            fingerprint = self._fingerprint(ref)
            cd = self._detector(ref, fingerprint)
            prior = saved.get(name)
            cd.reset_state()
            detections = 0
            if prior is not None and prior.fingerprint == fingerprint:
                for key, value in prior.arrays.items():
                    setattr(cd, key, int(value) if key == "t" else value)
                detections = prior.detections
            result, found = self._feed(cd, name, cur)
            results.append(result)
            states[name] = _Saved(fingerprint, detections + found, self._state(cd))
        if store is not None:
            store.save(states)
        return DetectorResult(columns=tuple(results))

    def _feed(self, cd: Any, name: str, cur: np.ndarray) -> tuple[ColumnDrift, int]:
        top, ratio, found = 0.0, 0.0, 0
        with quiet():
            for x in cur:
                data = cd.predict(np.asarray([x]), return_test_stat=True)["data"]
                stats = np.asarray(data["test_stat"], dtype=np.float64)
                thresholds = np.broadcast_to(np.asarray(data["threshold"], dtype=np.float64), stats.shape)
                ready = np.isfinite(stats) & np.isfinite(thresholds) & (thresholds > 0)
                if ready.any():
                    top = max(top, float(stats[ready].max()))
                    ratio = max(ratio, float((stats[ready] / thresholds[ready]).max()))
                if data["is_drift"]:
                    found += 1
                    cd.reset_state()
        return ColumnDrift(column=name, detector=self.name, statistic=top, p_value=None, effect_size=ratio,
                           threshold=1.0, drifted=found > 0), found

    def _state(self, cd: Any) -> dict[str, np.ndarray]:
        """alibi's online state, trimmed to what the next row needs (alibi keeps the whole history)."""
        window = max(int(w) for w in self.window_sizes)
        state = {key: np.asarray(getattr(cd, key)) for key in cd.online_state_keys}
        state["xs"] = state["xs"][-window:]
        state["test_stats"] = state["test_stats"][-1:]  # FET smooths with the last statistic
        state["drift_preds"] = state["drift_preds"][-1:]
        return state


class AlibiCVMOnline(_Online):
    """alibi-detect's CVMDriftOnline on each numeric column: online Cramér-von Mises over sliding windows."""

    name = "alibi_cvm_online"
    kinds = frozenset({"numeric"})

    def __init__(self, *, ert: float = 1000.0, window_sizes: Sequence[int] = (20, 50), n_bootstraps: int = 5000,
                 reference_size: int = 500, seed: int = 0, model: str | None = None) -> None:
        self.ert = ert
        self.window_sizes = window_sizes
        self.n_bootstraps = n_bootstraps
        self.reference_size = reference_size
        self.seed = seed
        self.model = model

    def _values(self, name: str, reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        return _data.finite(name, reference, current)

    def _make(self, ref: np.ndarray) -> Any:
        from alibi_detect.cd import CVMDriftOnline

        # The statistic is rank based, so alibi simulates its thresholds from Gaussian streams: they
        # depend on the reference size and the options, not on the data. Calibrate once per size.
        known: dict[int, np.ndarray] = self.__dict__.setdefault("thresholds_", {})

        class Calibrated(CVMDriftOnline):  # type: ignore[misc]
            def _configure_thresholds(self) -> None:
                if len(ref) in known:
                    self.thresholds = known[len(ref)]
                else:
                    super()._configure_thresholds()
                    known[len(ref)] = self.thresholds

        return Calibrated(ref[:, None], ert=self.ert, window_sizes=[int(w) for w in self.window_sizes],
                          n_bootstraps=self.n_bootstraps, verbose=False)


class AlibiFETOnline(_Online):
    """alibi-detect's FETDriftOnline on each boolean column: online Fisher's exact test of the true rate.

    ``alternative`` "greater" watches for a rise of the share of true values, "less" for a fall.
    """

    name = "alibi_fet_online"
    kinds = frozenset({"boolean"})

    def __init__(self, *, ert: float = 1000.0, window_sizes: Sequence[int] = (20, 50), n_bootstraps: int = 5000,
                 alternative: Literal["greater", "less"] = "greater", lam: float = 0.99, reference_size: int = 500,
                 seed: int = 0, model: str | None = None) -> None:
        self.ert = ert
        self.window_sizes = window_sizes
        self.n_bootstraps = n_bootstraps
        self.alternative = alternative
        self.lam = lam
        self.reference_size = reference_size
        self.seed = seed
        self.model = model

    def _values(self, name: str, reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        ref, cur = reference.dropna(), current.dropna()
        if not len(ref) or not len(cur):
            raise DataError(f"Column {name!r} has no values to compare in "
                            f"{'the reference' if not len(ref) else 'the current batch'}.")
        return ref.to_numpy(dtype=np.float64), cur.to_numpy(dtype=np.float64)

    def _fingerprint(self, ref: np.ndarray) -> str:
        return super()._fingerprint(np.append(ref, [self.lam, self.alternative == "greater"]))

    def _make(self, ref: np.ndarray) -> Any:
        from alibi_detect.cd import FETDriftOnline

        return FETDriftOnline(ref[:, None], ert=self.ert, window_sizes=[int(w) for w in self.window_sizes],
                              n_bootstraps=self.n_bootstraps, alternative=self.alternative, lam=self.lam,
                              verbose=False)
