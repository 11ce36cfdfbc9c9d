"""The warning category mlflow-ext emits, so tests can turn exactly ours into errors."""

from __future__ import annotations


class MlflowExtWarning(UserWarning):
    """A situation the user should know about but that does not stop the operation."""
