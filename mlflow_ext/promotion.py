"""Promotion: move a registry alias only through a recorded Decision, with compare-and-set.

The registry's alias writes are last-writer-wins and keep no history. Every move here is a
numbered *generation* of the alias: generation ``n`` is the once-only claim
``alias:<model>:<alias>:<n>`` (see ``_claims``). A promotion reads the current generation and
champion, evaluates its rules against that champion, then claims the next generation; only the
claim's winner writes the alias, so two promotions evaluated against the same champion can never
both move it. The loser records a refused decision saying who moved the champion meanwhile.

After writing the alias the winner raises the registered-model tag
``mlflow_ext.alias.<alias>.generation`` to its generation. A reader who finds a claimed generation
beyond that tag follows it: the move is over when the alias points at its target or the next
generation is claimed too; otherwise a move is in flight, and the reader waits while the claim is
younger than the lease (``MLFLOW_EXT_PROMOTION_LEASE`` seconds, default 120). Once the lease is
over it treats the mover as crashed and closes the generation, and promotions go on. A mover refuses to
write the alias once half its lease is spent, so a slow (not dead) mover cannot overwrite a
recovered generation unless it stalls for half a lease between that check and the write.

Every decision (promoted, refused, dry-run, forced, rollback) is one run in ``mlflow-ext/<model>``
and the alias history is read back from those runs.
"""

from __future__ import annotations

import getpass
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlflow_ext import _claims
from mlflow_ext.errors import (
    ConfigError,
    ConflictError,
    DataError,
    MlflowExtError,
    NotFoundError,
    PluginError,
)
from mlflow_ext.tracking import (
    DEFAULT_ALIAS,
    MONITORING_EXPERIMENT,
    TAG_PREFIX,
    MetricPoint,
    client,
    log_run,
    mlflow_errors,
    monitoring_experiment,
    set_version_tags,
    to_json_bytes,
    upsert,
)

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion

    from mlflow_ext.rules import Rule, RuleContext, RuleResult

__all__ = ["Decision", "HistoryEntry", "RuleOutcome", "history", "promote", "rollback"]

Outcome = Literal["promoted", "refused", "dry-run"]
Action = Literal["promote", "rollback"]

LEASE_ENV = "MLFLOW_EXT_PROMOTION_LEASE"
USER_ENV = "MLFLOW_EXT_USER"
# Test-only: sleep this many seconds right after winning the claim, so a test can kill the mover.
_PAUSE_ENV = "MLFLOW_EXT_TEST_PAUSE_AFTER_CLAIM"
_DEFAULT_LEASE = 120.0


def previous_alias(alias: str) -> str:
    """The alias the loser of ``alias`` keeps: ``previous-champion`` for ``champion``."""
    return f"previous-{alias}"


def _generation_tag(alias: str) -> str:
    return f"{TAG_PREFIX}alias.{alias}.generation"


def _claim_key(model: str, alias: str, generation: int) -> str:
    return f"alias:{model}:{alias}:{generation}"


@dataclass(frozen=True)
class RuleOutcome:
    """One rule's verdict as recorded in a Decision (plain values, JSON-ready)."""

    rule: str
    passed: bool
    observed: float | str | None
    bound: float | str | None
    message: str


