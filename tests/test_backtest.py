"""The backtest: manifest validation before anything runs, a quiet replay of a stream without drift,
and the caller's MLflow settings and working folder left as they were."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from mlflow_ext.backtest import backtest, load_history, write_manifest
from mlflow_ext.errors import ConfigError

pytestmark = [pytest.mark.backends,
              pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")]

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
POLICY = RECIPES / "churn" / "policy.toml"


def recipe_module(recipe: str, module: str) -> ModuleType:
    """A recipe's script as a module (recipes are folders of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"recipe_{recipe}_{module}", RECIPES / recipe / f"{module}.py")
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


@pytest.fixture
def stream(tmp_path: Path) -> Path:
    """A small churn stream (3 batches, labels one step late); the manifest's path."""
    return recipe_module("churn", "generate").generate(tmp_path / "stream", n_batches=3, batch_rows=200,  # type: ignore[no-any-return]
                                                       train_rows=300)


def _rewrite(manifest: Path, old: str, new: str) -> None:
    text = manifest.read_text()
    assert old in text, old
    manifest.write_text(text.replace(old, new, 1))


def _refused_before_running(manifest: Path, tmp_path: Path, match: str) -> None:
    keep = tmp_path / "kept"
    with pytest.raises(ConfigError, match=match):
        backtest(POLICY, manifest, keep=keep)
    assert not keep.exists()  # nothing ran: no store was made


def test_a_missing_file_is_named_with_the_manifest_and_field(stream: Path, tmp_path: Path) -> None:
    _rewrite(stream, 'batch = "batches/batch-01.parquet"', 'batch = "batches/nope.parquet"')
    _refused_before_running(stream, tmp_path, r"history\.toml: steps\[1\]\.batch: file 'batches/nope\.parquet' "
                                              r"not found")


def test_labels_for_a_batch_that_does_not_exist_are_refused(stream: Path, tmp_path: Path) -> None:
    _rewrite(stream, '{ batch = "batch-01"', '{ batch = "batch-09"')
    _refused_before_running(stream, tmp_path, r"steps\[2\]\.labels\[0\]\.batch: no earlier batch named 'batch-09'; "
                                              r"earlier batches: batch-00, batch-01")


def test_labels_that_arrive_before_their_batch_are_refused(stream: Path, tmp_path: Path) -> None:
    _rewrite(stream, '{ batch = "batch-00"', '{ batch = "batch-02"')
    _refused_before_running(stream, tmp_path, r"steps\[1\]\.labels\[0\]\.batch: no earlier batch named 'batch-02'")


def test_a_step_out_of_order_is_refused(stream: Path, tmp_path: Path) -> None:
    _rewrite(stream, "at = 2", "at = 1")
    _refused_before_running(stream, tmp_path, r"steps\[2\]\.at: steps must be in order: 1 does not come after "
                                              r"steps\[1\]\.at = 1")


def test_labels_whose_ids_are_not_rows_of_their_batch_are_refused(stream: Path, tmp_path: Path) -> None:
    labels = stream.parent / "labels" / "labels-00.parquet"
    frame = pd.read_parquet(labels)
    frame.loc[0, "customer_id"] = -5
    frame.to_parquet(labels)
    _refused_before_running(stream, tmp_path, r"steps\[1\]\.labels\[0\]\.file: 1 of 200 label id\(s\) are not rows "
                                              r"of batch 'batch-00', e\.g\. -5")


def test_a_file_that_is_not_tabular_is_refused(stream: Path, tmp_path: Path) -> None:
    _rewrite(stream, 'data = "train.parquet"', 'data = "notes.json"')
    (stream.parent / "notes.json").write_text("{}")
    _refused_before_running(stream, tmp_path, r"training\.data: '.*notes\.json' is not a tabular file")


def test_a_training_function_that_does_not_import_is_refused(stream: Path, tmp_path: Path) -> None:
    keep = tmp_path / "kept"
    with pytest.raises(ConfigError, match=r"The training function 'no_such_module:train': cannot import"):
        backtest(POLICY, stream, train="no_such_module:train", keep=keep)
    assert not keep.exists()


def test_write_manifest_round_trips_through_load_history(tmp_path: Path) -> None:
    pd.DataFrame({"id": [1, 2], "x": [0.1, 0.2], "y": [0, 1]}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"id": [3, 4], "x": [0.3, 0.4]}).to_csv(tmp_path / "b0.csv", index=False)
    pd.DataFrame({"id": [3, 4], "y": [1, 0]}).to_csv(tmp_path / "l0.csv", index=False)
    path = write_manifest(tmp_path / "h.toml", target="y", id_column="id", training="train.csv",
                          steps=[{"at": 0, "batch": "b0.csv"},
                                 {"at": 1, "labels": [{"batch": "b0", "file": "l0.csv"}]}])
    history = load_history(path)
    assert [(s.at, s.name, [r.batch for r in s.labels]) for s in history.steps] == [(0, "b0", []), (1, None, ["b0"])]
    assert history.id_column == "id" and history.target == "y"


@pytest.mark.usefixtures("store")
def test_a_stream_without_drift_triggers_nothing_and_leaves_the_callers_store_alone(
        tmp_path: Path, store: str) -> None:
    manifest = recipe_module("churn", "generate").generate(tmp_path / "quiet", drift=False, n_batches=4,
                                                           batch_rows=600)
    cwd = Path.cwd()
    result = backtest(POLICY, manifest)

    statuses = [e.status for e in result.entries]
    assert statuses == ["ok"] * len(statuses), [(e.name, e.status, e.reasons) for e in result.entries]
    assert (result.incidents, result.alerts_fired, result.retrains_fired, result.promotions) == ((), 0, 0, ())
    assert [e.kind for e in result.entries].count("labels") == 4
    # the replay used its own store: the caller's is untouched, and so are its settings and folder
    import mlflow

    assert mlflow.get_tracking_uri() == store and os.environ["MLFLOW_TRACKING_URI"] == store
    assert Path.cwd() == cwd and not (cwd / "mlruns").exists()
    assert mlflow.MlflowClient().search_registered_models() == []
    assert result.store is None and result.ui_command is None


@pytest.mark.usefixtures("store")
def test_a_training_function_without_track_is_refused_with_what_to_do(stream: Path, tmp_path: Path) -> None:
    (tmp_path / "plain.py").write_text("def train(data):\n    return 'a model'\n")
    with pytest.raises(ConfigError, match=r"returned a str, not a registered version"):
        backtest(POLICY, stream, train=f"{tmp_path / 'plain.py'}:train")
