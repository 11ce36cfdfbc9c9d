"""Policy files: every recipe loads; every mistake fails at load time naming the file and the field."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlflow_ext import ConfigError, Policy, load_policy
from mlflow_ext.builtin.rules import (
    Approval,
    BeatsChampion,
    MaxLatency,
    MetricThreshold,
    NoDriftAlert,
    NoRegression,
    SchemaCompatible,
)
from mlflow_ext.cli import app
from mlflow_ext.policy import RetrainPolicy, parse_duration

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "policies"


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Write policy.toml in the working folder and return its name as a user would type it."""
    monkeypatch.chdir(tmp_path)

    def _write(text: str, name: str = "policy.toml") -> str:
        Path(name).write_text(text, encoding="utf-8")
        return name

    return _write


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.toml")), ids=lambda p: p.name)
def test_every_recipe_loads(recipe: Path) -> None:
    policy = load_policy(recipe, check_environment=False)
    assert isinstance(policy, Policy) and policy.models


def test_there_are_recipes_for_each_use() -> None:
    names = {p.name for p in RECIPES.glob("*.toml")}
    assert {"promote-if-better.toml", "strict-gate.toml", "alert-only.toml", "full.toml"} <= names


def test_full_recipe_uses_every_section_and_loads_into_objects() -> None:
    churn = load_policy(RECIPES / "full.toml", check_environment=False).for_model("churn")
    assert [type(rule) for rule in churn.rules] == [BeatsChampion, NoRegression, MetricThreshold, SchemaCompatible,
                                                    MaxLatency, NoDriftAlert, Approval]
    assert churn.rules[0].min_delta == 0.01 and churn.rules[1].metrics == ["f1", "log_loss"]
    assert churn.id_column == "customer_id" and churn.follow_reference
    assert churn.check.correction == "holm" and churn.check.min_drifted == 4
    assert set(churn.check.detectors) == {"numeric", "categorical", "boolean", "datetime", "columns"}
    assert churn.check.detectors["datetime"] is None and churn.check.detectors["columns"]["customer_id"] is None
    assert churn.incident.floors == {"accuracy": 0.8, "roc_auc": 0.75}
    assert (churn.incident.n, churn.incident.m) == (2, 3)
    assert [(a.hook, a.retries, a.backoff, a.timeout) for a in churn.alerts] == [
        ("webhook", 3, 2.0, 30.0), ("log", 2, 1.0, 300.0)]
    assert churn.alerts[0].options["secret_env"] == "CHURN_WEBHOOK_SECRET"
    assert isinstance(churn.retrain, RetrainPolicy)
    assert (churn.retrain.hook, churn.retrain.cooldown, churn.retrain.timeout) == ("command", 6 * 3600.0, 7200.0)
    fraud = load_policy(RECIPES / "full.toml", check_environment=False).for_model("fraud")
    assert fraud.rules == () and fraud.retrain is None and fraud.alias == "champion"


def test_check_options_are_what_check_model_takes() -> None:
    from mlflow_ext.model_check import check_model

    options = load_policy(RECIPES / "full.toml", check_environment=False).for_model("churn").check_options
    accepted = inspect.signature(check_model).parameters
    assert set(options) <= set(accepted)
    assert options["alpha"] == 0.05 and options["tolerance"] == 0.02


def test_the_monitor_reads_the_loaded_policy() -> None:
    from mlflow_ext.monitor import LoopSettings

    settings = LoopSettings.from_policy(load_policy(RECIPES / "full.toml", check_environment=False), "churn")
    assert settings.cooldown == 6 * 3600.0 and settings.floors == {"accuracy": 0.8, "roc_auc": 0.75}
    assert (settings.incident_n, settings.incident_m) == (2, 3) and settings.id_column == "customer_id"
    assert [a.name for a in settings.alerts] == ["webhook", "log"] and settings.retrain is not None
    assert settings.retrain.name == "command" and settings.check["drift_share"] == 0.3


HEAD = 'version = 1\n[models.churn]\n'


