"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no display, no
pyplot state) and returned as PNG bytes for inlining."""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from ... import frontier
from .load import MethodSummary, Selection

DPI = 100


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def accuracy_vs_calls(methods: Mapping[str, MethodSummary]) -> bytes:
    """Cost and quality: accuracy (95% interval) against LLM calls per question, one point per method."""
    return _accuracy_against(methods, {n: m.calls_per_question for n, m in methods.items()}, "LLM calls per question")


def accuracy_vs_dollars(methods: Mapping[str, MethodSummary]) -> bytes:
    """Accuracy against USD per 1,000 questions (log scale), every priced method; with two or more
    single models (`single:<model>`), the zero router: the upper convex hull of their points."""
    priced = {n: m for n, m in methods.items() if m.cost_per_question is not None}
    dollars = {n: 1000 * (m.cost_per_question or 0.0) for n, m in priced.items()}
    fig_singles = [(dollars[n], 100 * m.accuracy) for n, m in priced.items() if n.startswith("single:")]
    zero = frontier.hull(fig_singles) if len(fig_singles) >= 2 else []
    return _accuracy_against(priced, dollars, "USD per 1,000 questions (log scale)", zero, log=True)


def _accuracy_against(
    methods: Mapping[str, MethodSummary],
    xs: Mapping[str, float],
    label: str,
    zero_router: list[tuple[float, float]] | None = None,
    log: bool = False,
) -> bytes:
    fig = Figure(figsize=(8, 5))
    ax = fig.add_subplot()
    placed: list[tuple[float, float]] = []
    for i, (name, m) in enumerate(methods.items()):
        low, high = m.ci95
        ax.errorbar(
            xs[name],
            100 * m.accuracy,
            yerr=[[100 * (m.accuracy - low)], [100 * (high - m.accuracy)]],
            fmt="o",
            capsize=4,
            color=f"C{i % 10}",
        )
        point = (xs[name], 100 * m.accuracy)
        # Methods at about the same point (same cost, close accuracy) get their labels stacked.
        near = sum(abs(x - point[0]) <= 0.02 * max(x, 1e-9) and abs(y - point[1]) < 3 for x, y in placed)
        placed.append(point)
        ax.annotate(name, point, textcoords="offset points", xytext=(6, 4 - 11 * near), fontsize=9)
    if zero_router:
        ax.plot(*zip(*zero_router, strict=True), "--", color="gray", label="zero router (hull of single models)")
        ax.legend(fontsize=8, loc="lower right")
    positive = [x for x in xs.values() if x > 0]
    if positive and (log or max(positive) / min(positive) > 8):
        ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("accuracy % (95% bootstrap interval)")
    ax.grid(alpha=0.3)
    return _png(fig)


def selection_counts(selection: Selection) -> bytes:
    """Paper Fig. 4: how often each model is recruited, before and after trimming rare experts."""
    models = sorted(selection.before, key=lambda m: (-selection.before[m], m))
    height = max(2.5, 0.32 * len(models) + 1.2)
    fig = Figure(figsize=(8, height))
    ax = fig.add_subplot()
    y = np.arange(len(models))
    ax.barh(y - 0.2, [selection.before[m] for m in models], height=0.4, label="before trimming", color="C0")
    ax.barh(y + 0.2, [selection.after.get(m, 0) for m in models], height=0.4, label="after trimming", color="C1")
    ax.set_yticks(y, models)
    ax.invert_yaxis()
    ax.set_xlabel("questions the model is recruited for")
    ax.set_title(selection.title, fontsize=10)
    ax.legend(loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def profile_heatmap(profiles: Mapping[str, Mapping[str, float]], accuracy: Mapping[str, float], top: int) -> bytes:
    """Model x skill profile scores (+1 per right, -1 per wrong validation answer) for the `top`
    skills with the largest total |score|; rows labelled with validation accuracy."""
    models = sorted(profiles, key=lambda m: -accuracy.get(m, 0.0))
    weight: dict[str, float] = {}
    for p in profiles.values():
        for skill, score in p.items():
            weight[skill] = weight.get(skill, 0.0) + abs(score)
    skills = sorted(weight, key=lambda s: (-weight[s], s))[:top]
    grid = np.array([[profiles[m].get(s, 0.0) for s in skills] for m in models], dtype=float)
    fig = Figure(figsize=(max(6.0, 0.38 * len(skills) + 3), max(3.0, 0.32 * len(models) + 1.8)))
    ax = fig.add_subplot()
    bound = max(float(np.abs(grid).max()), 1.0)
    image = ax.imshow(grid, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(np.arange(len(skills)), skills, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(np.arange(len(models)), [f"{m} ({100 * accuracy.get(m, 0):.0f}%)" for m in models], fontsize=8)
    fig.colorbar(image, ax=ax, label="profile score")
    return _png(fig)


def _heatmap(values: np.ndarray, rows: list[str], columns: list[str], label: str, cmap: str) -> bytes:
    """An annotated 0-100 % heatmap (blank cells: no data)."""
    fig = Figure(figsize=(max(6.0, 0.62 * len(columns) + 3), max(2.5, 0.4 * len(rows) + 1.8)))
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(np.arange(len(columns)), columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(np.arange(len(rows)), rows, fontsize=8)
    for (i, j), v in np.ndenumerate(values):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white" if v < 35 else "black")
    fig.colorbar(image, ax=ax, label=label)
    return _png(fig)


def method_by_group(data: Mapping[str, Mapping[str, float]], label: str) -> bytes:
    """method x category (or domain) accuracy, in %."""
    columns = sorted({c for row in data.values() for c in row})
    rows = list(data)
    values = np.array([[100 * data[r].get(c, np.nan) for c in columns] for r in rows], dtype=float)
    return _heatmap(values, rows, columns, label, "viridis")
