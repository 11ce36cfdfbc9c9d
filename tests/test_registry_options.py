"""Option values are checked against the plugin's __init__ annotations before it is created."""

from __future__ import annotations

from typing import Literal

import pytest

from mlflow_ext import ConfigError, _registry
from mlflow_ext.builtin.rules import BeatsChampion


class Options:
    """Every annotation kind a TOML option can meet."""

    def __init__(self, *, ratio: float = 0.5, count: int = 1, flag: bool = False, label: str = "x",
                 mode: Literal["fast", "exact"] = "fast", names: list[str] | None = None,
                 table: dict[str, float] | None = None, limit: float | None = None) -> None:
        self.ratio, self.count, self.flag, self.label = ratio, count, flag, label
        self.mode, self.names, self.table, self.limit = mode, names, table, limit


@pytest.fixture
def options_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    # Registered under the rule kind only to reach create(); the protocol check needs `evaluate`.
    monkeypatch.setattr(Options, "evaluate", lambda self, context: None, raising=False)
    monkeypatch.setitem(_registry._loaded, ("rule", "options"), Options)


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("ratio", "high", "expected a number, got 'high'"),
    ("ratio", True, "expected a number, got True"),
    ("count", 1.5, "expected an integer, got 1.5"),
    ("count", False, "expected an integer, got False"),
    ("flag", 1, "expected true or false, got 1"),
    ("label", 3, "expected a string, got 3"),
    ("mode", "quick", "expected one of 'fast', 'exact', got 'quick'"),
    ("names", "a", "expected a list of strings, got 'a'"),
    ("names", ["a", 2], r"expected a list of strings, got \['a', 2\]"),
    ("table", {"a": "b"}, "expected a table of numbers, got"),
    ("limit", "none", "expected a number, got 'none'"),
])
def test_a_mistyped_option_names_the_file_field_and_what_is_valid(options_plugin: None, key: str, value: object,
                                                                  expected: str) -> None:
    where = "policy.toml: models.churn.promotion.rules[1]"
    with pytest.raises(ConfigError, match=rf"^policy.toml: models.churn.promotion.rules\[1\].{key}: {expected}"):
        _registry.create("rule", "options", {key: value}, where=where)


def test_well_typed_options_are_accepted_and_int_counts_as_float(options_plugin: None) -> None:
    made = _registry.create("rule", "options", {"ratio": 1, "count": 2, "flag": True, "mode": "exact",
                                                "names": ["a"], "table": {"a": 1}, "limit": None})
    assert (made.ratio, made.count, made.flag, made.mode, made.names, made.table, made.limit) == \
        (1, 2, True, "exact", ["a"], {"a": 1}, None)


def test_an_unknown_metric_of_a_builtin_rule_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"p.toml: r\[0\].metric: expected one of 'accuracy', 'precision'.*'r2', "
                                          r"got 'acc'"):
        _registry.create("rule", "beats_champion", {"metric": "acc"}, where="p.toml: r[0]")
    made = _registry.create("rule", "beats_champion", {"metric": "roc_auc", "min_delta": 0})
    assert isinstance(made, BeatsChampion) and made.metric == "roc_auc"


def test_detector_options_are_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"^x.toml: d.threshold: expected a number, got '0.1'"):
        _registry.create("detector", "ks", {"threshold": "0.1"}, where="x.toml: d")
