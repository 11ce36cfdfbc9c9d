"""Engines: where ``Profile.from_frame`` and ``check`` compute when the data is not a pandas DataFrame.

The core computes with numpy on pandas DataFrames. An engine plugin takes another kind of frame
(mlflow-ext-spark takes Spark DataFrames): it computes the same summaries where the data lives and
returns the same ``Profile`` and ``CheckResult``, so everything downstream is unchanged. Engines
register in the ``mlflow_ext.engines`` entry-point group, like every other plugin kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mlflow_ext import _registry
from mlflow_ext.errors import DataError

if TYPE_CHECKING:
    from mlflow_ext.checks import CheckResult
    from mlflow_ext.profile import Profile

__all__ = ["Engine", "engine_for"]


@runtime_checkable
class Engine(Protocol):
    """A compute engine plugin for one kind of frame."""

    def accepts(self, frame: object) -> bool:
        """Whether ``frame`` is this engine's kind; cheap, and imports nothing heavy for other frames."""
        ...

    def profile(
        self, frame: Any, *, sample_size: int, top_k: int, bins: int | Mapping[str, Sequence[float]], seed: int
    ) -> Profile:
        """The Profile of ``frame``, as ``Profile.from_frame`` documents it (options already validated)."""
        ...

    def check(self, reference: Profile, current: Any, **options: Any) -> CheckResult:
        """The CheckResult of ``current`` against ``reference``; options as for ``mlflow_ext.check``."""
        ...


def engine_for(frame: object, what: str) -> Engine:
    """The first installed engine that accepts ``frame``; DataError naming the type when none does."""
    names = _registry.available("engine")
    for name in names:
        engine: Engine = _registry.create("engine", name, where=f"engine {name!r}")
        if engine.accepts(frame):
            return engine
    kind = type(frame)
    got = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    raise DataError(
        f"{what} must be a pandas DataFrame, got {got}. "
        f"Installed engines for other frames: {', '.join(names) or 'none'}.",
        hint="Convert it to pandas, or install the engine for it (mlflow-ext-spark for Spark DataFrames).",
    )