@dataclass(frozen=True)
class Decision:
    """The outcome of one promotion or rollback attempt, as recorded in MLflow."""

    model: str
    alias: str
    candidate: str
    action: Action
    outcome: Outcome
    rules: tuple[RuleOutcome, ...]
    champion_before: str | None
    champion_after: str | None
    who: str
    when: datetime
    reason: str | None
    message: str
    forced: bool = False
    candidate_metrics: Mapping[str, float] = field(default_factory=dict)
    champion_metrics: Mapping[str, float] = field(default_factory=dict)
    generation: int | None = None
    run_id: str | None = None

    @property
    def promoted(self) -> bool:
        """True when the alias now points at the candidate because of this decision."""
        return self.outcome == "promoted"

    @property
    def failed_rules(self) -> tuple[str, ...]:
        """Names of the rules that did not pass."""
        return tuple(r.rule for r in self.rules if not r.passed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``decision.json`` and ``--json`` hold)."""
        data = asdict(self)
        data["when"] = self.when.isoformat()
        data["candidate_metrics"] = dict(self.candidate_metrics)
        data["champion_metrics"] = dict(self.champion_metrics)
        data["failed_rules"] = list(self.failed_rules)
        return data


@dataclass(frozen=True)
class HistoryEntry:
    """One holder of an alias: which version held it from when to when, and why it moved there.

    ``since`` is when the move was recorded (right after the alias write); an unrecorded move
    (``recorded=False``, made outside mlflow-ext) has no known time, who or reason.
    """

    alias: str
    version: str | None
    since: datetime | None
    until: datetime | None
    previous: str | None
    who: str | None
    reason: str | None
    action: str
    recorded: bool
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["since"] = self.since.isoformat() if self.since else None
        data["until"] = self.until.isoformat() if self.until else None
        return data


def who() -> str:
    """Who is acting: MLFLOW_EXT_USER, else the login name."""
    user = os.environ.get(USER_ENV, "").strip()
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"


def _lease() -> float:
    raw = os.environ.get(LEASE_ENV, "").strip()
    if not raw:
        return _DEFAULT_LEASE
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{LEASE_ENV}={raw!r}: expected a positive number of seconds.")
    return value


# -- public API ------------------------------------------------------------------------------------


def promote(
    model: str,
    version: str | int,
    *,
    to: str = DEFAULT_ALIAS,
    policy: Any = None,
    eval_data: pd.DataFrame | str | Path | None = None,
    labels: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    reason: str | None = None,
) -> Decision:
    """Evaluate the promotion rules for ``model`` version ``version`` and move alias ``to`` if they pass.

    ``policy`` is a policy file path, a loaded Policy, or a sequence of Rule objects (None: no
    rules). ``eval_data`` (a frame or a CSV/Parquet path) with its label column ``labels``
    (default: the label the version was trained on) is what the rules compare the models on.
    Returns the Decision, refused ones included; every decision is recorded in MLflow. Raises
    on bad input before any rule runs; a rule that cannot be evaluated is recorded as a refused
    decision and its error raised.
    """
    if force and not (reason and reason.strip()):
        raise ConfigError("force=True needs a reason.", hint="Say why the rules are overridden: --reason TEXT.")
    from mlflow_ext.rules import RuleContext

    candidate = _version(model, version)
    rules, model_policy = _rules(policy, model)
    frame, target, where = _eval_frame(eval_data, labels, candidate)
    state = _read_state(model, to)
    if state.champion == str(candidate.version):
        raise ConflictError(
            f"Version {candidate.version} of {model!r} already holds the alias {to!r}.",
            hint=f"Promote another version, or see 'mlflow-ext history {model}'.",
        )
    plan = _Plan(model=model, alias=to, candidate=str(candidate.version), action="promote",
                 champion=state.champion, generation=state.generation, reason=reason, forced=False)
    context = RuleContext(model=model, candidate=plan.candidate, champion=plan.champion,
                          eval_data=frame, target=target, policy=model_policy)
    if frame is not None:
        _check_inputs(context, where)
    outcomes, metrics = _evaluate(plan, rules, context, candidate.tags.get(f"{TAG_PREFIX}task"))
    passed = all(o.passed for o in outcomes)
    if dry_run:
        verdict = "would be promoted" if passed else f"would be refused ({', '.join(_failed(outcomes))} failed)"
        return _record(plan, "dry-run", outcomes, metrics, f"Dry run: version {candidate.version} {verdict}.")
    if not passed and not force:
        return _record(plan, "refused", outcomes, metrics,
                       f"Refused: {', '.join(_failed(outcomes))} did not pass.")
    if not passed:
        plan = replace(plan, forced=True)
    return _move(plan, outcomes, metrics)


def rollback(model: str, *, to: str | int | None = None, alias: str = DEFAULT_ALIAS, reason: str) -> Decision:
    """Move ``alias`` back to version ``to`` (default: the ``previous-<alias>`` holder), recorded.

    No rules are evaluated; the move goes through the same compare-and-set and recording as a
    promotion.
    """
    if not (reason and reason.strip()):
        raise ConfigError("A rollback needs a reason.", hint="Say why: --reason TEXT.")
    if to is None:
        _registered(model)
        to = _alias_version(model, previous_alias(alias))
        if to is None:
            raise NotFoundError(
                f"{model!r} has no {previous_alias(alias)!r} version to roll back to.",
                hint=f"Name the version: mlflow-ext rollback {model} --to VERSION --reason TEXT.",
            )
    target = _version(model, to)
    state = _read_state(model, alias)
    if state.champion == str(target.version):
        raise ConflictError(f"Version {target.version} of {model!r} already holds the alias {alias!r}.")
    plan = _Plan(model=model, alias=alias, candidate=str(target.version), action="rollback",
                 champion=state.champion, generation=state.generation, reason=reason, forced=False)
    return _move(plan, (), _Metrics())


def history(model: str, *, alias: str = DEFAULT_ALIAS) -> tuple[HistoryEntry, ...]:
    """Who held ``alias`` from when to when, and why it moved, oldest first.

    Built from the recorded decisions; when the alias now points elsewhere than the last recorded
    move left it (a move made outside mlflow-ext), a last entry with ``recorded=False`` says so.
    """
    _registered(model)
    mlflow_client = client()
    runs: list[Any] = []
    with mlflow_errors(f"read the decisions of {model!r}"):
        experiment = mlflow_client.get_experiment_by_name(MONITORING_EXPERIMENT.format(model=model))
        token: str | None = None
        while experiment is not None:
            page = mlflow_client.search_runs(
                [experiment.experiment_id],
                filter_string=(f"tags.`{TAG_PREFIX}kind` = 'decision' and tags.`{TAG_PREFIX}alias` = '{alias}'"
                               f" and tags.`{TAG_PREFIX}outcome` = 'promoted'"),
                max_results=1000,
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                break
    # The generation orders moves even when two decisions were recorded out of order.
    runs.sort(key=lambda r: (int(r.data.tags.get(f"{TAG_PREFIX}generation", "0")), r.info.start_time))
    entries: list[HistoryEntry] = []
    for run in runs:
        tags = run.data.tags
        since = datetime.fromtimestamp(run.info.start_time / 1000, tz=timezone.utc)
        entries.append(HistoryEntry(
            alias=alias, version=tags.get(f"{TAG_PREFIX}candidate"), since=since, until=None,
            previous=tags.get(f"{TAG_PREFIX}champion_before") or None, who=tags.get(f"{TAG_PREFIX}who"),
            reason=tags.get(f"{TAG_PREFIX}why") or None, action=tags.get(f"{TAG_PREFIX}action", "promote"),
            recorded=True, run_id=run.info.run_id,
        ))
    current = _alias_version(model, alias)
    last = entries[-1].version if entries else None
    if current != last:
        entries.append(HistoryEntry(
            alias=alias, version=current, since=None, until=None, previous=last, who=None,
            reason=("moved outside mlflow-ext: the alias differs from the last recorded decision"
                    if current is not None else "removed outside mlflow-ext"),
            action="unrecorded", recorded=False,
        ))
    closed = [replace(entry, until=nxt.since) for entry, nxt in zip(entries, entries[1:], strict=False)]
    return tuple([*closed, *entries[-1:]])


# -- reading state -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _State:
    generation: int
    champion: str | None


@dataclass(frozen=True)
class _Plan:
    model: str
    alias: str
    candidate: str
    action: Action
    champion: str | None
    generation: int
    reason: str | None
    forced: bool


@dataclass(frozen=True)
class _Metrics:
    candidate: Mapping[str, float] = field(default_factory=dict)
    champion: Mapping[str, float] = field(default_factory=dict)


def _failed(outcomes: Sequence[RuleOutcome]) -> list[str]:
    return [o.rule for o in outcomes if not o.passed]


def _registered(model: str) -> None:
    """Raise NotFoundError unless the registered model exists."""
    try:
        with mlflow_errors(f"find the registered model {model!r}"):
            client().get_registered_model(model)
    except NotFoundError as exc:
        raise NotFoundError(f"No registered model named {model!r}.",
                            hint="Register it first (mlflow.register_model), or check the tracking URI.") from exc


def _version(model: str, version: str | int) -> ModelVersion:
    """A registered model version: NotFoundError naming what is missing, or that its run is deleted."""
    _registered(model)
    mlflow_client = client()
    text = str(version).strip()
    if not text.isdigit():
        raise NotFoundError(f"{text!r} is not a version number of {model!r}.", hint="Give a number, e.g. 3.")
    try:
        with mlflow_errors(f"find version {text} of {model!r}"):
            found = mlflow_client.get_model_version(model, text)
    except NotFoundError as exc:
        raise NotFoundError(
            f"The registered model {model!r} has no version {text}.",
            hint=f"See its versions in the MLflow UI or with: mlflow-ext history {model}.",
        ) from exc
    if found.run_id:
        try:
            with mlflow_errors(f"find the run of version {text} of {model!r}"):
                run = mlflow_client.get_run(found.run_id)
        except NotFoundError:
            run = None
        if run is None or run.info.lifecycle_stage == "deleted":
            raise NotFoundError(
                f"The run {found.run_id} that produced version {text} of {model!r} is deleted.",
                hint=f"Restore it (mlflow runs restore --run-id {found.run_id}) or promote another version.",
            )
    return found


def _alias_version(model: str, alias: str) -> str | None:
    with mlflow_errors(f"read the aliases of {model!r}"):
        aliases = client().get_registered_model(model).aliases
    version = aliases.get(alias)
    return None if version is None else str(version)


def _read_state(model: str, alias: str) -> _State:
    """The alias's current generation and holder, after any in-flight move finished or expired.

    Generation n + 1 is over when the alias points at its target, or when n + 2 is claimed (nobody
    claims n + 2 before n + 1 is over), or when its lease has run out. The tag and the alias are
    read again on every step: other movers may finish several moves while this reader waits.
    """
    lease = _lease()
    generation = 0
    while True:
        with mlflow_errors(f"read the registered model {model!r}"):
            registered = client().get_registered_model(model)
        generation = max(generation, int(registered.tags.get(_generation_tag(alias), "0") or 0))
        champion = registered.aliases.get(alias)
        champion = None if champion is None else str(champion)
        pending = _claims.read_claim(_claim_key(model, alias, generation + 1))
        if pending is None:
            return _State(generation=generation, champion=champion)
        if (champion == pending.payload.get("to")
                or _claims.read_claim(_claim_key(model, alias, generation + 2)) is not None):
            generation += 1  # moved; its mover has not stored the generation yet (or crashed)
            continue
        if pending.age_seconds() < lease:
            time.sleep(0.2)  # a move is being written: wait for it rather than race it
            continue
        # The mover died between its claim and its alias write: close the generation.
        generation += 1
        _store_generation(model, alias, generation)


def _store_generation(model: str, alias: str, generation: int) -> None:
    """Raise the generation tag to ``generation``; a slow mover never lowers it again."""
    tag = _generation_tag(alias)
    with mlflow_errors(f"read the registered model {model!r}"):
        stored = int(client().get_registered_model(model).tags.get(tag, "0") or 0)
    if stored < generation:
        upsert(f"store the generation of the alias {alias!r} of {model!r}",
               lambda: client().set_registered_model_tag(model, tag, str(generation)))


# -- evaluating --------------------------------------------------------------------------------------


def _rules(policy: Any, model: str) -> tuple[list[Rule], Any]:
    """The rules to evaluate and the ModelPolicy they came from (None for a plain list)."""
    if policy is None:
        return [], None
    if isinstance(policy, (str, Path)):
        from mlflow_ext.policy import load_policy

        policy = load_policy(policy)
    if hasattr(policy, "for_model"):
        policy = policy.for_model(model)
    if hasattr(policy, "rules") and not isinstance(policy, Sequence):
        return list(policy.rules), policy
    if isinstance(policy, Sequence) and not isinstance(policy, str):
        return list(policy), None
    raise ConfigError(
        f"policy must be a policy file, a Policy or a list of rules, not {type(policy).__name__}."
    )


def _eval_frame(eval_data: pd.DataFrame | str | Path | None, labels: str | None,
                candidate: ModelVersion) -> tuple[pd.DataFrame | None, str | None, str]:
    """Load the evaluation set and check its label column; returns frame, label column, its name."""
    if eval_data is None:
        return None, labels, ""
    import pandas as pd

    from mlflow_ext._io import read_frame

    frame = eval_data if isinstance(eval_data, pd.DataFrame) else read_frame(eval_data)
    where = "the evaluation frame" if isinstance(eval_data, pd.DataFrame) else str(eval_data)
    target = labels or candidate.tags.get(f"{TAG_PREFIX}target")
    if not target:
        raise DataError(f"No label column is known for {where}.", hint="Name it: labels=... (or --labels COL).")
    if target not in frame.columns:
        raise DataError(
            f"{where} has no label column {target!r}. Columns: {', '.join(map(str, frame.columns[:20]))}.",
            hint="Name the label column with labels=... (--labels COL).",
        )
    if frame.empty:
        raise DataError(f"{where} has no rows.", hint="Give a labelled evaluation set with at least one row.")
    return frame, target, where


def _check_inputs(context: RuleContext, where: str) -> None:
    """DataError unless the evaluation set holds every input the candidate takes."""
    expected = context.inputs("candidate")
    missing = [c for c in expected if c not in context.eval_data.columns]  # type: ignore[union-attr]
    if missing:
        raise DataError(
            f"{where} does not match the inputs of version {context.candidate} of {context.model!r}: "
            f"missing {', '.join(map(repr, missing[:10]))}. Expected: {', '.join(expected[:20])}.",
            hint="Evaluate on data with the columns the model was trained on.",
        )


def _evaluate(plan: _Plan, rules: Sequence[Rule], context: RuleContext,
              task: str | None) -> tuple[tuple[RuleOutcome, ...], _Metrics]:
    """Run every rule, then score both models on the evaluation set for the record.

    Anything that breaks on the way (a rule, a model that cannot load or predict, a metric the
    policy names that was never logged) is recorded as a refused decision, then raised.
    """
    from mlflow_ext._stats import CLASSIFICATION_METRICS, REGRESSION_METRICS

    standard = {"classification": CLASSIFICATION_METRICS, "regression": REGRESSION_METRICS}.get(task or "", ())
    outcomes: list[RuleOutcome] = []
    rule_name: str | None = None
    try:
        for rule in rules:
            rule_name = _rule_name(rule)
            outcomes.append(_outcome(rule.evaluate(context), rule_name))
        rule_name = None
        if context.eval_data is not None:
            for role in ["candidate"] if plan.champion is None else ["candidate", "champion"]:
                context.outputs(role)  # a model that cannot load or predict fails here, loudly
                for name in standard:
                    try:
                        context.metric(role, name)
                    except (DataError, ConfigError):
                        pass  # undefined for this model (no probabilities, one class): not recorded
    except Exception as exc:  # noqa: BLE001 - any failure refuses, is recorded, then raised
        step = "scoring the models" if rule_name is None else f"the rule {rule_name!r}"
        error = exc if isinstance(exc, MlflowExtError) else PluginError(
            f"{step[0].upper()}{step[1:]} failed on version {plan.candidate}: {type(exc).__name__}: {exc}")
        if rule_name is not None:
            outcomes.append(RuleOutcome(rule=rule_name, passed=False, observed=None, bound=None,
                                        message=f"Could not be evaluated: {error.message}"))
        decision = _record(plan, "refused", tuple(outcomes), _metrics(context),
                           f"Refused: {step} could not be evaluated: {error.message}")
        raise type(error)(
            error.message,
            hint=f"{error.hint + ' ' if error.hint else ''}The attempt is recorded as run {decision.run_id}.",
        ) from exc
    return tuple(outcomes), _metrics(context)


def _rule_name(rule: Any) -> str:
    return str(getattr(rule, "name", None) or type(rule).__name__)


def _outcome(result: RuleResult, name: str) -> RuleOutcome:
    def plain(value: Any) -> float | str | None:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool):
            return float(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            return str(value)

    return RuleOutcome(rule=str(getattr(result, "rule", None) or name), passed=bool(result.passed),
                       observed=plain(result.observed), bound=plain(result.bound), message=str(result.message))


def _metrics(context: RuleContext) -> _Metrics:
    """The evaluation metrics of both models computed during the evaluation."""
    return _Metrics(candidate=context.metrics("candidate"), champion=context.metrics("champion"))


# -- moving ------------------------------------------------------------------------------------------


def _move(plan: _Plan, outcomes: tuple[RuleOutcome, ...], metrics: _Metrics) -> Decision:
    """Claim the next generation; only the winner writes the alias. Always records a decision."""
    actor = who()
    generation = plan.generation + 1
    key = _claim_key(plan.model, plan.alias, generation)
    held = _claims.claim(key, owner=actor, payload={
        "from": plan.champion or "", "to": plan.candidate, "action": plan.action,
    })
    if held is None:
        return _record(plan, "refused", outcomes, metrics, _what_changed(plan, key))
    pause = float(os.environ.get(_PAUSE_ENV, "0") or 0)
    if pause > 0:
        time.sleep(pause)
    if held.age_seconds() > _lease() / 2:
        # Readers may soon close this generation as abandoned: writing now could overwrite a
        # newer move. Close it ourselves so nobody waits out the lease.
        _store_generation(plan.model, plan.alias, generation)
        return _record(plan, "refused", outcomes, metrics,
                       f"Refused: the move took longer than half the lease ({_lease():.0f} s); nothing was changed.")
    _write_alias(plan.model, plan.alias, plan.candidate)
    if plan.champion is not None:
        _write_alias(plan.model, previous_alias(plan.alias), plan.champion)
    _store_generation(plan.model, plan.alias, generation)
    verb = {"promote": "Promoted", "rollback": "Rolled back to"}[plan.action]
    forced = f" by force, overriding {', '.join(_failed(outcomes))}" if plan.forced else ""
    moved_from = f" (was version {plan.champion})" if plan.champion else ""
    return _record(replace(plan, generation=generation), "promoted", outcomes, metrics,
                   f"{verb} version {plan.candidate} as {plan.alias!r}{forced}{moved_from}.")


def _what_changed(plan: _Plan, key: str) -> str:
    winner = _claims.read_claim(key)
    if winner is None:  # cannot happen while claims are never purged; say what we know
        return f"Refused: the alias {plan.alias!r} moved while the rules were evaluated."
    source = winner.payload.get("from") or "none"
    return (f"Refused: {plan.alias} moved from version {source} to version {winner.payload.get('to')} "
            f"by {winner.owner} at {winner.claimed_at.isoformat(timespec='seconds')} while the rules "
            f"were evaluated against version {plan.champion or 'none'}.")


def _write_alias(model: str, alias: str, version: str) -> None:
    upsert(f"set the alias {alias!r} of {model!r} to version {version}",
           lambda: client().set_registered_model_alias(model, alias, version))


# -- recording ---------------------------------------------------------------------------------------


def _record(plan: _Plan, outcome: Outcome, outcomes: tuple[RuleOutcome, ...], metrics: _Metrics,
            message: str) -> Decision:
    """Log the decision as a run in mlflow-ext/<model> and tag both versions with it."""
    now = datetime.now(timezone.utc)
    after = plan.candidate if outcome == "promoted" else plan.champion
    decision = Decision(
        model=plan.model, alias=plan.alias, candidate=plan.candidate, action=plan.action, outcome=outcome,
        rules=outcomes, champion_before=plan.champion, champion_after=after, who=who(), when=now,
        reason=plan.reason, message=message, forced=plan.forced and outcome == "promoted",
        candidate_metrics=dict(metrics.candidate), champion_metrics=dict(metrics.champion),
        generation=plan.generation if outcome == "promoted" else None,
    )
    p = TAG_PREFIX
    tags = {
        f"{p}kind": "decision", f"{p}model": plan.model, f"{p}version": plan.candidate,
        f"{p}candidate": plan.candidate, f"{p}outcome": outcome, f"{p}action": plan.action,
        f"{p}alias": plan.alias, f"{p}champion_before": plan.champion or "",
        f"{p}champion_after": after or "", f"{p}who": decision.who, f"{p}why": plan.reason or "",
        f"{p}forced": str(decision.forced).lower(), f"{p}message": message[:5000],
    }
    if decision.generation is not None:
        tags[f"{p}generation"] = str(decision.generation)
    points: list[MetricPoint] = []
    for index, rule in enumerate(outcomes):
        stem = f"{p}rule.{index}_{_slug(rule.rule)}"
        tags[f"{stem}.passed"] = str(rule.passed).lower()
        tags[f"{stem}.message"] = rule.message[:5000]
        points.append(MetricPoint(f"{stem}.passed", 1.0 if rule.passed else 0.0))
        for part in ("observed", "bound"):
            value = getattr(rule, part)
            if isinstance(value, float):
                if math.isfinite(value):
                    points.append(MetricPoint(f"{stem}.{part}", value))
            elif value is not None:
                tags[f"{stem}.{part}"] = value[:5000]
    for role, values in (("candidate", metrics.candidate), ("champion", metrics.champion)):
        points.extend(MetricPoint(f"{p}{role}.{_slug(k)}", v) for k, v in values.items() if math.isfinite(v))
    run_id = log_run(
        monitoring_experiment(plan.model),
        run_name=f"decision-{plan.alias}-v{plan.candidate}-{outcome}",
        metrics=points, tags=tags, description=_markdown(decision),
        artifacts={"decision.json": to_json_bytes(decision.to_dict())},
    )
    decision = replace(decision, run_id=run_id)
    stamp = {f"{p}last_decision.outcome": outcome, f"{p}last_decision.run_id": run_id,
             f"{p}last_decision.time": now.isoformat(timespec="seconds")}
    set_version_tags(plan.model, plan.candidate, {**stamp, f"{p}last_decision.role": "candidate"})
    if plan.champion is not None:
        set_version_tags(plan.model, plan.champion, {**stamp, f"{p}last_decision.role": "champion"})
    return decision


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "rule"


def _markdown(decision: Decision) -> str:
    lines = [
        f"## {decision.action.capitalize()} of {decision.model} version {decision.candidate}: {decision.outcome}",
        "",
        decision.message,
        "",
        f"- alias: `{decision.alias}`",
        f"- champion before: {decision.champion_before or 'none'}; after: {decision.champion_after or 'none'}",
        f"- who: {decision.who}; when: {decision.when.isoformat(timespec='seconds')}",
        f"- why: {decision.reason or '(no reason given)'}",
    ]
    if decision.forced:
        lines.append(f"- **forced**, overriding: {', '.join(decision.failed_rules)}")
    if decision.rules:
        lines += ["", "| rule | passed | observed | bound | message |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {r.rule} | {'yes' if r.passed else 'no'} | {_cell(r.observed)} | {_cell(r.bound)} | "
                  f"{r.message.replace('|', '/')} |" for r in decision.rules]
    if decision.candidate_metrics or decision.champion_metrics:
        names = sorted(set(decision.candidate_metrics) | set(decision.champion_metrics))
        lines += ["", "| metric | candidate | champion |", "| --- | --- | --- |"]
        lines += [f"| {n} | {_cell(decision.candidate_metrics.get(n))} | {_cell(decision.champion_metrics.get(n))} |"
                  for n in names]
    return "\n".join(lines)


def _cell(value: float | str | None) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else value.replace("|", "/")
