"""The plugin registry and `mlflow-ext plugins`, with fake entry points from real dist-info folders."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlflow_ext import _registry
from mlflow_ext.errors import PluginError

GOOD = '''
from mlflow_ext.detectors import DetectorResult

class Good:
    kinds = frozenset({"numeric"})

    def __init__(self, *, threshold: float = 0.1) -> None:
        self.threshold = threshold

    def detect(self, reference, current):
        return DetectorResult()

class NoDetect:
    kinds = frozenset({"numeric"})
'''


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install fake distributions: fake(dist, {name: "module:attr"}, module_source) -> module name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    counter = iter(range(1000))

    def install(dist: str, detectors: dict[str, str], source: str = GOOD) -> str:
        module = f"fakeplug_{tmp_path.name.replace('-', '_')}_{next(counter)}"
        (tmp_path / f"{module}.py").write_text(source)
        info = tmp_path / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\nLicense: MIT\n")
        lines = "\n".join(f"{name} = {value.format(module=module)}" for name, value in detectors.items())
        (info / "entry_points.txt").write_text(f"[mlflow_ext.detectors]\n{lines}\n")
        _registry.reset()
        return module

    yield install
    _registry.reset()


def test_a_fake_plugin_is_listed_and_loads(fake) -> None:
    fake("acme-drift", {"acme": "{module}:Good"})
    info = {p.name: p for p in _registry.plugins("detector")}
    assert info["acme"].distribution == "acme-drift" and not info["acme"].builtin
    assert info["ks"].builtin and info["acme"].license == "MIT"
    assert _registry.create("detector", "acme", {"threshold": 0.3}).threshold == 0.3


def test_unknown_name_lists_installed(fake) -> None:
    fake("acme-drift", {"acme": "{module}:Good"})
    with pytest.raises(PluginError, match=r"No detector named 'acm'\. Installed: acme, chi2, jensen_shannon, ks"):
        _registry.load("detector", "acm")


def test_plugin_that_fails_to_import_names_plugin_and_cause(fake) -> None:
    fake("broken-drift", {"broken": "{module}:Good"}, source="import does_not_exist_anywhere\n")
    with pytest.raises(PluginError, match="detector plugin 'broken' from broken-drift 1.0 failed to load .*"
                                          "ModuleNotFoundError: No module named 'does_not_exist_anywhere'"):
        _registry.load("detector", "broken")


def test_plugin_missing_a_protocol_member(fake) -> None:
    fake("half-drift", {"half": "{module}:NoDetect"})
    with pytest.raises(PluginError, match="'half' .* does not satisfy the detector protocol: missing detect"):
        _registry.load("detector", "half")


def test_bad_option_is_a_config_error(fake) -> None:
    fake("acme-drift", {"acme": "{module}:Good"})
    with pytest.raises(Exception, match="policy.toml: unknown option 'treshold' for detector 'acme'"):
        _registry.create("detector", "acme", {"treshold": 1}, where="policy.toml")


def test_disable_plugins_env(fake, monkeypatch: pytest.MonkeyPatch) -> None:
    fake("acme-drift", {"acme": "{module}:Good"})
    fake("other-drift", {"other": "{module}:Good"})
    monkeypatch.setenv("MLFLOW_EXT_DISABLE_PLUGINS", "1")
    _registry.reset()
    names = _registry.available("detector")
    assert "acme" not in names and "other" not in names and "ks" in names
    monkeypatch.setenv("MLFLOW_EXT_DISABLE_PLUGINS", "acme")
    _registry.reset()
    names = _registry.available("detector")
    assert "acme" not in names and "other" in names


def test_duplicate_names_are_an_error(fake) -> None:
    fake("acme-drift", {"same": "{module}:Good"})
    fake("rival-drift", {"same": "{module}:Good"})
    with pytest.raises(PluginError, match="Two detector plugins are named 'same': one from .*-drift 1.0"):
        _registry.plugins()


def test_plugins_json_parses(fake) -> None:
    fake("acme-drift", {"acme": "{module}:Good"})
    from mlflow_ext.cli import app

    result = CliRunner().invoke(app, ["plugins", "--json", "--kind", "detector"])
    assert result.exit_code == 0, result.output
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert listed["acme"]["distribution"] == "acme-drift"
    assert {"ks", "chi2", "psi", "jensen_shannon", "wasserstein"} <= set(listed)


def test_plugins_command_does_not_import_mlflow() -> None:
    code = textwrap.dedent("""
        import sys
        from typer.testing import CliRunner
        from mlflow_ext.cli import app
        result = CliRunner().invoke(app, ["plugins"])
        assert result.exit_code == 0, result.output
        print('mlflow' in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