@pytest.mark.parametrize(("text", "message"), [
    ("version = 1\n[models.churn\n", r"^policy.toml: not valid TOML: .*\(at line 2, column \d+\)"),
    ("version = 1\n[modles.churn]\n", r"^policy.toml: \(top level\).modles: unknown key. Valid keys: version, models"),
    ("version = 2\n[models.churn]\n", r"^policy.toml: version: this mlflow-ext reads policy version 1, got 2"),
    ("version = 1\n", r"^policy.toml: \(top level\): missing the key 'models'"),
    (HEAD + 'aliass = "x"\n', r"^policy.toml: models.churn.aliass: unknown key. Valid keys: alias, id_column"),
    (HEAD + '[models.churn.check]\nalpha = 1.5\n', r"^policy.toml: models.churn.check.alpha: expected a number in "
                                                     r"\(0, 1\), got 1.5"),
    (HEAD + '[models.churn.check]\ncorrection = "fdr"\n',
     r"^policy.toml: models.churn.check.correction: expected one of 'holm', 'bonferroni', 'bh', 'none', got 'fdr'"),
    (HEAD + '[models.churn.check.detectors]\nnumeric = "pis"\n',
     r"^policy.toml: models.churn.check.detectors.numeric: No detector named 'pis'. Installed: .*ks"),
    (HEAD + '[models.churn.check.detectors]\nnumeric = "chi2"\n',
     r"^policy.toml: models.churn.check.detectors.numeric: the detector cannot test numeric columns"),
    (HEAD + '[models.churn.check.detectors]\nnumeric = { detector = "psi", threshold = "big" }\n',
     r"^policy.toml: models.churn.check.detectors.numeric.threshold: expected a number, got 'big'"),
    (HEAD + '[models.churn.check.detectors]\nnumeric = { threshold = 0.2 }\n',
     r"^policy.toml: models.churn.check.detectors.numeric: a detector table needs its name under 'detector'"),
    (HEAD + '[models.churn.incident]\ndrift = "page"\n',
     r"^policy.toml: models.churn.incident.drift: expected one of 'ignore', 'warn', 'alert', got 'page'"),
    (HEAD + '[models.churn.incident]\nwindows = { n = 4, m = 3 }\n',
     r"^policy.toml: models.churn.incident.windows: expected 1 <= n <= m, got n = 4, m = 3"),
    (HEAD + '[models.churn.incident]\nfloors = { rmse = 3.0 }\n',
     r"^policy.toml: models.churn.incident.floors.rmse: no floor for this metric. Metrics with a floor: accuracy"),
    (HEAD + '[models.churn.retrain]\nhook = "log"\ncooldown = "6 hours"\n',
     r"^policy.toml: models.churn.retrain.cooldown: expected a duration such as '45s', '30m', '6h' or '1d', "
     r"got '6 hours'"),
    (HEAD + '[models.churn.retrain]\ncooldown = "6h"\n', r"^policy.toml: models.churn.retrain: missing the key 'hook'"),
    (HEAD + '[[models.churn.alerts]]\nhook = "pager"\n',
     r"^policy.toml: models.churn.alerts\[0\]: No hook named 'pager'. Installed: command"),
    (HEAD + '[[models.churn.alerts]]\nhook = "log"\nlevle = "INFO"\n',
     r"^policy.toml: models.churn.alerts\[0\]: unknown option 'levle' for hook 'log'. Valid options: level, logger. "
     r"Keys of every hook table: hook, retries, backoff, timeout"),
    (HEAD + '[[models.churn.alerts]]\nhook = "log"\nlevel = "LOUD"\n',
     r"^policy.toml: models.churn.alerts\[0\]: log hook: level 'LOUD' is not one of DEBUG"),
    (HEAD + '[[models.churn.alerts]]\nhook = "log"\nretries = "3"\n',
     r"^policy.toml: models.churn.alerts\[0\].retries: expected an integer, got '3'"),
    (HEAD + '[models.churn.promotion]\nreference = "move"\n',
     r"^policy.toml: models.churn.promotion.reference: expected one of 'follow', 'keep', got 'move'"),
    (HEAD + '[[models.churn.promotion.rules]]\nrule = "beats_champion"\nmin_delta = "high"\n',
     r"^policy.toml: models.churn.promotion.rules\[0\].min_delta: expected a number, got 'high'"),
    (HEAD + '[[models.churn.promotion.rules]]\nrule = "approval"\nby = "dana"\n[[models.churn.promotion.rules]]\n'
            'rule = "metric_threshold"\nmin = 0.8\n',
     r"^policy.toml: models.churn.promotion.rules\[1\]: rule 'metric_threshold' needs the option 'metric'"),
    (HEAD + '[[models.churn.promotion.rules]]\nrule = "beats_champion"\nmetric = "acc"\n',
     r"^policy.toml: models.churn.promotion.rules\[0\].metric: expected one of 'accuracy', .*got 'acc'"),
    (HEAD + '[[models.churn.promotion.rules]]\nrule = "beats_champ"\n',
     r"^policy.toml: models.churn.promotion.rules\[0\]: No rule named 'beats_champ'. Installed: .*beats_champion"),
    (HEAD + '[[models.churn.promotion.rules]]\nmetric = "accuracy"\n',
     r"^policy.toml: models.churn.promotion.rules\[0\]: missing the key 'rule'.*Installed rules: approval"),
    (HEAD + '[[models.churn.promotion.rules]]\nrule = "metric_threshold"\nmetric = "accuracy"\n',
     r"^policy.toml: models.churn.promotion.rules\[0\]: metric_threshold on 'accuracy' needs min, max or both"),
    (HEAD + '[[models.churn.promotion.rules]]\nrule = "beats_champion"\nalpha = 5\n',
     r"^policy.toml: models.churn.promotion.rules\[0\]: alpha: expected a number between 0 and 1"),
    (HEAD + '[[models.churn.promotion.rules]]\nrule = "no_regression"\nmetrics = []\n',
     r"^policy.toml: models.churn.promotion.rules\[0\]: no_regression needs at least one metric"),
])
def test_mistakes_fail_at_load_with_file_and_field(write, text: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message):
        load_policy(write(text))


