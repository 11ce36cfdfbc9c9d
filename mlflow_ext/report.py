"""The check report: one self-contained HTML file (inline CSS, plots as data URIs) plus its PNG plots.

The report needs no network: no script, stylesheet, font or image is fetched, so it renders the
same in the MLflow UI's artifact viewer, in a browser from disk and in a mail attachment. Plots are
drawn with matplotlib's Agg canvas on ``Figure`` objects (no pyplot global state), only after the
check is complete, and only for the ``max_plots`` most drifted columns, so the cost of a report
follows what it shows, not the width of the batch.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlflow_ext.checks import CheckResult
from mlflow_ext.detectors import ColumnDrift
from mlflow_ext.profile import Profile, as_float, category_counts

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mlflow_ext.model_check import CheckSummary

__all__ = ["MAX_PLOTS", "Report", "render_report"]

MAX_PLOTS = 6
_COLORS = {"ok": "#1a7f37", "warn": "#9a6700", "alert": "#cf222e", "error": "#cf222e", "unknown": "#57606a"}
_REFERENCE, _CURRENT = "#57606a", "#d4462f"
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1100px;
color:#1f2328;padding:0 16px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
.verdict{border-left:6px solid var(--c);background:#f6f8fa;padding:12px 16px;margin:16px 0}
.verdict .status{color:var(--c);font-size:22px;font-weight:700;letter-spacing:.04em}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{border-bottom:1px solid #d8dee4;
padding:4px 8px;text-align:left}
tr.drifted td{background:#ffebe9}.muted{color:#57606a}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px}
figure{margin:0}figure img{width:100%;border:1px solid #d8dee4}figcaption{font-size:12px;color:#57606a}
"""


@dataclass(frozen=True)
class Report:
    """A rendered report: the HTML text and the PNG plots it embeds, by file name."""

    html: str
    plots: Mapping[str, bytes] = field(default_factory=dict)


def render_report(
    result: CheckResult,
    *,
    title: str,
    subtitle: str = "",
    reference: Profile | None = None,
    current: pd.DataFrame | None = None,
    trend: Sequence[CheckSummary] = (),
    max_plots: int = MAX_PLOTS,
) -> Report:
    """Render a check result: verdict and reasons, performance, drift table, overlays of the most
    drifted columns, data quality, prediction drift and the trend of the model's last checks
    (``trend`` oldest first, the current check last)."""
    plots: dict[str, bytes] = {}
    figures: list[tuple[str, str]] = []  # (file name, caption)

    def add(name: str, figure: Figure, caption: str) -> None:
        plots[name] = _png(figure)
        figures.append((name, caption))

    drifted = sorted((r for r in result.drift if r.drifted), key=_severity, reverse=True)
    if reference is not None and reference.sample is not None and current is not None:
        for i, r in enumerate(drifted[:max_plots]):
            figure = _overlay(r, reference, current)
            if figure is not None:
                add(f"drift_{i + 1}.png", figure, f"{r.column}: reference vs current ({r.detector})")
    if result.performance:
        add("performance.png", _performance_plot(result), "Performance on the labelled rows, with intervals")
    if trend:
        add("trend.png", _trend_plot(trend), f"Last {len(trend)} checks of this model")
    metric = next((name for c in trend for name in c.estimated), None)
    if metric is not None:
        add("estimated.png", _estimated_plot(trend, metric),
            f"Estimated {metric} with its band, and realized {metric} where labels arrived")
    return Report(html=_html(result, title, subtitle, plots, figures, trend), plots=plots)


# -- plots ----------------------------------------------------------------------------------------


def _figure(width: float = 5.2, height: float = 3.0) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # fixed margins: a layout engine would double the cost of every plot
    figure = Figure(figsize=(width, height), dpi=100)
    figure.subplots_adjust(left=0.15, right=0.86, bottom=0.2, top=0.88)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # no Software metadata: the PNG then names no URL at all
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _severity(r: ColumnDrift) -> float:
    return r.effect_size / r.threshold if r.threshold else r.effect_size


