"""Lineage: where a model came from (git commit and dirty flag, data fingerprint, package versions).

Only the standard library at module level: MLflow imports this (through the run context provider)
at every run start.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GitState", "data_fingerprint", "git_state", "lineage_tags", "package_version"]

GIT_COMMIT_TAG = "mlflow_ext.git.commit"
GIT_DIRTY_TAG = "mlflow_ext.git.dirty"
PACKAGE_VERSION_TAG = "mlflow_ext.package_version"  # "mlflow_ext.version" is a model version number
_GIT_TIMEOUT_S = 5


@dataclass(frozen=True)
class GitState:
    """The commit checked out in a git work tree and whether the tree has uncommitted changes."""

    commit: str
    dirty: bool


def _git(directory: str, *args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(
            [git, *args], cwd=directory, capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(directory: str | os.PathLike[str] | None = None, *, cached: bool = False) -> GitState | None:
    """The git state of ``directory`` (default: the working folder), or None outside a work tree.

    ``cached=True`` reuses the first answer for a folder in this process: the run context provider
    runs at every run start and must not start two subprocesses each time; @track asks afresh,
    since it records the lineage of one model.
    """
    folder = os.path.abspath(directory if directory is not None else os.getcwd())
    return _cached_git_state(folder) if cached else _git_state(folder)


def _git_state(folder: str) -> GitState | None:
    commit = _git(folder, "rev-parse", "--verify", "HEAD")
    if commit is None:  # not a work tree, no commit yet, or no git
        return None
    # untracked files count: a training script not yet added is still uncommitted code
    status = _git(folder, "status", "--porcelain")
    return GitState(commit=commit.strip(), dirty=bool(status and status.strip()))


_cached_git_state = functools.lru_cache(maxsize=32)(_git_state)


@functools.cache
def package_version() -> str:
    """The installed version of mlflow-ext."""
    try:
        return metadata.version("mlflow-ext")
    except metadata.PackageNotFoundError:
        from mlflow_ext import __version__

        return __version__


def lineage_tags(directory: str | os.PathLike[str] | None = None, *, cached: bool = False) -> dict[str, str]:
    """The lineage tags of a run: git commit and dirty flag (inside a work tree), mlflow-ext version."""
    tags = {PACKAGE_VERSION_TAG: package_version()}
    state = git_state(directory, cached=cached)
    if state is not None:
        tags[GIT_COMMIT_TAG] = state.commit
        tags[GIT_DIRTY_TAG] = "true" if state.dirty else "false"
    return tags


def data_fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a frame: column names, dtypes and values in order (not the index).

    Two frames with the same columns and values give the same fingerprint whatever their index, so a
    reloaded copy of the training data can be matched to the model trained on it.
    """
    import pandas as pd

    digest = hashlib.blake2b(digest_size=16)
    for name, dtype in frame.dtypes.items():
        digest.update(f"{name!r}:{dtype}\x00".encode())
    try:
        hashed = pd.util.hash_pandas_object(frame, index=False)
    except TypeError as exc:  # cells that pandas cannot hash (lists, dicts)
        from mlflow_ext.errors import DataError

        raise DataError(f"Cannot fingerprint the training data: {exc}.",
                        hint="Keep one scalar per cell in the training frame.") from exc
    digest.update(hashed.to_numpy().tobytes())
    return f"blake2b:{digest.hexdigest()}"