def test_for_model_names_the_models_the_file_has(write) -> None:  # type: ignore[no-untyped-def]
    policy = load_policy(write('version = 1\n[models.churn]\n[models.fraud]\n'))
    expected = r"policy.toml has no policy for the model 'spam'. Models in it: churn, fraud"
    with pytest.raises(ConfigError, match=expected):
        policy.for_model("spam")


def test_a_missing_file_is_a_config_error(write) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="No policy file at 'nope.toml'"):
        load_policy("nope.toml")


def test_hook_environment_is_checked_unless_skipped(write, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    name = write(HEAD + '[[models.churn.alerts]]\nhook = "webhook"\nurl = "https://hooks.example.com/x"\n'
                        'secret_env = "POLICY_TEST_SECRET"\n')
    monkeypatch.delenv("POLICY_TEST_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"^policy.toml: models.churn.alerts\[0\]: webhook hook: the environment "
                                          r"variable 'POLICY_TEST_SECRET' \(secret_env\) is not set"):
        load_policy(name)
    assert load_policy(name, check_environment=False).for_model("churn").alerts[0].hook == "webhook"
    monkeypatch.setenv("POLICY_TEST_SECRET", "s3cret")
    assert load_policy(name).for_model("churn").alerts[0].options["url"] == "https://hooks.example.com/x"


@pytest.mark.parametrize(("text", "seconds"), [("45s", 45), ("30m", 1800), ("6h", 21600), ("1d", 86400),
                                               ("1h30m", 5400), (" 1.5h ", 5400)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["6", "6 hours", "h", "", "-5s", "5x"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigError, match="expected a duration such as"):
        parse_duration(text)


def test_cli_policy_check_valid_and_invalid(write) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    good = runner.invoke(app, ["policy", "check", str(RECIPES / "promote-if-better.toml")])
    assert good.exit_code == 0 and "is valid" in good.stdout and "beats_champion" in good.stdout
    document = json.loads(runner.invoke(app, ["policy", "check", str(RECIPES / "full.toml"), "--json",
                                              "--skip-environment"]).stdout)
    assert document["valid"] and document["models"]["churn"]["retrain"]["cooldown"] == 21600.0
    # option values of hooks are not printed: a webhook URL may carry a token
    assert "hooks.example.com" not in json.dumps(document)
    bad = write(HEAD + '[[models.churn.promotion.rules]]\nrule = "beats_champion"\nmin_delta = "high"\n')
    failed = runner.invoke(app, ["policy", "check", bad])
    assert failed.exit_code == 1 and "min_delta: expected a number, got 'high'" in failed.stderr
    failed_json = runner.invoke(app, ["policy", "check", bad, "--json"])
    assert failed_json.exit_code == 1
    assert json.loads(failed_json.stdout)["valid"] is False


ALERT_ON_BODY = """
version = 1
[models.churn]
[[models.churn.alerts]]
hook = "log"
{on}
"""

def test_alert_on_statuses(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(ALERT_ON_BODY.format(on='on = ["warn", "alert"]'))
    assert load_policy(path).for_model("churn").alerts[0].on == ("warn", "alert")
    path.write_text(ALERT_ON_BODY.format(on=""))
    assert load_policy(path).for_model("churn").alerts[0].on == ("alert",)
    path.write_text(ALERT_ON_BODY.format(on='on = ["sometimes"]'))
    with pytest.raises(ConfigError, match=r"p.toml: models.churn.alerts\[0\].on"):
        load_policy(path)
