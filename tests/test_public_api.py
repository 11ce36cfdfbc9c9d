"""The public API: __all__ is honest and importing the package stays cheap."""

from __future__ import annotations

import subprocess
import sys
import types

import mlflow_ext


def test_all_names_resolve_and_nothing_else_is_exported() -> None:
    for name in mlflow_ext.__all__:
        assert getattr(mlflow_ext, name) is not None, name
    assert mlflow_ext.__all__ == sorted(mlflow_ext.__all__)
    assert {"Profile", "check", "CheckResult"} <= set(mlflow_ext.__all__)
    public = {name for name in dir(mlflow_ext)
              if not name.startswith("_") and not isinstance(getattr(mlflow_ext, name), types.ModuleType)}
    assert public - set(mlflow_ext.__all__) <= {"annotations", "Any"}  # the module's own imports


def test_import_does_not_import_mlflow() -> None:
    code = "import sys, mlflow_ext; mlflow_ext.Profile; mlflow_ext.check; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_function_named_like_its_module_survives_the_module_import() -> None:
    import importlib

    import mlflow_ext

    for name in ("backtest", "serve", "monitor", "watch"):
        importlib.import_module(f"mlflow_ext.{name}")
        assert callable(getattr(mlflow_ext, name)), name
        assert not isinstance(getattr(mlflow_ext, name), type(mlflow_ext)), name
