"""Profile: summaries, sample, JSON round trip, files, merge, and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlflow_ext.errors import ConfigError, DataError, MlflowExtError, ProfileError
from mlflow_ext.profile import SCHEMA_VERSION, Profile


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 3_000
    x = rng.normal(10, 2, size=n)
    x[:30] = np.nan
    return pd.DataFrame({
        "x value": x,
        "ints.ü": rng.integers(0, 5, size=n),
        "city": rng.choice(["paris", "oslo", "rome", "lima"], size=n, p=[0.4, 0.3, 0.2, 0.1]),
        "flag": rng.random(n) < 0.25,
        "when": pd.date_range("2024-01-01", periods=n, freq="h"),
        "empty": np.full(n, np.nan),
    })


def test_numeric_summary_matches_pandas(frame: pd.DataFrame) -> None:
    col = Profile.from_frame(frame).columns["x value"]
    values = frame["x value"].dropna()
    assert (col.kind, col.count, col.nulls) == ("numeric", len(values), 30)
    assert col.min == values.min() and col.max == values.max()
    assert col.mean == pytest.approx(values.mean(), rel=1e-12)
    assert col.std == pytest.approx(values.std(), rel=1e-12)
    assert col.edges == tuple(np.quantile(values, np.linspace(0, 1, 11)))
    # below-range and above-range bins are empty for the data the edges came from; deciles hold a tenth each
    assert col.counts[0] == col.counts[-1] == 0 and sum(col.counts) == len(values)
    assert all(abs(c - len(values) / 10) <= 1 for c in col.counts[1:-1])


def test_categorical_top_k_and_other_bucket(frame: pd.DataFrame) -> None:
    profile = Profile.from_frame(frame, top_k=2)
    city = profile.columns["city"]
    counts = frame["city"].value_counts()
    assert city.values == ("paris", "oslo")
    assert city.counts == (counts["paris"], counts["oslo"])
    assert city.other == counts["rome"] + counts["lima"]
    flag = profile.columns["flag"]
    assert flag.kind == "boolean" and set(flag.values) == {"True", "False"}
    assert profile.columns["when"].kind == "datetime"
    assert profile.columns["when"].min == "2024-01-01T00:00:00"
    assert profile.columns["ints.ü"].kind == "numeric"


def test_all_null_column_is_recorded_without_statistics(frame: pd.DataFrame) -> None:
    col = Profile.from_frame(frame).columns["empty"]
    assert (col.count, col.nulls, col.mean, col.edges) == (0, len(frame), None, ())


def test_sample_is_bounded_uniform_rows_of_the_data(frame: pd.DataFrame) -> None:
    profile = Profile.from_frame(frame, sample_size=500, seed=3)
    assert profile.sample is not None and len(profile.sample) == 500
    assert profile.sample["when"].isin(frame["when"]).all()  # real rows, unique timestamps
    assert profile.sample["when"].is_unique
    again = Profile.from_frame(frame, sample_size=500, seed=3)
    assert again.sample is not None and again.sample.equals(profile.sample)
    # uniform: the sample's mean is within a few standard errors of the data's
    se = frame["x value"].std() / math.sqrt(500)
    assert abs(profile.sample["x value"].mean() - frame["x value"].mean()) < 4 * se
    assert len(Profile.from_frame(frame.head(10)).sample) == 10  # type: ignore[arg-type]


def test_json_round_trip_is_identical(frame: pd.DataFrame) -> None:
    profile = Profile.from_frame(frame)
    text = profile.to_json()
    assert json.loads(text)["schema_version"] == SCHEMA_VERSION
    back = Profile.from_json(text)
    assert back == profile
    assert back.to_json() == text


def test_save_and_load_directory_and_json_path(frame: pd.DataFrame, tmp_path) -> None:
    profile = Profile.from_frame(frame, sample_size=100)
    written = profile.save(tmp_path / "prof")
    assert sorted(p.name for p in (tmp_path / "prof").iterdir()) == ["profile.json", "reference.parquet"]
    for path in (tmp_path / "prof", written):
        loaded = Profile.load(path)
        assert loaded == profile
        assert loaded.sample is not None and loaded.sample.equals(profile.sample)
    other = profile.save(tmp_path / "other" / "mine.json")
    assert (tmp_path / "other" / "mine.parquet").is_file()
    assert Profile.load(other) == profile


@pytest.mark.parametrize("name", [
    "schema_version", "columns", "__index_level_0__", "format", "sample_file", "a b", "a.b", "ünï ☃", "",
])
def test_any_column_name_survives_files(name: str, tmp_path) -> None:
    df = pd.DataFrame({name: [1.0, 2.0, 3.0], "other": ["other", "__other__", "x"]})
    profile = Profile.from_frame(df, top_k=1)
    loaded = Profile.load(profile.save(tmp_path))
    assert list(loaded.columns) == [name, "other"]
    assert loaded == profile and loaded.sample is not None and loaded.sample.equals(df)


finite = st.floats(-1e6, 1e6, allow_nan=False)


@st.composite
def two_frames(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame]:
    def one() -> pd.DataFrame:
        n = draw(st.integers(1, 40))
        return pd.DataFrame({
            "x": draw(st.lists(st.one_of(finite, st.just(float("nan"))), min_size=n, max_size=n)),
            "c": draw(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=n, max_size=n)),
            "b": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        })
    return one(), one()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(two_frames())
def test_merge_equals_profile_of_concatenation(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    a_df, b_df = frames
    a = Profile.from_frame(a_df, top_k=5, sample_size=20)
    bins = a.edges or 10
    b = Profile.from_frame(b_df, top_k=5, sample_size=20, bins=bins)
    merged = a.merge(b)
    whole = Profile.from_frame(pd.concat([a_df, b_df], ignore_index=True), top_k=5, sample_size=20, bins=bins)
    assert merged.n_rows == whole.n_rows
    for name, expected in whole.columns.items():
        got = merged.columns[name]
        assert (got.count, got.nulls, got.min, got.max, got.edges, got.counts, got.values, got.other) == (
            expected.count, expected.nulls, expected.min, expected.max, expected.edges, expected.counts,
            expected.values, expected.other)
        for stat in ("mean", "std"):
            e, g = getattr(expected, stat), getattr(got, stat)
            assert (e is None) == (g is None) or (stat == "std" and {e, g} <= {None, 0.0})
            if e is not None and g is not None:
                assert g == pytest.approx(e, rel=1e-9, abs=1e-6)
    assert merged.sample is not None and len(merged.sample) == min(20, whole.n_rows)


def test_merge_refuses_different_edges_and_columns(frame: pd.DataFrame) -> None:
    a = Profile.from_frame(frame.head(1000))
    b = Profile.from_frame(frame.tail(1000))
    with pytest.raises(ProfileError, match="'x value': the profiles have different bin edges"):
        a.merge(b)
    with pytest.raises(ProfileError, match="different columns"):
        a.merge(Profile.from_frame(frame[["city"]]))


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(("df", "error", "match"), [
    (pd.DataFrame({"x": []}), DataError, "no rows"),
    (pd.DataFrame(index=range(3)), DataError, "no columns"),
    (pd.DataFrame({"x": [1.0, np.inf]}), DataError, "'x' has 1 infinite value"),
    (pd.DataFrame({"z": [1 + 2j]}), DataError, "'z' has an unsupported type: complex128"),
    (pd.DataFrame({"d": pd.to_timedelta([1, 2], unit="s")}), DataError, "'d' has an unsupported type"),
    (pd.DataFrame({"l": [[1], [2]]}), DataError, "'l' holds values that cannot be counted"),
    (pd.DataFrame({0: [1.0]}), DataError, "column names that are not strings"),
    (pd.DataFrame([[1, 2]], columns=["a", "a"]), DataError, "duplicate column names: \\['a'\\]"),
    ([1, 2, 3], DataError, "must be a pandas DataFrame, got list"),
])
def test_profile_bad_frames(df: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Profile.from_frame(df)  # type: ignore[arg-type]


@pytest.mark.parametrize(("options", "match"), [
    ({"sample_size": 0}, "sample_size must be an integer >= 1, got 0"),
    ({"top_k": "5"}, "top_k must be an integer >= 1"),
    ({"bins": {"nope": [0, 1]}}, "bins names columns that are not in the data: \\['nope'\\]"),
    ({"bins": {"x": [2, 1]}}, "bins\\['x'\\]: edges must be a non-empty, non-decreasing"),
    ({"bins": {"c": [0, 1]}}, "edges apply to numeric columns; 'c' is categorical"),
])
def test_profile_bad_options(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Profile.from_frame(pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]}), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda d: {**d, "schema_version": SCHEMA_VERSION + 1}, "(?s)newer mlflow-ext .*Upgrade mlflow-ext"),
    (lambda d: {k: v for k, v in d.items() if k != "n_rows"}, "n_rows: missing"),
    (lambda d: {**d, "columns": [{**d["columns"][0], "count": "many"}]}, "columns\\[0\\].count: expected int"),
    (lambda d: {**d, "columns": [{**d["columns"][0], "kind": "text"}]}, "columns\\[0\\].kind: expected one of"),
    (lambda d: {**d, "columns": [{**d["columns"][0], "counts": [1]}]}, "one more count than edges"),
    (lambda d: {**d, "format": "something"}, "not an mlflow-ext profile"),
    (lambda d: [d], "not an mlflow-ext profile"),
])
def test_corrupt_or_future_profile_json(mutate, match: str) -> None:
    document = Profile.from_frame(pd.DataFrame({"x": [1.0, 2.0, 3.0]})).to_dict()
    with pytest.raises(ProfileError, match=match):
        Profile.from_json(json.dumps(mutate(document)))


def test_corrupt_profile_files(tmp_path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ProfileError, match="broken.json: not valid JSON"):
        Profile.load(tmp_path / "broken.json")
    with pytest.raises(ProfileError, match="Cannot read the profile"):
        Profile.load(tmp_path / "nowhere")
    saved = Profile.from_frame(pd.DataFrame({"x": [1.0, 2.0]})).save(tmp_path / "p")
    (tmp_path / "p" / "reference.parquet").write_bytes(b"garbage")
    with pytest.raises(ProfileError, match="Cannot read the reference sample"):
        Profile.load(saved)


def test_from_file_reads_csv_and_parquet_and_refuses_the_rest(tmp_path) -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.parquet")
    assert Profile.from_file(tmp_path / "d.csv") == Profile.from_file(tmp_path / "d.parquet")
    (tmp_path / "d.png").write_bytes(b"\x89PNG")
    with pytest.raises(DataError, match="is not a tabular file: suffix '.png'"):
        Profile.from_file(tmp_path / "d.png")
    (tmp_path / "bad.parquet").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="Cannot read .*bad.parquet' as Parquet"):
        Profile.from_file(tmp_path / "bad.parquet")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv' as CSV"):
        Profile.from_file(tmp_path / "empty.csv")


cell = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6), st.booleans(),
    st.text(max_size=3), st.none(),
)


@st.composite
def wild_frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 12))
    names = draw(st.lists(st.text(max_size=4), max_size=4, unique=True))
    columns = {}
    for name in names:
        kind = draw(st.sampled_from(["float", "int", "bool", "str", "mixed", "datetime"]))
        if kind == "float":
            values = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n))
        elif kind == "int":
            values = draw(st.lists(st.integers(-10**9, 10**9), min_size=n, max_size=n))
        elif kind == "bool":
            values = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        elif kind == "str":
            values = draw(st.lists(st.one_of(st.text(max_size=3), st.none()), min_size=n, max_size=n))
        elif kind == "datetime":
            values = list(pd.date_range("2020-01-01", periods=n, freq="D"))
        else:
            values = draw(st.lists(cell, min_size=n, max_size=n))
        columns[name] = pd.Series(values, dtype=object if kind == "mixed" else None)
    return pd.DataFrame(columns, index=range(n))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wild_frames())
def test_generated_frames_give_a_profile_or_a_clear_error(df: pd.DataFrame) -> None:
    try:
        profile = Profile.from_frame(df)
    except MlflowExtError:
        return
    assert Profile.from_json(profile.to_json()) == profile
