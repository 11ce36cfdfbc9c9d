"""Policy files: per registered model, how it is checked, what is an incident, what fires, how it is promoted.

A policy is a TOML file, validated completely when loaded: unknown keys, mistyped values, unknown
detectors, rules or hooks and their options fail before anything runs, with the file and the field
path in the message (``policy.toml: models.churn.promotion.rules[1].min_delta: expected a number,
got 'high'``). ``recipes/policies/full.toml`` uses every field, with comments. The schema::

    version = 1                                   # schema version of the file (only 1 exists)

    [models.<name>]                               # one table per registered model
    alias = "champion"                            # the alias monitored and promoted to
    id_column = "customer_id"                     # joins late labels to batch rows (optional)

    [models.<name>.check]                         # how a batch is checked (model_check.check_model)
    alpha = 0.05                                  # significance after correction, in (0, 1)
    correction = "holm"                           # holm | bonferroni | bh | none
    drift_share = 0.5                             # share of drifted columns that alerts, (0, 1]
    min_drifted = 3                               # or: this many drifted columns alert (optional)
    tolerance = 0.02                              # relative drop of a metric on labels that counts, [0, 1)
    [models.<name>.check.detectors]               # detector per column kind, per column, overall:
    numeric = "ks"                                #   a name, "off", or a table with the name under
    categorical = { detector = "chi2", alpha = 0.01 }  #   `detector` and the detector's options
    [models.<name>.check.detectors.columns]
    customer_id = "off"

    [models.<name>.incident]                      # what counts as an incident
    drift = "warn"                                # drift alone: ignore | warn | alert
    performance_drop = "alert"                    # a significant drop on labels: warn | alert
    floors = { accuracy = 0.8 }                   # a metric below its floor alerts (accuracy, f1, roc_auc, r2)
    windows = { n = 2, m = 3 }                    # an incident opens when N of the last M windows are bad
    [models.<name>.incident.estimated]            # on performance estimated without labels (CBPE / DLE):
    metric = "accuracy"                           #   accuracy, precision, recall, f1, roc_auc | mae, rmse
    floor = 0.8                                   #   estimate below it (ceiling = ... for mae, rmse above it)
    drop = 0.02                                   #   relative loss vs validation, band excluding it, [0, 1)
    level = "alert"                               #   what a floor or drop makes the window: warn | alert
    drift_if_stable = "warn"                      #   what drift makes it while the estimate holds

    [[models.<name>.alerts]]                      # alert channels: any hook, plus these keys
    hook = "webhook"                              #   the hook's name (`mlflow-ext plugins`)
    retries = 3                                   #   attempts after the first (default 2)
    backoff = "2s"                                #   first retry delay, doubling
    timeout = "30s"                               #   per attempt
    on = ["alert"]                                #   statuses: alert (once per incident), warn, error
    url = "https://hooks.example.com/T0/B0"       #   every other key is an option of the hook
    secret_env = "CHURN_WEBHOOK_SECRET"

    [models.<name>.retrain]                       # the retraining hook: same keys as an alert, and
    hook = "command"
    argv = ["python", "train.py", "--model", "{model}"]
    cooldown = "6h"                               #   no second retrain of the model within it

    [models.<name>.promotion]                     # how retrained versions are promoted
    reference = "follow"                          # follow: monitoring moves to the new champion's
                                                  # profile on promotion; keep: it stays
    [[models.<name>.promotion.rules]]             # every rule must pass (see mlflow_ext.builtin.rules)
    rule = "beats_champion"                       #   the rule's name; every other key is its option
    metric = "accuracy"
    min_delta = 0.01

Durations are strings of numbers with units s, m, h, d (``"45s"``, ``"30m"``, ``"1h30m"``).
Hooks are created (their options type-checked) when the policy loads; their ``validate()``, which
looks at the machine (a program on the PATH, a secret in the environment), runs too unless
``load_policy(..., check_environment=False)``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from mlflow_ext import _registry
from mlflow_ext.errors import ConfigError, MlflowExtError, PluginError
from mlflow_ext.performance import HIGHER_IS_BETTER
from mlflow_ext.tracking import DEFAULT_ALIAS

if TYPE_CHECKING:
    from mlflow_ext.checks import CheckResult, EstimatedPerformance

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "SCHEMA_VERSION",
    "CheckPolicy",
    "HookSpec",
    "IncidentPolicy",
    "EstimatedIncident",
    "ModelPolicy",
    "Policy",
    "PromotionPolicy",
    "RetrainPolicy",
    "estimated_status",
    "load_policy",
    "parse_duration",
]

SCHEMA_VERSION = 1
Level = Literal["ignore", "warn", "alert"]
OFF = "off"  # TOML has no null: this turns a detector off
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_REQUIRED = object()
# Floors apply to the higher-is-better metrics that monitoring computes on labels.
FLOOR_METRICS = tuple(name for name, higher in HIGHER_IS_BETTER.items() if higher)
# The metrics CBPE (classification) and DLE (regression) estimate, and whether higher is better.
ESTIMATED_METRICS = {"accuracy": True, "precision": True, "recall": True, "f1": True, "roc_auc": True,
                     "mae": False, "rmse": False}
_LEVELS = ("ok", "warn", "alert", "error")
_RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "alpha": (lambda v: 0 < v < 1, "(0, 1)"),
    "drift_share": (lambda v: 0 < v <= 1, "(0, 1]"),
    "tolerance": (lambda v: 0 <= v < 1, "[0, 1)"),
}


@dataclass(frozen=True)
class CheckPolicy:
    """How a batch is checked (the keyword options of ``model_check.check_model``)."""

    alpha: float = 0.05
    correction: Literal["holm", "bonferroni", "bh", "none"] = "holm"
    drift_share: float = 0.5
    min_drifted: int | None = None
    tolerance: float = 0.02
    detectors: Mapping[str, Any] = field(default_factory=dict)
    detectors_written: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EstimatedIncident:
    """Incidents on one metric estimated without labels (CBPE / DLE), for windows whose labels are not in.

    ``floor`` (higher-is-better metrics) or ``ceiling`` (mae, rmse) bound the estimate; ``drop`` is
    the relative loss against the validation value that counts when the estimate's band excludes
    that value; either makes the window ``level``. ``drift_if_stable`` is what drift makes a window
    while the estimate holds (no floor crossed, no significant drop).
    """

    metric: str
    floor: float | None = None
    ceiling: float | None = None
    drop: float | None = None
    level: Literal["warn", "alert"] = "alert"
    drift_if_stable: Level | None = None


@dataclass(frozen=True)
class IncidentPolicy:
    """What counts as an incident: the level of each finding, metric floors, and N of the last M windows."""

    drift: Level = "warn"
    performance_drop: Literal["warn", "alert"] = "alert"
    floors: Mapping[str, float] = field(default_factory=dict)
    n: int = 1
    m: int = 1
    estimated: EstimatedIncident | None = None


@dataclass(frozen=True)
class HookSpec:
    """A configured hook: its name, its options as written, the created hook, and how it is fired."""

    hook: str
    options: Mapping[str, Any]
    instance: Any
    retries: int = 2
    backoff: float = 1.0  # seconds
    timeout: float = 300.0  # seconds
    on: tuple[str, ...] = ("alert",)  # alerts only: the window statuses it fires for


@dataclass(frozen=True)
class RetrainPolicy(HookSpec):
    """The retraining hook, and the cooldown (seconds) between two retrains of the model."""

    cooldown: float = 0.0


@dataclass(frozen=True)
class PromotionPolicy:
    """The rules every retrained version must pass, and where monitoring's reference goes on promotion."""

    rules: tuple[Any, ...] = ()
    reference: Literal["follow", "keep"] = "follow"
    rules_written: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class ModelPolicy:
    """Everything a policy says about one registered model."""

    name: str
    alias: str = DEFAULT_ALIAS
    id_column: str | None = None
    check: CheckPolicy = field(default_factory=CheckPolicy)
    incident: IncidentPolicy = field(default_factory=IncidentPolicy)
    alerts: tuple[HookSpec, ...] = ()
    retrain: RetrainPolicy | None = None
    promotion: PromotionPolicy = field(default_factory=PromotionPolicy)

    @property
    def rules(self) -> tuple[Any, ...]:
        """The promotion rules (created and validated Rule objects)."""
        return self.promotion.rules

    @property
    def check_options(self) -> dict[str, Any]:
        """Keyword options of ``model_check.check_model`` (detectors created, correction, thresholds)."""
        c = self.check
        return {"detectors": dict(c.detectors), "alpha": c.alpha, "correction": c.correction,
                "drift_share": c.drift_share, "min_drifted": c.min_drifted, "tolerance": c.tolerance}

    @property
    def follow_reference(self) -> bool:
        """Whether monitoring moves to the new champion's profile when a version is promoted."""
        return self.promotion.reference == "follow"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary; hooks show their option names only (a webhook URL may hold a token)."""
        def hook(spec: HookSpec) -> dict[str, Any]:
            return {"hook": spec.hook, "retries": spec.retries, "backoff": spec.backoff,
                    "timeout": spec.timeout, "options": sorted(spec.options)}

        check = {k: v for k, v in asdict(self.check).items() if k not in ("detectors", "detectors_written")}
        return {
            "alias": self.alias,
            "id_column": self.id_column,
            "check": {**check, "detectors": dict(self.check.detectors_written)},
            "incident": asdict(self.incident),
            "alerts": [hook(a) for a in self.alerts],
            "retrain": None if self.retrain is None else {**hook(self.retrain), "cooldown": self.retrain.cooldown},
            "promotion": {"reference": self.promotion.reference,
                          "rules": [dict(r) for r in self.promotion.rules_written]},
        }


@dataclass(frozen=True)
class Policy:
    """A loaded, validated policy file."""

    path: str
    models: Mapping[str, ModelPolicy]
    version: int = SCHEMA_VERSION

    def for_model(self, name: str) -> ModelPolicy:
        """The policy of one registered model; ConfigError naming the models the file has."""
        if name not in self.models:
            raise ConfigError(
                f"{self.path} has no policy for the model {name!r}. Models in it: {', '.join(sorted(self.models))}.",
                hint=f"Add a [models.{name}] table, or check the model name.",
            )
        return self.models[name]


def parse_duration(text: str, *, field: str = "duration") -> float:
    """Seconds in a duration such as ``"45s"``, ``"30m"``, ``"6h"``, ``"1d"`` or ``"1h30m"``."""
    compact = text.strip().lower() if isinstance(text, str) else ""
    parts = _DURATION.findall(compact)
    if not parts or _DURATION.sub("", compact).strip():
        raise ConfigError(f"{field}: expected a duration such as '45s', '30m', '6h' or '1d', got {text!r}.")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


_Hook = TypeVar("_Hook", bound=HookSpec)


class _Reader:
    """Reads one policy file; every error names the file and the field path."""

    def __init__(self, file: str, check_environment: bool) -> None:
        self.file = file
        self.check_environment = check_environment

    def error(self, where: str, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(f"{self.file}: {where}: {message}", hint=hint)

    def table(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(where, f"expected a table, got {value!r}.")
        return value

    def fields(self, table: Mapping[str, Any], spec: Mapping[str, tuple[Any, Any]], where: str,
               *, rest: bool = False) -> dict[str, Any]:
        """The keys of ``spec`` ({key: (annotation, default)}) type-checked; unknown keys fail unless ``rest``."""
        unknown = [key for key in table if key not in spec]
        if unknown and not rest:
            raise self.error(f"{where}.{unknown[0]}", f"unknown key. Valid keys: {', '.join(spec)}.")
        values: dict[str, Any] = {}
        for key, (annotation, default) in spec.items():
            if key not in table:
                if default is _REQUIRED:
                    raise self.error(where, f"missing the key {key!r}.")
                values[key] = default
                continue
            _registry.check_option(table[key], annotation, f"{self.file}: {where}.{key}")
            values[key] = table[key]
        return values

    def duration(self, value: Any, where: str) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value)  # a bare number is seconds
        return parse_duration(value, field=f"{self.file}: {where}")

    def plugin(self, kind: str, name: str, options: Mapping[str, Any], where: str) -> Any:
        """Create a plugin through the registry and run its validate(); errors name file and field."""
        located = f"{self.file}: {where}"
        try:
            instance = _registry.create(kind, name, dict(options), where=located)
        except PluginError as exc:
            raise ConfigError(f"{located}: {exc.message}", hint=exc.hint) from exc
        validate = getattr(instance, "validate", None)
        if callable(validate) and (kind != "hook" or self.check_environment):
            try:
                validate()
            except MlflowExtError as exc:
                if exc.message.startswith(self.file):
                    raise
                raise ConfigError(f"{located}: {exc.message}", hint=exc.hint) from exc
        return instance

    # -- sections ----------------------------------------------------------------------------------

    def policy(self, document: dict[str, Any]) -> Policy:
        top = self.fields(document, {"version": (int, SCHEMA_VERSION), "models": (dict, _REQUIRED)}, "(top level)")
        if top["version"] != SCHEMA_VERSION:
            raise self.error("version", f"this mlflow-ext reads policy version {SCHEMA_VERSION}, "
                                        f"got {top['version']!r}.", hint="Upgrade mlflow-ext or rewrite the file.")
        if not top["models"]:
            raise self.error("models", "no model is configured.", hint="Add a [models.<name>] table.")
        models = {name: self.model(name, self.table(body, f"models.{name}"), f"models.{name}")
                  for name, body in top["models"].items()}
        return Policy(path=self.file, models=models, version=top["version"])

    def model(self, name: str, body: dict[str, Any], where: str) -> ModelPolicy:
        values = self.fields(body, {"alias": (str, DEFAULT_ALIAS), "id_column": (str | None, None),
                                    "check": (dict, {}), "incident": (dict, {}), "alerts": (list[dict[str, Any]], []),
                                    "retrain": (dict | None, None), "promotion": (dict, {})}, where)
        retrain = None
        if values["retrain"] is not None:
            retrain = self.hook(values["retrain"], f"{where}.retrain", RetrainPolicy)
        return ModelPolicy(
            name=name,
            alias=values["alias"],
            id_column=values["id_column"],
            check=self.check(values["check"], f"{where}.check"),
            incident=self.incident(values["incident"], f"{where}.incident"),
            alerts=tuple(self.hook(t, f"{where}.alerts[{i}]") for i, t in enumerate(values["alerts"])),
            retrain=retrain,
            promotion=self.promotion(values["promotion"], f"{where}.promotion"),
        )

    def check(self, body: dict[str, Any], where: str) -> CheckPolicy:
        spec = {name: (kind, getattr(CheckPolicy, name)) for name, kind in (
            ("alpha", float), ("correction", Literal["holm", "bonferroni", "bh", "none"]),
            ("drift_share", float), ("min_drifted", int | None), ("tolerance", float))}
        values = self.fields(body, {**spec, "detectors": (dict, {})}, where)
        for name, (inside, interval) in _RANGES.items():
            if not inside(values[name]):
                raise self.error(f"{where}.{name}", f"expected a number in {interval}, got {values[name]!r}.")
        if values["min_drifted"] is not None and values["min_drifted"] < 1:
            raise self.error(f"{where}.min_drifted", f"expected an integer >= 1, got {values['min_drifted']!r}.")
        written = values["detectors"]
        return CheckPolicy(**{**values, "detectors": self.detectors(written, f"{where}.detectors"),
                              "detectors_written": written})

    def detectors(self, body: dict[str, Any], where: str) -> dict[str, Any]:
        slots = ("numeric", "categorical", "boolean", "datetime", "overall")
        table = self.fields(body, {**{slot: (str | dict[str, Any], None) for slot in slots},
                                   "columns": (dict[str, str | dict[str, Any]], None)}, where)
        built: dict[str, Any] = {}
        for slot in slots:
            if table[slot] is not None:
                detector = self.detector(table[slot], f"{where}.{slot}")
                kinds = getattr(detector, "kinds", None)
                if detector is not None and slot != "overall" and kinds is not None and slot not in kinds:
                    raise self.error(f"{where}.{slot}", f"the detector cannot test {slot} columns; it tests "
                                                        f"{', '.join(sorted(kinds))} columns.")
                built[slot] = detector
        if table["columns"] is not None:
            built["columns"] = {column: self.detector(value, f"{where}.columns.{column}")
                                for column, value in table["columns"].items()}
        return built

    def detector(self, value: str | dict[str, Any], where: str) -> Any:
        if isinstance(value, str):
            return None if value == OFF else self.plugin("detector", value, {}, where)
        if not isinstance(value.get("detector"), str):
            raise self.error(where, "a detector table needs its name under 'detector', e.g. "
                                    "{ detector = \"psi\", threshold = 0.2 }.")
        options = {k: v for k, v in value.items() if k != "detector"}
        return self.plugin("detector", value["detector"], options, where)

    def incident(self, body: dict[str, Any], where: str) -> IncidentPolicy:
        values = self.fields(body, {"drift": (Level, "warn"), "performance_drop": (Literal["warn", "alert"], "alert"),
                                    "floors": (dict[str, float], {}), "windows": (dict, None),
                                    "estimated": (dict, None)}, where)
        for metric in values["floors"]:
            if metric not in FLOOR_METRICS:
                raise self.error(f"{where}.floors.{metric}", f"no floor for this metric. Metrics with a floor: "
                                                             f"{', '.join(FLOOR_METRICS)}.")
        n, m = 1, 1
        if values["windows"] is not None:
            spot = f"{where}.windows"
            raw = self.fields(values["windows"], {"n": (int, _REQUIRED), "m": (int, _REQUIRED)}, spot)
            n, m = raw["n"], raw["m"]
            if not 1 <= n <= m:
                raise self.error(spot, f"expected 1 <= n <= m, got n = {n}, m = {m}.")
        estimated = None if values["estimated"] is None else self.estimated(values["estimated"], f"{where}.estimated")
        return IncidentPolicy(values["drift"], values["performance_drop"],
                              {k: float(v) for k, v in values["floors"].items()}, n, m, estimated)

    def estimated(self, body: dict[str, Any], where: str) -> EstimatedIncident:
        values = self.fields(body, {"metric": (str, _REQUIRED), "floor": (float, None), "ceiling": (float, None),
                                    "drop": (float, None), "level": (Literal["warn", "alert"], "alert"),
                                    "drift_if_stable": (Level, None)}, where)
        metric = values["metric"]
        if metric not in ESTIMATED_METRICS:
            raise self.error(f"{where}.metric", f"{metric!r} is not estimated. Estimated metrics: "
                                                f"{', '.join(ESTIMATED_METRICS)} (mae and rmse for regressors).")
        higher = ESTIMATED_METRICS[metric]
        wrong, right = ("ceiling", "floor") if higher else ("floor", "ceiling")
        if values[wrong] is not None:
            raise self.error(f"{where}.{wrong}", f"{metric} is {'higher' if higher else 'lower'}-is-better, so it "
                                                 f"takes a {right}, not a {wrong}.", hint=f"Write {right} = ...")
        if values["drop"] is not None and not 0 <= values["drop"] < 1:
            raise self.error(f"{where}.drop", f"expected a relative loss in [0, 1), got {values['drop']!r}.")
        if values[right] is None and values["drop"] is None and values["drift_if_stable"] is None:
            raise self.error(where, f"says nothing to do: set {right}, drop or drift_if_stable.")
        number = {k: None if values[k] is None else float(values[k]) for k in ("floor", "ceiling", "drop")}
        return EstimatedIncident(metric=metric, level=values["level"], drift_if_stable=values["drift_if_stable"],
                                 **number)

    def hook(self, body: dict[str, Any], where: str, kind: type[_Hook] = HookSpec) -> _Hook:  # type: ignore[assignment]
        own: dict[str, tuple[Any, Any]] = {
            "hook": (str, _REQUIRED), "retries": (int, 2),
            "backoff": (str | float, 1.0), "timeout": (str | float, 300.0)}
        if kind is RetrainPolicy:
            own["cooldown"] = (str | float, 0.0)
        else:  # an alert: "alert" fires once per incident, "warn" and "error" once per window
            own["on"] = (list[Literal["warn", "alert", "error"]], ["alert"])
        values = self.fields(body, own, where, rest=True)
        if values["retries"] < 0:
            raise self.error(f"{where}.retries", f"expected an integer >= 0, got {values['retries']}.")
        timeout = self.duration(values["timeout"], f"{where}.timeout")
        if timeout <= 0:
            raise self.error(f"{where}.timeout", "expected a duration > 0.")
        options = {k: v for k, v in body.items() if k not in own}
        try:
            instance = self.plugin("hook", values["hook"], options, where)
        except ConfigError as exc:
            if "unknown option" not in exc.message:
                raise
            raise ConfigError(f"{exc.message} Keys of every hook table: {', '.join(own)}.", hint=exc.hint) from exc
        extra: dict[str, Any] = {key: self.duration(values[key], f"{where}.{key}")
                                 for key in own if key in ("backoff", "cooldown")}
        if "on" in values:
            if not values["on"]:
                raise self.error(f"{where}.on", "expected at least one of warn, alert, error.")
            extra["on"] = tuple(values["on"])
        return kind(hook=values["hook"], options=options, instance=instance,
                    retries=values["retries"], timeout=timeout, **extra)

    def promotion(self, body: dict[str, Any], where: str) -> PromotionPolicy:
        values = self.fields(body, {"reference": (Literal["follow", "keep"], "follow"),
                                    "rules": (list[dict[str, Any]], [])}, where)
        rules = []
        for index, table in enumerate(values["rules"]):
            spot = f"{where}.rules[{index}]"
            name = table.get("rule")
            if not isinstance(name, str):
                raise self.error(spot, f"missing the key 'rule' (the rule's name), e.g. rule = \"beats_champion\". "
                                       f"Installed rules: {', '.join(_registry.available('rule'))}.")
            rules.append(self.plugin("rule", name, {k: v for k, v in table.items() if k != "rule"}, spot))
        return PromotionPolicy(rules=tuple(rules), reference=values["reference"],
                               rules_written=tuple(values["rules"]))


def estimated_status(rule: EstimatedIncident | None, result: CheckResult, level: str,
                     reasons: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """A window's status and reasons after a policy's incident rule on estimated performance.

    ``level`` and ``reasons`` are the window's status from everything else. The estimate stands in
    for labels, so once the window has a realized value of the metric the rule steps aside. A floor
    (ceiling) crossed or a significant drop raises the window to ``rule.level``; while the estimate
    holds, drift counts as ``rule.drift_if_stable`` instead of the policy's ``drift``.
    """
    kept = tuple(reasons)
    if rule is None or level == "error" or any(m.name == rule.metric for m in result.performance):
        return level, kept
    found = next((e for e in result.estimated if e.name == rule.metric), None)
    if found is None:
        if not result.estimated:
            return level, kept  # the version has no estimator: nothing to stand in for labels
        return level, (*kept, f"The policy watches the estimated {rule.metric}, but this model's estimator gives "
                              f"{', '.join(e.name for e in result.estimated)}.")
    higher = ESTIMATED_METRICS[rule.metric]
    shown = (f"estimated {found.name} is {found.value:.4g} [{found.band_low:.4g}, {found.band_high:.4g}] "
             f"({found.method.upper()}, no labels)")
    findings = []
    limit = rule.floor if higher else rule.ceiling
    if limit is not None and (found.value < limit if higher else found.value > limit):
        findings.append(f"The {shown}, {'below' if higher else 'above'} the policy's "
                        f"{'floor' if higher else 'ceiling'} of {limit:g}.")
    if rule.drop is not None and _dropped(found, rule.drop, higher):
        findings.append(f"The {shown}: a significant drop from {found.reference:.4g} at validation, beyond the "
                        f"policy's {rule.drop:.0%}.")
    if findings:
        return _LEVELS[max(_LEVELS.index(level), _LEVELS.index(rule.level))], (*kept, *findings)
    drifted = bool(result.drifted_columns) or any(r.drifted for r in result.overall)
    if rule.drift_if_stable is None or not drifted or result.performance or _dropped(found, 0.0, higher):
        return level, kept
    other = "warn" if (any(q.severity == "warn" for q in result.quality)
                       or any(r.drifted for r in result.prediction_drift)) else "ok"
    drift_level = "ok" if rule.drift_if_stable == "ignore" else rule.drift_if_stable
    return _LEVELS[max(_LEVELS.index(other), _LEVELS.index(drift_level))], (
        *kept, f"The drift leaves the performance estimate stable ({shown}), so it counts as "
               f"{rule.drift_if_stable} (policy: drift_if_stable).")


def _dropped(found: EstimatedPerformance, tolerance: float, higher: bool) -> bool:
    """Whether the estimate is worse than its reference by more than ``tolerance`` (relative) with
    the band excluding the reference."""
    if found.reference is None:
        return False
    if higher:
        return found.band_high < found.reference and found.value < found.reference * (1 - tolerance)
    return found.band_low > found.reference and found.value > found.reference * (1 + tolerance)


def load_policy(path: str | Path, *, check_environment: bool = True) -> Policy:
    """Read and validate a policy file; ConfigError naming the file and field for anything wrong.

    With ``check_environment`` (the default) every hook's ``validate()`` runs too, which checks the
    machine it runs on (programs on the PATH, secrets in the environment).
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"No policy file at {file!r}.", hint="Give the path of a policy TOML file; "
                                                               "see recipes/policies/ for examples.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the policy file {file!r}: {exc}.") from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}.", hint="Fix the syntax at that line and column.") from exc
    return _Reader(file, check_environment).policy(document)
