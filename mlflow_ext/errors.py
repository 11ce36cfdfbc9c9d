"""The one exception tree of mlflow-ext.

Every error that crosses the public boundary is an ``MlflowExtError``; its message is shown to the
user as is (the CLI prints ``Error: <message>`` and the hint, never a traceback)::

    MlflowExtError(message, *, hint=None)
    ├── ConfigError        a policy, manifest or option is invalid (names the file and field)
    ├── PluginError        a plugin is unknown, fails to import, or breaks its protocol
    ├── DataError          a batch, file or frame cannot be used (empty, no common columns, ...)
    │   └── ProfileError   a profile file is corrupt, of a future version, or incompatible
    ├── TrackingError      MLflow failed or refused (wraps MlflowException and friends)
    │   └── NotFoundError  a registered model, version, alias or run does not exist
    ├── ConflictError      a compare-and-set lost: the state changed since it was read
    └── HookError          a hook failed, timed out or is misconfigured
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConflictError",
    "DataError",
    "HookError",
    "MlflowExtError",
    "NotFoundError",
    "PluginError",
    "ProfileError",
    "TrackingError",
]


class MlflowExtError(Exception):
    """Base of every error mlflow-ext raises; ``message`` says what, ``hint`` what to do."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n{self.hint}"


class ConfigError(MlflowExtError):
    """Raised when a policy, history manifest or option is invalid; the message names file and field."""


class PluginError(MlflowExtError):
    """Raised when a plugin is unknown, fails to import, or does not satisfy its protocol."""


class DataError(MlflowExtError):
    """Raised when input data cannot be used: empty, non-tabular, unreadable, no common columns."""


class ProfileError(DataError):
    """Raised when a profile is corrupt, of a future schema version, or incompatible with another."""


class TrackingError(MlflowExtError):
    """Raised when MLflow fails or refuses an operation; wraps the MLflow exception as __cause__."""


class NotFoundError(TrackingError):
    """Raised when a registered model, version, alias or run does not exist."""


class ConflictError(MlflowExtError):
    """Raised when a compare-and-set loses: the state changed between reading and writing."""


class HookError(MlflowExtError):
    """Raised when a hook is misconfigured, fails after its retries, or times out."""
