"""Claims: once-only, atomic across processes, on each backend (sqlite, a PostgreSQL-backed server)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mlflow_ext._claims import CLAIM_PREFIX, claim, claim_name, read_claim

pytestmark = pytest.mark.backends

RACERS = 8


class Racers:
    """A pool of RACERS spawn processes that have imported MLflow once, shared by every race test."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.manager = ctx.Manager()
        self.pool = ctx.Pool(RACERS, initializer=_warm_up)

    def race(self, target: Callable[..., Any], args_per_process: list[tuple[Any, ...]],
             timeout: float = 300) -> list[Any]:
        """Run ``target(barrier, *args)`` once per args tuple, each in its own process, released at once.

        Each task points MLflow where this test does (the ``MLFLOW_*`` settings of its environment:
        the store and, on an auth server, the credentials) and works in this test's folder; a task that raises
        reports the exception's text instead (so the test fails with it).
        """
        assert len(args_per_process) <= RACERS
        barrier = self.manager.Barrier(len(args_per_process))  # type: ignore[attr-defined]
        env = {name: value for name, value in os.environ.items() if name.startswith("MLFLOW_")}
        pending = [self.pool.apply_async(_run, (target, env, os.getcwd(), barrier, args))
                   for args in args_per_process]
        return [task.get(timeout=timeout) for task in pending]

    def close(self) -> None:
        self.pool.terminate()
        self.pool.join()
        self.manager.shutdown()


@pytest.fixture(scope="session")
def racers() -> Iterator[Racers]:
    pool = Racers()
    try:
        yield pool
    finally:
        pool.close()


def _warm_up() -> None:
    import mlflow.tracking  # noqa: F401 - pay the import once per worker, not once per race

    import mlflow_ext.promotion  # noqa: F401


def _run(target: Callable[..., Any], env: dict[str, str], folder: str, barrier: Any, args: tuple[Any, ...]) -> Any:
    for name in [name for name in os.environ if name.startswith("MLFLOW_")]:
        del os.environ[name]
    os.environ.update(env)
    os.chdir(folder)  # MLflow's relative defaults (./mlruns) must land in the test's folder
    try:
        return target(barrier, *args)
    except BaseException as exc:  # noqa: BLE001 - report any failure to the test
        return f"raised {type(exc).__name__}: {exc}"


def _race_for_key(barrier: Any, key: str, owner: str) -> str | None:
    barrier.wait()
    held = claim(key, owner=owner, payload={"who": owner})
    return None if held is None else held.owner


def test_a_key_is_claimed_once_and_the_claim_reads_back(store: str) -> None:
    from mlflow.tracking import MlflowClient

    first = claim("hook:churn:3:retrain", owner="alice", payload={"run": "abc", "why": "drift"})
    second = claim("hook:churn:3:retrain", owner="bob", payload={"run": "def"})

    assert first is not None and first.owner == "alice"
    assert second is None
    held = read_claim("hook:churn:3:retrain")
    assert held is not None
    assert (held.owner, dict(held.payload), held.token) == ("alice", {"run": "abc", "why": "drift"}, first.token)
    assert held.age_seconds() >= 0
    # Hidden from the UI's experiment list, yet still reserved.
    names = [e.name for e in MlflowClient().search_experiments()]
    assert not any(name.startswith(CLAIM_PREFIX) for name in names)
    assert claim("hook:churn:3:retrain", owner="carol") is None


def test_unclaimed_keys_read_as_none_and_keys_do_not_collide(store: str) -> None:
    assert read_claim("nobody took this") is None
    assert claim("a" * 3000 + "/ü", owner="x") is not None  # long keys with any character
    assert claim("b", owner="y") is not None
    assert claim_name("a") != claim_name("b")
    assert claim_name("a").startswith(CLAIM_PREFIX)


def test_one_of_eight_processes_wins_a_race_for_a_key(store: str, racers: Racers,
                                                     request: pytest.FixtureRequest) -> None:
    key = f"race-{os.getpid()}-{request.node.name}"
    owners = [f"p{i}" for i in range(RACERS)]

    outcomes = racers.race(_race_for_key, [(key, owner) for owner in owners])

    winners = [o for o in outcomes if o is not None]
    assert len(winners) == 1, outcomes
    assert all(o is None or o in owners for o in outcomes), outcomes
    held = read_claim(key)
    assert held is not None and held.owner == winners[0]
    assert dict(held.payload) == {"who": winners[0]}
