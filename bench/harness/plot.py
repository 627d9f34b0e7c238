"""``bench/run.py --plot FILE.png``: the results as one grouped bar chart.

One group per scenario, one bar per contender, each scenario's headline number (its first
metric; p99 for the open-loop latency scenarios) divided by pyswoole's, so pyswoole is 1.0
everywhere and a taller bar means a bigger number: better for throughput, worse for latency
and memory (those groups are labelled "lower is better"). The reference is the contender
named ``pyswoole``, or the first one selected. A cell without a value leaves its bar out.

matplotlib is a bench-only dependency, in the project's ``test`` extra (the test suite
draws a chart); it is imported only when a chart is drawn.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from harness.report import RunResult
from harness.scenarios import Metric, Scenario

REFERENCE = "pyswoole"


def unavailable() -> str:
    """ "" if matplotlib can be imported, else what to install."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib, or the test extra)"
    return ""


def headline(scenario: Scenario) -> Metric:
    if scenario.group == "latency":
        return next((m for m in scenario.metrics if m.field == "p99_us"), scenario.metrics[0])
    return scenario.metrics[0]


def median(results: list[RunResult], contender: str, key: str, field: str) -> float | None:
    good = [
        r.values[field]
        for r in results
        if r.contender == contender and r.scenario == key and r.ok and field in r.values
    ]
    return statistics.median(good) if good else None


def ratios(
    rows: list[str], selected: list[Scenario], results: list[RunResult]
) -> tuple[str, list[tuple[str, dict[str, float]]]]:
    """(reference contender, [(group label, {contender: value / reference's value})]) for
    the scenarios where the reference has a positive value."""
    reference = REFERENCE if REFERENCE in rows else rows[0]
    groups = []
    for scenario in selected:
        metric = headline(scenario)
        base = median(results, reference, scenario.key, metric.field)
        if not base or base <= 0:
            continue
        bars = {}
        for row in rows:
            value = median(results, row, scenario.key, metric.field)
            if value is not None:
                bars[row] = value / base
        label = f"{scenario.key}\n{metric.header}"
        if metric.lower_is_better:
            label += "\n(lower is better)"
        groups.append((label, bars))
    return reference, groups


def draw(path: Path, rows: list[str], selected: list[Scenario], results: list[RunResult]) -> int:
    """Write the chart to ``path`` (PNG); returns how many scenario groups it shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference, groups = ratios(rows, selected, results) if rows else (REFERENCE, [])
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(groups) + 2), 5), dpi=110)
    for index, row in enumerate(rows):
        xs = [g for g, (_, bars) in enumerate(groups) if row in bars]
        heights = [groups[g][1][row] for g in xs]
        offset = (index - (len(rows) - 1) / 2) * width
        ax.bar([x + offset for x in xs], heights, width, label=row)
    ax.axhline(1.0, color="black", linewidth=0.8)
    # log scale: ratios from 0.05 to 1,000 (a peer offered far more than it can echo in H)
    # stay readable side by side
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)), [label for label, _ in groups], fontsize=7)
    ax.set_ylabel(f"relative to {reference} (= 1.0)")
    ax.set_title(f"bench/run.py: each scenario's headline number / {reference}'s")
    if rows:
        ax.legend(fontsize=7, ncols=min(4, len(rows)))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return len(groups)
