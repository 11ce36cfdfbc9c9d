"""Compare-and-set for aliases: racing promotions, a mover killed mid-move, a mover too slow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import pytest

from mlflow_ext._claims import read_claim
from mlflow_ext.promotion import history, promote
from tests import test_claims
from tests.conftest import also_behind_basic_auth
from tests.test_claims import RACERS, Racers
from tests.test_promotion import alias_of, decision_runs, register

pytestmark = pytest.mark.backends

racers = test_claims.racers  # the session's pool of spawn processes, shared with the claim races


@dataclass(frozen=True)
class Rendezvous:
    """A passing rule that waits for every racer, so all of them evaluate against the same champion."""

    barrier: Any
    name: str = "rendezvous"

    def evaluate(self, context: Any) -> Any:
        from mlflow_ext.rules import RuleResult

        self.barrier.wait()
        return RuleResult(rule=self.name, passed=True, observed=1.0, bound=1.0, message="All racers are here.")


def _promote_in_race(barrier: Any, model: str, version: str) -> tuple[str, str, str | None]:
    os.environ["MLFLOW_EXT_USER"] = f"racer-{version}"
    decision = promote(model, version, policy=[Rendezvous(barrier)], reason=f"race {version}")
    return decision.outcome, decision.message, decision.run_id


@also_behind_basic_auth
def test_eight_racing_promotions_from_one_champion_make_exactly_one_winner(
        store: str, racers: Racers) -> None:
    model = "race"
    versions = register(model, RACERS + 1)
    promote(model, versions[0], reason="launch")
    candidates = versions[1:]

    outcomes = racers.race(_promote_in_race, [(model, v) for v in candidates])

    assert all(isinstance(o, tuple) for o in outcomes), outcomes
    promoted = [v for v, o in zip(candidates, outcomes, strict=True) if o[0] == "promoted"]
    refused = [o for o in outcomes if o[0] == "refused"]
    assert len(promoted) == 1 and len(refused) == RACERS - 1, outcomes
    winner = promoted[0]
    for _, message, _ in refused:
        assert f"champion moved from version 1 to version {winner} by racer-{winner}" in message
        assert "while the rules were evaluated against version 1" in message
    assert alias_of("champion", model) == winner and alias_of("previous-champion", model) == "1"
    runs = decision_runs(model)
    assert len(runs) == RACERS + 1  # the launch and one per racer: none lost, none duplicated
    assert sorted(r.info.run_id for r in runs[1:]) == sorted(o[2] for o in outcomes)  # type: ignore[type-var]
    assert sorted(r.data.tags["mlflow_ext.candidate"] for r in runs[1:]) == sorted(candidates)
    assert [(e.version, e.recorded) for e in history(model)] == [("1", True), (winner, True)]


def _promote_script(model: str, version: str) -> list[str]:
    code = ("import sys; from mlflow_ext.promotion import promote; "
            f"d = promote({model!r}, {version!r}, reason='slow'); print(d.outcome, d.message)")
    return [sys.executable, "-c", code]


def test_a_mover_killed_after_its_claim_blocks_nobody_once_its_lease_is_over(
        store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = register("crash", 3)
    promote("crash", versions[0])
    env = {**os.environ, "MLFLOW_EXT_TEST_PAUSE_AFTER_CLAIM": "600"}
    mover = subprocess.Popen(_promote_script("crash", "2"), env=env, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while read_claim("alias:crash:champion:2") is None:
            assert mover.poll() is None, mover.communicate()
            assert time.monotonic() < deadline, "the mover never claimed"
            time.sleep(0.2)
    finally:
        os.killpg(mover.pid, signal.SIGKILL)
        mover.wait()
    assert alias_of("champion", "crash") == "1"

    monkeypatch.setenv("MLFLOW_EXT_PROMOTION_LEASE", "1")
    decision = promote("crash", versions[2])

    assert decision.promoted and decision.champion_before == "1"
    assert decision.generation == 3  # generation 2 was closed as abandoned
    assert alias_of("champion", "crash") == "3" and alias_of("previous-champion", "crash") == "1"
    assert [e.version for e in history("crash")] == ["1", "3"]


def test_a_mover_slower_than_half_its_lease_gives_up_without_writing(store: str) -> None:
    versions = register("slow", 2)
    promote("slow", versions[0])
    env = {**os.environ, "MLFLOW_EXT_TEST_PAUSE_AFTER_CLAIM": "2", "MLFLOW_EXT_PROMOTION_LEASE": "2"}

    done = subprocess.run(_promote_script("slow", "2"), env=env, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("refused Refused: the move took longer than half the lease")
    assert alias_of("champion", "slow") == "1"
    assert [r.data.tags["mlflow_ext.outcome"] for r in decision_runs("slow")] == ["promoted", "refused"]
    # The slow mover closed its generation, so the next promotion need not wait out a lease.
    again = promote("slow", versions[1])
    assert again.promoted and again.generation == 3


def test_moves_that_finished_behind_a_stale_generation_tag_are_followed_without_waiting(
        store: str) -> None:
    from mlflow.tracking import MlflowClient

    versions = register("stale", 4)
    for version in versions[:3]:
        promote("stale", version)
    tag = "mlflow_ext.alias.champion.generation"
    assert MlflowClient().get_registered_model("stale").tags[tag] == "3"
    # What a reader sees when two moves finish between its reads, or when the slow first mover
    # stores its generation last: the tag says 1 while generations 2 and 3 are done.
    MlflowClient().set_registered_model_tag("stale", tag, "1")
    # With an hour's lease, waiting for generation 2 (done, but no longer the alias) would hang.
    env = {**os.environ, "MLFLOW_EXT_PROMOTION_LEASE": "3600"}

    done = subprocess.run(_promote_script("stale", versions[3]), env=env, capture_output=True, text=True,
                          timeout=120)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "promoted Promoted version 4 as 'champion' (was version 3)."
    assert MlflowClient().get_registered_model("stale").tags[tag] == "4"
    assert [(e.version, e.recorded) for e in history("stale")] == [(v, True) for v in versions]
    assert [int(r.data.tags["mlflow_ext.generation"]) for r in decision_runs("stale")] == [1, 2, 3, 4]
