"""mlflow-ext: profiles, drift checks, promotion gates and retraining hooks on top of MLflow.

The public API is this module's ``__all__``. Names are imported on first use, so
``import mlflow_ext`` stays cheap (MLflow itself takes seconds to import).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "MlflowExtError": "mlflow_ext.errors",
    "ConfigError": "mlflow_ext.errors",
    "ConflictError": "mlflow_ext.errors",
    "DataError": "mlflow_ext.errors",
    "HookError": "mlflow_ext.errors",
    "NotFoundError": "mlflow_ext.errors",
    "PluginError": "mlflow_ext.errors",
    "ProfileError": "mlflow_ext.errors",
    "TrackingError": "mlflow_ext.errors",
    "Profile": "mlflow_ext.profile",
    "check": "mlflow_ext.checks",
    "CheckResult": "mlflow_ext.checks",
    "monitor": "mlflow_ext.monitor",
    "watch": "mlflow_ext.watch",
    "check_model": "mlflow_ext.model_check",
    "promote": "mlflow_ext.promotion",
    "rollback": "mlflow_ext.promotion",
    "history": "mlflow_ext.promotion",
    "Decision": "mlflow_ext.promotion",
    "Event": "mlflow_ext.hooks",
    "fit_cbpe": "mlflow_ext.estimation",
    "fit_dle": "mlflow_ext.estimation",
    "CBPEModel": "mlflow_ext.estimation",
    "DLEModel": "mlflow_ext.estimation",
    "EstimatedMetric": "mlflow_ext.estimation",
    "EstimatedPerformance": "mlflow_ext.checks",
    "load_policy": "mlflow_ext.policy",
    "Policy": "mlflow_ext.policy",
    "track": "mlflow_ext.decorators",
    "serve": "mlflow_ext.serve",
    "Tracked": "mlflow_ext.decorators",
    "backtest": "mlflow_ext.backtest",
}

__all__ = sorted([*_EXPORTS, "__version__"])


class _Package(types.ModuleType):
    """Keeps a public function whose name is also its module's (``backtest``, ``serve``, ...):
    importing ``mlflow_ext.backtest`` would otherwise replace the function with the module."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == value.__name__:
            return  # the submodule stays reachable through sys.modules and `from ... import`
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlflow_ext' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
