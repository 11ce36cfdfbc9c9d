"""The engine hook: Profile.from_frame and check hand other kinds of frames to an engine plugin,
registered through a real dist-info folder on sys.path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlflow_ext import _registry, check
from mlflow_ext.errors import DataError, PluginError
from mlflow_ext.profile import Profile

ENGINE = '''
import pandas as pd
from mlflow_ext.checks import check
from mlflow_ext.profile import Profile

class Columns:
    """A frame this engine owns: a dict of column lists."""
    def __init__(self, data):
        self.data = data

class ColumnsEngine:
    def __init__(self):
        pass

    def accepts(self, frame):
        return isinstance(frame, Columns)

    def profile(self, frame, *, sample_size, top_k, bins, seed):
        return Profile.from_frame(pd.DataFrame(frame.data), sample_size=sample_size, top_k=top_k, bins=bins,
                                  seed=seed)

    def check(self, reference, current, **options):
        return check(reference, pd.DataFrame(current.data), **options)

class NoCheck:
    def accepts(self, frame):
        return True

    def profile(self, frame, **options):
        raise AssertionError("never called")
'''


@pytest.fixture
def engine_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a fake distribution with engines: install({name: attr}) -> the imported module."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def install(engines: dict[str, str]):
        module = f"fake_engine_{tmp_path.name.replace('-', '_')}"
        (tmp_path / f"{module}.py").write_text(ENGINE)
        info = tmp_path / "acme_engine-1.0.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-engine\nVersion: 1.0\n")
        lines = "\n".join(f"{name} = {module}:{attr}" for name, attr in engines.items())
        (info / "entry_points.txt").write_text(f"[mlflow_ext.engines]\n{lines}\n")
        _registry.reset()
        return __import__(module)

    yield install
    _registry.reset()


def _data() -> dict[str, list[object]]:
    rng = np.random.default_rng(3)
    return {"x": rng.normal(size=300).tolist(), "c": rng.choice(["a", "b"], size=300).tolist()}


def test_profile_and_check_dispatch_to_the_engine_that_accepts_the_frame(engine_module) -> None:
    module = engine_module({"columns": "ColumnsEngine"})
    data = _data()
    profile = Profile.from_frame(module.Columns(data), bins=5, seed=1)
    assert profile == Profile.from_frame(pd.DataFrame(data), bins=5, seed=1)
    assert "columns" in [info.name for info in _registry.plugins("engine")]
    shifted = {"x": [v + 3 for v in data["x"]], "c": data["c"]}
    result = check(profile, module.Columns(shifted), min_drifted=1)
    assert result == check(profile, pd.DataFrame(shifted), min_drifted=1)
    assert result.status == "alert" and result.drifted_columns == ("x",)


def test_a_frame_no_engine_accepts_names_its_type_and_the_engines(engine_module) -> None:
    engine_module({"columns": "ColumnsEngine"})
    profile = Profile.from_frame(pd.DataFrame(_data()))
    with pytest.raises(DataError, match=r"must be a pandas DataFrame, got pathlib.PosixPath\. Installed engines "
                                        r"for other frames: columns[,.]"):
        check(profile, Path("batch.parquet"))
    with pytest.raises(DataError, match="The data to profile must be a pandas DataFrame, got list"):
        Profile.from_frame([1, 2])  # type: ignore[arg-type]


def test_an_engine_without_the_whole_protocol_is_an_error_naming_it(engine_module) -> None:
    engine_module({"broken": "NoCheck"})
    with pytest.raises(PluginError, match="engine plugin 'broken' .* does not satisfy the engine protocol: "
                                          "missing check"):
        Profile.from_frame({"x": [1.0]})  # type: ignore[arg-type]
