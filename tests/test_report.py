"""The HTML report: self-contained, says the verdict and why, real plots, proportional to what it shows."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from mlflow_ext.checks import PerformanceMetric, check, with_model_findings
from mlflow_ext.model_check import check_model
from mlflow_ext.profile import Profile
from mlflow_ext.report import render_report
from tests.model_fixtures import ID, make_batch

pytest_plugins = ["tests.model_fixtures"]

PNG = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Collects every tag, the URL-bearing attributes and the visible text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in {"src", "href", "action", "srcset", "poster", "data"}:
                self.urls.append(value or "")
                if tag == "img":
                    self.images.append(value or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


@pytest.fixture(scope="module")
def wide() -> tuple[Profile, pd.DataFrame]:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({f"x{i}": rng.normal(0, 1, 1500) for i in range(10)})
    ref["<b>city</b>"] = rng.choice(["a", "b", "c"], 1500)
    cur = pd.DataFrame({f"x{i}": rng.normal(0.2 * (i + 1), 1, 1500) for i in range(10)})
    cur["<b>city</b>"] = rng.choice(["a", "b", "c"], 1500, p=[0.1, 0.1, 0.8])
    return Profile.from_frame(ref, sample_size=1500), cur


def test_report_is_self_contained_and_says_the_verdict_and_why(wide: tuple[Profile, pd.DataFrame]) -> None:
    profile, current = wide
    result = check(profile, current)
    report = render_report(result, title="demo", reference=profile, current=current)
    page = _parse(report.html)
    assert result.status == "alert"
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert page.urls and all(url.startswith("data:image/png;base64,") for url in page.urls)
    assert "http" not in report.html and "url(" not in report.html
    text = " ".join(page.text)
    assert "ALERT" in text and result.reasons[0] in text
    assert "<b>city</b>" in text and "<b>city</b>" not in report.html  # escaped, shown as text


def test_drift_table_lists_columns_most_drifted_first(wide: tuple[Profile, pd.DataFrame]) -> None:
    profile, current = wide
    result = check(profile, current)
    html = render_report(result, title="demo").html
    section = html[html.index("Columns by drift"):]
    order = [name for name in (r.column for r in result.drift)]
    positions = {name: section.index(f"<td>{name}</td>") for name in order if not name.startswith("<")}
    assert positions["x9"] < positions["x5"] < positions["x0"]  # effect grows with i; x0 may not drift


def test_plots_are_real_pngs_capped_and_embedded(wide: tuple[Profile, pd.DataFrame]) -> None:
    profile, current = wide
    result = with_model_findings(check(profile, current), performance=(
        PerformanceMetric("accuracy", 0.71, 0.86, 0.68, 0.74, 1e-6, degraded=True),))
    report = render_report(result, title="demo", reference=profile, current=current, max_plots=3)
    drift_plots = sorted(name for name in report.plots if name.startswith("drift_"))
    assert len(result.drifted_columns) > 3 and drift_plots == ["drift_1.png", "drift_2.png", "drift_3.png"]
    assert "performance.png" in report.plots
    images = _parse(report.html).images
    assert len(images) == len(report.plots)
    for png in report.plots.values():
        assert png.startswith(PNG) and len(png) > 5000  # a drawn plot, not an empty canvas
        assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in images
    assert "0.71" in report.html and "[0.68, 0.74]" in report.html


def test_clean_batch_report_has_no_drift_plots_and_says_ok(wide: tuple[Profile, pd.DataFrame]) -> None:
    profile, _ = wide
    sample = profile.sample
    assert sample is not None
    result = check(profile, sample)
    report = render_report(result, title="demo", reference=profile, current=sample)
    assert result.status == "ok" and not report.plots
    assert 'id="verdict">OK<' in report.html and "No data-quality finding." in report.html


def test_recorded_report_shows_the_trend_of_the_models_checks(model_store: str, tmp_path: Path) -> None:
    for seed, shift in ((31, 0.0), (32, 1.0)):
        outcome = check_model("churn", make_batch(400, seed=seed, shift=shift), id_column=ID)
    assert outcome.run_id is not None
    local = Path(mlflow.artifacts.download_artifacts(run_id=outcome.run_id, dst_path=str(tmp_path)))
    html = (local / "report.html").read_text(encoding="utf-8")
    trend = html[html.index("Recent checks of this model"):]
    assert trend.count("<tr>") == 3  # header + two checks, newest first
    assert trend.index("<td>1</td>") < trend.index("<td>0</td>")
    pngs = sorted(p.name for p in (local / "plots").iterdir())
    assert "trend.png" in pngs and "performance.png" in pngs and any(p.startswith("drift_") for p in pngs)
    assert all((local / "plots" / p).read_bytes().startswith(PNG) for p in pngs)