def _overlay(r: ColumnDrift, reference: Profile, current: pd.DataFrame) -> Figure | None:
    column = reference.columns.get(r.column)
    sample = reference.sample
    if column is None or sample is None or r.column not in current.columns or r.column not in sample.columns:
        return None
    figure = _figure()
    ax = figure.add_subplot()
    if column.kind == "numeric":
        ref_values, cur_values = (_finite(sample[r.column]), _finite(current[r.column]))
        both = np.concatenate([ref_values, cur_values])
        if not len(ref_values) or not len(cur_values):
            return None
        low, high = np.quantile(both, [0.005, 0.995])  # keep a few outliers from flattening the plot
        edges: list[float] | int = np.linspace(low, high, 31).tolist() if high > low else 30
        ax.hist(ref_values, bins=edges, density=True, alpha=0.45, color=_REFERENCE, label="reference")
        ax.hist(cur_values, bins=edges, density=True, histtype="step", linewidth=2, color=_CURRENT, label="current")
        ax.set_ylabel("density")
    else:
        ref_share = _shares(sample[r.column])
        cur_share = _shares(current[r.column])
        names = list(dict.fromkeys([*ref_share.nlargest(8).index, *cur_share.nlargest(4).index]))
        x = np.arange(len(names))
        ax.bar(x - 0.2, [ref_share.get(n, 0.0) for n in names], 0.4, color=_REFERENCE, label="reference")
        ax.bar(x + 0.2, [cur_share.get(n, 0.0) for n in names], 0.4, color=_CURRENT, label="current")
        ax.set_xticks(x, [n[:14] for n in names], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("share of rows")
    ax.set_title(f"{r.column[:40]}  (effect {r.effect_size:.3g})", fontsize=10)
    ax.legend(fontsize=8)
    return figure


def _finite(series: pd.Series) -> np.ndarray:
    values = np.asarray(as_float(series), dtype=np.float64)
    return np.asarray(values[np.isfinite(values)])


def _shares(series: pd.Series) -> pd.Series:
    values, counts, _ = category_counts(series)
    total = counts.sum()
    return pd.Series(counts / total if total else counts, index=values, dtype=np.float64)


def _performance_plot(result: CheckResult) -> Figure:
    """One row per metric, each on its own scale: the value with its interval and the validation value."""
    metrics = result.performance
    height = 0.5 + 0.75 * len(metrics)
    figure = _figure(5.2, height)
    figure.subplots_adjust(left=0.06, right=0.94, bottom=0.3 / height, top=1 - 0.3 / height, hspace=1.6)
    for i, m in enumerate(metrics):
        ax = figure.add_subplot(len(metrics), 1, i + 1)
        low = m.ci_low if m.ci_low is not None else m.value
        high = m.ci_high if m.ci_high is not None else m.value
        color = _COLORS["alert"] if m.degraded else _COLORS["ok"]
        ax.errorbar([m.value], [0], xerr=[[m.value - low], [high - m.value]], fmt="o", color=color, capsize=4)
        shown = [low, high, m.value]
        if m.reference is not None:
            ax.axvline(m.reference, color="black", linewidth=2)
            shown.append(m.reference)
        pad = (max(shown) - min(shown)) * 0.15 or abs(m.value) * 0.05 or 0.05
        ax.set_xlim(min(shown) - pad, max(shown) + pad)
        ax.set_yticks([])
        ref = "" if m.reference is None else f" vs {m.reference:.3g} at validation (black line)"
        ax.set_title(f"{m.name} {m.value:.3g} [{low:.3g}, {high:.3g}]{ref}", fontsize=9, loc="left", color=color)
        ax.tick_params(labelsize=8)
    return figure


def _trend_plot(trend: Sequence[CheckSummary]) -> Figure:
    from matplotlib.ticker import MaxNLocator

    figure = _figure(5.2, 3.0)
    figure.subplots_adjust(top=0.82)
    ax = figure.add_subplot()
    steps = [c.step for c in trend]
    shares = [np.nan if c.drift_share is None else c.drift_share for c in trend]
    ax.plot(steps, shares, color=_CURRENT, label="drift share (dots: status)")
    for c in trend:
        ax.scatter([c.step], [0 if c.drift_share is None else c.drift_share], s=60, zorder=3,
                   color=_COLORS.get(c.status, _COLORS["unknown"]))
    ax.set_xlabel("window")
    ax.set_ylabel("share of drifted columns")
    ax.set_ylim(-0.05, 1.05)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    metric = next((m for c in trend for m in c.performance), None)
    if metric is not None:
        twin = ax.twinx()
        points = [(c.step, c.performance[metric]) for c in trend if metric in c.performance]
        twin.plot([s for s, _ in points], [v for _, v in points], marker="s", color=_REFERENCE, label=metric)
        twin.set_ylabel(metric)
    figure.legend(loc="upper center", ncol=2, fontsize=8, frameon=False)
    return figure


def _estimated_plot(trend: Sequence[CheckSummary], metric: str) -> Figure:
    """The estimate of one metric over the last checks, its band shaded, realized values as dots."""
    from matplotlib.ticker import MaxNLocator

    figure = _figure(5.2, 3.0)
    ax = figure.add_subplot()
    points = [(c.step, *c.estimated[metric]) for c in trend if metric in c.estimated]
    steps = [p[0] for p in points]
    ax.fill_between(steps, [p[2] for p in points], [p[3] for p in points], color=_REFERENCE, alpha=0.25,
                    label="band")
    ax.plot(steps, [p[1] for p in points], marker="o", color=_REFERENCE, label=f"estimated {metric}")
    realized = [(c.step, c.performance[metric]) for c in trend if metric in c.performance]
    if realized:
        ax.scatter([s for s, _ in realized], [v for _, v in realized], color=_CURRENT, zorder=3, s=50,
                   label=f"realized {metric}")
    ax.set_xlabel("window")
    ax.set_ylabel(metric)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return figure


# -- HTML -----------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None, spec: str = ".4g") -> str:
    return "" if value is None else format(value, spec)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        f"<tr{f' class={chr(34)}{classes[i]}{chr(34)}' if i < len(classes) and classes[i] else ''}>"
        + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _drift_rows(drift: Sequence[ColumnDrift]) -> tuple[list[list[str]], list[str]]:
    ordered = sorted(drift, key=lambda r: (r.drifted, _severity(r)), reverse=True)
    rows = [[_e(r.column), _e(r.detector), _num(r.statistic), _num(r.p_value, ".3g"), _num(r.p_adjusted, ".3g"),
             _num(r.effect_size), _num(r.threshold, "g"), "yes" if r.drifted else "no"] for r in ordered]
    return rows, ["drifted" if r.drifted else "" for r in ordered]


def _html(result: CheckResult, title: str, subtitle: str, plots: Mapping[str, bytes],
          figures: Sequence[tuple[str, str]], trend: Sequence[CheckSummary]) -> str:
    color = _COLORS.get(result.status, _COLORS["unknown"])
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(result.status.upper())}: {_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Check report: {_e(title)}</h1>", f'<div class="muted">{_e(subtitle)}</div>',
        f'<div class="verdict" style="--c:{color}"><div class="status" id="verdict">{_e(result.status.upper())}'
        f"</div><div>{len(result.drifted_columns)} of {result.n_tested} tested columns drifted "
        f"({result.drift_share:.0%}) in {result.n_rows} rows.</div><ul>",
        *(f"<li>{_e(reason)}</li>" for reason in result.reasons), "</ul></div>",
    ]
    if result.performance:
        rows = [[_e(m.name), _num(m.value), _num(m.reference),
                 "" if m.ci_low is None or m.ci_high is None else f"[{m.ci_low:.4g}, {m.ci_high:.4g}]",
                 _num(m.p_value, ".3g"), "yes" if m.degraded else "no"] for m in result.performance]
        parts += ["<h2>Performance</h2>",
                  _table(("metric", "value", "validation", "interval", "p-value", "degraded"), rows,
                         ["drifted" if m.degraded else "" for m in result.performance])]
    if result.estimated:
        realized = {m.name: m.value for m in result.performance}
        excluded = [e.reference is not None and not e.band_low <= e.reference <= e.band_high for e in result.estimated]
        rows = [[_e(e.name), _num(e.value), f"[{e.band_low:.4g}, {e.band_high:.4g}]", _num(e.reference),
                 _num(realized.get(e.name)), _e(e.method.upper()), "yes" if out else "no"]
                for e, out in zip(result.estimated, excluded, strict=True)]
        parts += ["<h2>Estimated performance</h2>",
                  '<p class="muted">Estimated on every row of the batch without labels: right under covariate '
                  "shift, blind to concept drift (a changed relation between inputs and target). The band is "
                  "where the realized value should fall if the estimate is right.</p>",
                  _table(("metric", "estimate", "band", "validation", "realized", "method",
                          "band excludes validation"), rows, ["drifted" if out else "" for out in excluded])]
    if figures:
        parts.append("<h2>Plots</h2><div class=\"plots\">")
        for name, caption in figures:
            data = base64.b64encode(plots[name]).decode("ascii")
            parts.append(f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{_e(caption)}</figcaption></figure>")
        parts.append("</div>")
    headers = ("column", "detector", "statistic", "p-value", "adjusted p", "effect", "threshold", "drifted")
    if result.drift:
        rows, classes = _drift_rows(result.drift)
        parts += ["<h2>Columns by drift</h2>", _table(headers, rows, classes)]
    if result.prediction_drift or result.overall:
        rows, classes = _drift_rows((*result.prediction_drift, *result.overall))
        parts += ["<h2>Prediction and multivariate drift</h2>", _table(headers, rows, classes)]
    parts.append("<h2>Data quality</h2>")
    if result.quality:
        parts.append(_table(("severity", "finding", "column", "message"),
                            [[_e(f.severity), _e(f.kind), _e(f.column or ""), _e(f.message)]
                            for f in result.quality]))
    else:
        parts.append('<p class="muted">No data-quality finding.</p>')
    if trend:
        metric_names = list(dict.fromkeys(m for c in trend for m in c.performance))
        rows = [[str(c.step), _e(c.version), _e(c.status), _e(c.time), _num(c.drift_share, ".0%"),
                 _e(", ".join(c.drifted_columns[:5])), *(_num(c.performance.get(m)) for m in metric_names)]
                for c in reversed(trend)]
        parts += ["<h2>Recent checks of this model</h2>",
                  _table(("window", "version", "status", "time", "drift share", "drifted", *metric_names), rows)]
    parts.append("</body></html>")
    return "\n".join(parts)
