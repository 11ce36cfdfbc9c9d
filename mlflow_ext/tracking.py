"""Everything that talks to MLflow: the client, error wrapping, experiments, runs, versions.

Other modules never call MLflow's stores directly; they go through these functions, which turn
MLflow's exceptions into the mlflow-ext error tree and batch every write (one ``log_metric`` call
costs about a hundred times a batched value).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow_ext.errors import MlflowExtError, NotFoundError, TrackingError

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    from mlflow_ext.estimation import CBPEModel, DLEModel
    from mlflow_ext.profile import Profile

__all__ = [
    "DEFAULT_ALIAS",
    "TAG_PREFIX",
    "MetricPoint",
    "VersionRef",
    "VersionReference",
    "client",
    "get_or_create_experiment",
    "load_version_reference",
    "log_run",
    "mlflow_errors",
    "monitoring_experiment",
    "parse_model_ref",
    "resolve_version",
    "save_version_reference",
    "set_version_tags",
    "tracking_uri",
    "upsert",
]

TAG_PREFIX = "mlflow_ext."
DEFAULT_ALIAS = "champion"
MONITORING_EXPERIMENT = "mlflow-ext/{model}"
DESCRIPTION_TAG = "mlflow.note.content"  # what the MLflow UI shows as the run's description


def tracking_uri() -> str:
    """The tracking URI in force (MLflow's default is sqlite:///mlflow.db in the working folder)."""
    import mlflow

    return str(mlflow.get_tracking_uri())


@contextlib.contextmanager
def mlflow_errors(action: str) -> Iterator[None]:
    """Turn what MLflow (or the HTTP layer under it) raises into TrackingError / NotFoundError."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowExtError:
        raise
    except MlflowException as exc:
        kind = _client_error(exc)
        message = getattr(exc, "message", str(exc))
        if kind == "not found":
            raise NotFoundError(f"Could not {action}: {message}") from exc
        if kind == "credentials":
            raise TrackingError(
                f"Could not {action}: the tracking server refused the credentials ({message}).",
                hint="Check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN).",
            ) from exc
        if kind == "permission":
            user = os.environ.get("MLFLOW_TRACKING_USERNAME", "this user")
            raise TrackingError(
                f"Could not {action}: the tracking server denied {user!r} permission ({message}).",
                hint="Ask an admin of the MLflow server for EDIT on the experiment or registered model "
                     "(MANAGE to change permissions), or work in an experiment you created.",
            ) from exc
        raise TrackingError(
            f"Could not {action}: {message}",
            hint=f"Check that the tracking store at {_safe_uri()} is reachable and writable.",
        ) from exc
    except (OSError, ConnectionError) as exc:
        raise TrackingError(
            f"Could not {action}: {type(exc).__name__}: {exc}",
            hint=f"Check that the tracking store at {_safe_uri()} is reachable.",
        ) from exc


def _client_error(exc: Exception) -> str | None:
    """What the caller must change for ``exc`` to go away, or None when retrying may help."""
    code = getattr(exc, "error_code", "")
    message = getattr(exc, "message", str(exc))
    if code == "RESOURCE_DOES_NOT_EXIST":
        return "not found"
    if code == "UNAUTHENTICATED" or "error code 401" in message:
        return "credentials"
    if code == "PERMISSION_DENIED" or "error code 403" in message:
        return "permission"
    if code == "INVALID_PARAMETER_VALUE":
        return "input"
    return None


def _safe_uri() -> str:
    """The tracking URI without any password it may embed (never print secrets)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        uri = f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri


def client() -> MlflowClient:
    """An MLflow client for the tracking and registry URIs in force."""
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def get_or_create_experiment(name: str, *, tags: Mapping[str, str] | None = None) -> str:
    """The id of the experiment ``name``, created when missing (safe when two processes race)."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client()
    with mlflow_errors(f"open the experiment {name!r}"):
        found = mlflow_client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                raise TrackingError(
                    f"The experiment {name!r} is deleted, so nothing can be recorded in it.",
                    hint=f"Restore it (mlflow experiments restore --experiment-id {found.experiment_id}).",
                )
            return str(found.experiment_id)
        try:
            return str(mlflow_client.create_experiment(name, tags=dict(tags or {})))
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
        again = mlflow_client.get_experiment_by_name(name)
        if again is None:  # created and deleted in between: report rather than loop
            raise TrackingError(f"The experiment {name!r} vanished while being opened.")
        return str(again.experiment_id)


def monitoring_experiment(model: str) -> str:
    """The id of ``mlflow-ext/<model>``, where checks and decisions of one model are recorded."""
    return get_or_create_experiment(
        MONITORING_EXPERIMENT.format(model=model), tags={f"{TAG_PREFIX}model": model}
    )


@dataclass(frozen=True)
class VersionRef:
    """A parsed model reference: ``name``, ``name@alias`` or ``name/version``."""

    name: str
    alias: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        return f"{self.name}@{self.alias or DEFAULT_ALIAS}"


def parse_model_ref(ref: str, *, default_alias: str = DEFAULT_ALIAS) -> VersionRef:
    """Parse ``MODEL``, ``MODEL@ALIAS`` or ``MODEL/VERSION`` (a bare name means the default alias)."""
    text = ref.strip()
    if not text:
        raise TrackingError("The model reference is empty.", hint="Give MODEL, MODEL@ALIAS or MODEL/VERSION.")
    if "@" in text:
        name, alias = text.rsplit("@", 1)
        if not name or not alias:
            raise TrackingError(f"Invalid model reference {ref!r}.", hint="Give MODEL@ALIAS, e.g. churn@champion.")
        return VersionRef(name=name, alias=alias)
    head, _, tail = text.rpartition("/")
    if head and tail.isdigit():
        return VersionRef(name=head, version=tail)
    return VersionRef(name=text, alias=default_alias)


def resolve_version(ref: str | VersionRef, *, default_alias: str = DEFAULT_ALIAS) -> ModelVersion:
    """The registered model version a reference points at; NotFoundError names what is missing."""
    parsed = parse_model_ref(ref, default_alias=default_alias) if isinstance(ref, str) else ref
    mlflow_client = client()
    with mlflow_errors(f"find the registered model {parsed.name!r}"):
        registered = mlflow_client.get_registered_model(parsed.name)
    if parsed.version is not None:
        with mlflow_errors(f"find version {parsed.version} of {parsed.name!r}"):
            return mlflow_client.get_model_version(parsed.name, parsed.version)
    alias = parsed.alias or default_alias
    # Read the alias from the model itself: stores disagree on the error a missing alias raises.
    version = dict(registered.aliases or {}).get(alias)
    if version is None:
        raise NotFoundError(
            f"The registered model {parsed.name!r} has no version with the alias {alias!r}.",
            hint=f"Name a version ({parsed.name}/<version>) or promote one: "
            f"mlflow-ext promote {parsed.name} <version>.",
        )
    with mlflow_errors(f"find version {version} of {parsed.name!r}"):
        return mlflow_client.get_model_version(parsed.name, str(version))


_UPSERT_ATTEMPTS = 6


def upsert(action: str, write: Callable[[], object]) -> None:
    """Run one idempotent registry write (set a tag or an alias), retrying store errors.

    MLflow sets a tag or an alias by reading the row and then inserting or updating it, so two
    writers of the same key at once can fail with a unique-key error (sqlite and PostgreSQL alike);
    writing again is then correct. Client errors (credentials, permissions, input, a missing model)
    are raised at once.
    """
    from mlflow.exceptions import MlflowException

    for attempt in range(1, _UPSERT_ATTEMPTS + 1):
        with mlflow_errors(action):
            try:
                write()
                return
            except MlflowException as exc:
                if attempt == _UPSERT_ATTEMPTS or _client_error(exc) is not None:
                    raise
        time.sleep(0.05 * 2**attempt)


def set_version_tags(name: str, version: str, tags: Mapping[str, str]) -> None:
    """Set several tags on one model version."""
    mlflow_client = client()
    for key, value in tags.items():
        upsert(f"tag version {version} of {name!r}",
               functools.partial(mlflow_client.set_model_version_tag, name, version, key, str(value)))


@dataclass(frozen=True)
class MetricPoint:
    """One metric value to log, with the step and timestamp the MLflow UI charts it against."""

    key: str
    value: float
    step: int = 0
    timestamp_ms: int | None = None


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def log_run(
    experiment_id: str,
    *,
    run_name: str,
    metrics: Sequence[MetricPoint] = (),
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
    artifacts: Mapping[str, bytes | str | Path] | None = None,
    status: str = "FINISHED",
) -> str:
    """Record one complete run in batched writes and return its id.

    ``artifacts`` maps an artifact path to its content (bytes or text) or to a local file. If any
    write fails the run is deleted before the error is raised, so no half-written run is left
    behind for anyone to read.
    """
    from mlflow.entities import Metric, Param, RunTag

    mlflow_client = client()
    now = int(time.time() * 1000)
    all_tags = dict(tags or {})
    if description is not None:
        all_tags[DESCRIPTION_TAG] = description
    with mlflow_errors(f"start a run in experiment {experiment_id}"):
        run = mlflow_client.create_run(experiment_id, run_name=run_name, start_time=now)
    run_id = str(run.info.run_id)
    try:
        with mlflow_errors(f"record the run {run_name!r}"):
            metric_objs = [
                Metric(p.key, float(p.value), p.timestamp_ms if p.timestamp_ms is not None else now, p.step)
                for p in metrics
            ]
            for chunk in _chunks(metric_objs, 1000):
                mlflow_client.log_batch(run_id, metrics=chunk, synchronous=True)
            param_objs = [Param(k, str(v)[:6000]) for k, v in (params or {}).items()]
            for chunk in _chunks(param_objs, 100):
                mlflow_client.log_batch(run_id, params=chunk, synchronous=True)
            tag_objs = [RunTag(k, str(v)) for k, v in all_tags.items()]
            for chunk in _chunks(tag_objs, 100):
                mlflow_client.log_batch(run_id, tags=chunk, synchronous=True)
            if artifacts:
                with tempfile.TemporaryDirectory(prefix="mlflow-ext-") as tmp:
                    for rel, content in artifacts.items():
                        target = Path(tmp, rel)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        if isinstance(content, Path):
                            target.write_bytes(content.read_bytes())
                        elif isinstance(content, bytes):
                            target.write_bytes(content)
                        else:
                            target.write_text(content, encoding="utf-8")
                    mlflow_client.log_artifacts(run_id, tmp)
            mlflow_client.set_terminated(run_id, status=status)
    except BaseException:
        with contextlib.suppress(Exception):
            mlflow_client.delete_run(run_id)
        raise
    return run_id


def to_json_bytes(document: Any) -> bytes:
    """A JSON artifact's bytes: sorted keys, indented, UTF-8."""
    return json.dumps(document, indent=2, sort_keys=True, default=str).encode("utf-8")


# -- version reference: what @track stores with each registered version ----------------------------

REFERENCE_ARTIFACTS = "mlflow_ext"  # run artifact folder holding profile/ and predictions/
VALIDATION_PREFIX = f"{TAG_PREFIX}val."


@dataclass(frozen=True)
class VersionReference:
    """What mlflow-ext stored with a registered version at training time (written by @track).

    ``profile`` summarises the training features (with the reference sample), ``predictions`` the
    model's outputs on that sample (``prediction`` and, for classifiers, ``proba_<class>``; None for a
    version logged without them), ``validation`` the validation metrics by name (``accuracy``,
    ``roc_auc``, ... and ``n_rows``).
    """

    name: str
    version: str
    run_id: str
    profile: Profile
    predictions: Profile | None
    task: str
    target: str | None
    features: tuple[str, ...]
    validation: Mapping[str, float]
    estimator_uri: str | None = None  # runs:/ URI of the performance estimator; None when the version has none

    @functools.cached_property
    def estimator(self) -> CBPEModel | DLEModel | None:
        """The version's performance estimator (CBPE or DLE), downloaded on first use; None without one."""
        return None if self.estimator_uri is None else load_estimator(self.estimator_uri)


def save_version_reference(run_id: str, profile: Profile, predictions: Profile | None) -> str:
    """Upload the training profile and the reference predictions to a run; the profile's ``runs:/`` URI."""
    with tempfile.TemporaryDirectory(prefix="mlflow-ext-") as tmp:
        profile.save(Path(tmp, "profile"))
        if predictions is not None:
            predictions.save(Path(tmp, "predictions"))
        with mlflow_errors(f"upload the reference profile to run {run_id}"):
            client().log_artifacts(run_id, tmp, REFERENCE_ARTIFACTS)
    return f"runs:/{run_id}/{REFERENCE_ARTIFACTS}/profile"


def load_version_reference(model_version: ModelVersion | VersionRef | str) -> VersionReference:
    """The reference @track stored with a version (a ModelVersion or a reference like ``churn@champion``).

    ProfileError when the version carries no mlflow-ext profile (registered outside mlflow-ext) or
    its tags are corrupt; NotFoundError when the profile's run or artifacts are gone.
    """
    import mlflow.artifacts

    from mlflow_ext.errors import ProfileError
    from mlflow_ext.profile import Profile

    version = model_version if not isinstance(model_version, (str, VersionRef)) else resolve_version(model_version)
    tags = dict(version.tags or {})
    label = f"version {version.version} of {version.name!r}"
    uri = tags.get(f"{TAG_PREFIX}profile", "")
    if not uri.startswith("runs:/"):
        raise ProfileError(
            f"The model {label} has no mlflow-ext reference profile (version tag {TAG_PREFIX}profile is "
            f"{'missing' if not uri else repr(uri)}); it was probably registered outside mlflow-ext.",
            hint="Register the model from a training function decorated with @mlflow_ext.track.",
        )
    run_id = uri.split("/")[1]
    try:
        features = json.loads(tags.get(f"{TAG_PREFIX}features", "[]"))
    except ValueError:
        features = None
    if not isinstance(features, list):
        raise ProfileError(f"The tag {TAG_PREFIX}features of {label} is not a JSON list of column names.")
    mlflow_client = client()
    with tempfile.TemporaryDirectory(prefix="mlflow-ext-ref-") as tmp:
        with mlflow_errors(f"download the reference profile of {label} from {uri}"):
            profile = Profile.load(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
            listed = {Path(a.path).name for a in mlflow_client.list_artifacts(run_id, REFERENCE_ARTIFACTS)}
            predictions = None
            if "predictions" in listed:
                predictions = Profile.load(mlflow.artifacts.download_artifacts(
                    artifact_uri=f"runs:/{run_id}/{REFERENCE_ARTIFACTS}/predictions", dst_path=tmp))
        with mlflow_errors(f"read the training run {run_id} of {label}"):
            metrics = mlflow_client.get_run(run_id).data.metrics
    return VersionReference(
        name=str(version.name), version=str(version.version), run_id=run_id, profile=profile,
        predictions=predictions, task=tags.get(f"{TAG_PREFIX}task", "classification"),
        target=tags.get(f"{TAG_PREFIX}target") or None, features=tuple(str(f) for f in features),
        validation={k[len(VALIDATION_PREFIX):]: float(v) for k, v in metrics.items()
                    if k.startswith(VALIDATION_PREFIX)},
        estimator_uri=tags.get(ESTIMATOR_TAG) or None,
    )


# -- performance estimator: CBPE / DLE fitted by @track on the validation rows ---------------------

ESTIMATOR_TAG = f"{TAG_PREFIX}estimator"  # version tag: runs:/<run_id>/mlflow_ext/estimator
NO_ESTIMATOR_TAG = f"{TAG_PREFIX}estimator.missing"  # version tag: why a version has no estimator


def save_estimator(run_id: str, estimator: CBPEModel | DLEModel, plots: Mapping[str, bytes]) -> str:
    """Upload an estimator (``mlflow_ext/estimator/``) and its plots (``mlflow_ext/plots/<name>``); its URI."""
    with tempfile.TemporaryDirectory(prefix="mlflow-ext-") as tmp:
        estimator.save(Path(tmp, "estimator"))
        for name, png in plots.items():
            Path(tmp, "plots").mkdir(exist_ok=True)
            Path(tmp, "plots", name).write_bytes(png)
        with mlflow_errors(f"upload the performance estimator to run {run_id}"):
            client().log_artifacts(run_id, tmp, REFERENCE_ARTIFACTS)
    return f"runs:/{run_id}/{REFERENCE_ARTIFACTS}/estimator"


def load_estimator(uri: str) -> CBPEModel | DLEModel:
    """Download and read the estimator at ``uri`` (NotFoundError when gone, DataError when corrupt)."""
    import mlflow.artifacts

    from mlflow_ext.estimation import load

    with tempfile.TemporaryDirectory(prefix="mlflow-ext-est-") as tmp:
        with mlflow_errors(f"download the performance estimator from {uri}"):
            folder = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        return load(folder)
