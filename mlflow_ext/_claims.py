"""Once-only claims on MLflow: the atomic primitive behind compare-and-set and at-most-once hooks.

MLflow's registry has no compare-and-set, but every tracking store keeps experiment names unique:
``create_experiment(name)`` either creates the experiment or fails with RESOURCE_ALREADY_EXISTS,
atomically, on a sqlite or SQL store and through an ``mlflow server`` alike, and also when the
experiment of that name is deleted. A claim is such an experiment, named
``mlflow-ext/.claims/<sha256 of the key>``, whose tags hold the full key, the owner, a per-attempt
token, the time and the payload (written in the same transaction as the name).

Claims are soft-deleted right after they are made so they don't clutter the MLflow UI; a deleted
experiment keeps its name reserved, so the claim still holds. ``mlflow gc`` would purge deleted
experiments and so free their names: never run ``mlflow gc --experiment-ids`` on claim
experiments you still rely on (a plain ``mlflow gc`` without ids purges them too).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from mlflow_ext.errors import TrackingError
from mlflow_ext.tracking import TAG_PREFIX, client, mlflow_errors

__all__ = ["CLAIM_PREFIX", "Claim", "claim", "claim_name", "read_claim"]

CLAIM_PREFIX = "mlflow-ext/.claims/"
_TAG = f"{TAG_PREFIX}claim."
_PAYLOAD = f"{_TAG}payload."
# A busy sqlite store says "database is locked" rather than waiting forever: retry that.
_ATTEMPTS = 5


@dataclass(frozen=True)
class Claim:
    """A held claim: who took ``key``, when (UTC), with which payload."""

    key: str
    owner: str
    claimed_at: datetime
    payload: Mapping[str, str] = field(default_factory=dict)
    token: str = ""  # unique per attempt: tells a retry of ours from someone else's claim
    experiment_id: str = ""

    def age_seconds(self) -> float:
        """Seconds since the claim was taken (by this machine's clock)."""
        return (datetime.now(timezone.utc) - self.claimed_at).total_seconds()


def claim_name(key: str) -> str:
    """The experiment name that reserves ``key`` (hashed: keys may be long or hold any character)."""
    return CLAIM_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def claim(key: str, *, owner: str, payload: Mapping[str, str] | None = None) -> Claim | None:
    """Take ``key`` for ``owner`` once and for all; None when someone else already holds it.

    Exactly one of any number of concurrent callers (threads, processes, machines sharing the
    tracking store) gets a Claim for a key; every other caller, then and later, gets None.
    """
    from mlflow.exceptions import MlflowException

    token = uuid.uuid4().hex
    now = datetime.now(timezone.utc)
    tags = {
        f"{_TAG}key": key,
        f"{_TAG}owner": owner,
        f"{_TAG}token": token,
        f"{_TAG}time": now.isoformat(timespec="microseconds"),
        **{f"{_PAYLOAD}{name}": str(value) for name, value in (payload or {}).items()},
    }
    name = claim_name(key)
    mlflow_client = client()
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with mlflow_errors(f"claim {key!r}"):
                try:
                    experiment_id = str(mlflow_client.create_experiment(name, tags=tags))
                except MlflowException as exc:
                    if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                        raise
                    held = read_claim(key)
                    # An earlier attempt of ours may have committed before its reply was lost.
                    return held if held is not None and held.token == token else None
        except TrackingError:
            if attempt == _ATTEMPTS:
                raise
            time.sleep(0.05 * 2**attempt)
            continue
        # Hide it from the UI; the name stays reserved. A failure here leaves a visible but
        # harmless experiment, so it must not undo the claim.
        with contextlib.suppress(MlflowException):
            mlflow_client.delete_experiment(experiment_id)
        return Claim(key=key, owner=owner, claimed_at=now, payload=dict(payload or {}), token=token,
                     experiment_id=experiment_id)
    return None  # pragma: no cover - the last attempt returns or raises


def read_claim(key: str) -> Claim | None:
    """The claim on ``key``, or None when nobody holds it."""
    with mlflow_errors(f"read the claim {key!r}"):
        experiment = client().get_experiment_by_name(claim_name(key))
    if experiment is None:
        return None
    tags = dict(experiment.tags)
    if tags.get(f"{_TAG}key") != key:
        raise TrackingError(
            f"The experiment {experiment.name!r} reserves the claim {key!r} but carries "
            f"{tags.get(f'{_TAG}key')!r}: it was made or edited outside mlflow-ext.",
            hint="Leave experiments under mlflow-ext/.claims/ alone.",
        )
    payload = {k[len(_PAYLOAD):]: v for k, v in tags.items() if k.startswith(_PAYLOAD)}
    return Claim(
        key=key,
        owner=tags.get(f"{_TAG}owner", ""),
        claimed_at=datetime.fromisoformat(tags[f"{_TAG}time"]),
        payload=payload,
        token=tags.get(f"{_TAG}token", ""),
        experiment_id=str(experiment.experiment_id),
    )
