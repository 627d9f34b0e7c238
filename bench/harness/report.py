"""Results: one record per run, summarised as one markdown table plus notes, and saved raw
as JSON. A cell is the median over the repetitions, with (min-max) when there are several;
a cell whose every repetition failed shows ``error:`` and a short reason, the full reason
is in the notes under the table.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.scenarios import SCENARIOS, Scenario

CLIENT_BOUND_PCT = 90.0  # wsload CPU% (of its one core) above which the client is the limit
NOISY_PCT = 10.0  # % of a run that the server or wsload spent waiting for its CPU: noisy
ERROR_CELL_CHARS = 36
NOT_RUN = "n/a"
#: server CPU microseconds per operation (message, handshake, delivery), in its own table
CPU_METRIC = "server_cpu_us"
CPU_COLUMNS = ("B", "C", "D", "E", "G")


@dataclass
class RunResult:
    """One (contender, scenario, repetition)."""

    contender: str
    scenario: str
    rep: int
    values: dict[str, float] = field(default_factory=dict)
    error: str = ""
    wsload: dict[str, Any] = field(default_factory=dict)
    rss_before_kib: int | None = None
    rss_held_kib: int | None = None
    server_cpu_s: float | None = None  # server tree CPU (user+system) in wsload's window
    cpu_wait_pct: dict[str, float] = field(default_factory=dict)  # runnable, CPU taken
    discarded: str = ""  # why this run is left out of the table (it stays in the JSON)
    server_log_tail: str = ""
    server_log_bytes: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def noisy(self) -> bool:
        return max(self.cpu_wait_pct.values(), default=0.0) >= NOISY_PCT

    @property
    def client_bound(self) -> bool:
        return float(self.wsload.get("cpu_pct", 0.0)) >= CLIENT_BOUND_PCT


@dataclass(frozen=True)
class Row:
    label: str
    contender: str
    compression: bool

    def scenario_key(self, column: str) -> str:
        return column + "z" if self.compression else column


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(runs: list[RunResult], metric: str) -> str:
    """``median (min-max)`` over the good runs, ``error: ...`` if none, n/a if not run."""
    if not runs:
        return NOT_RUN
    good = [r.values[metric] for r in runs if r.ok and metric in r.values]
    if not good:
        return "error: " + short_reason(next((r.error for r in runs if r.error), "no value"))
    text = fmt(statistics.median(good))
    if len(good) > 1:
        text += f" ({fmt(min(good))}-{fmt(max(good))})"
    if any(r.client_bound for r in runs if r.ok):
        text += " †"
    if any(r.noisy for r in runs if r.ok):
        text += " ‡"
    if len(good) < len(runs):
        text += " *"
    return text


def short_reason(reason: str) -> str:
    reason = reason.replace("|", "/").strip()
    if len(reason) <= ERROR_CELL_CHARS:
        return reason
    return reason[: ERROR_CELL_CHARS - 3].rstrip() + "..."


def columns(selected: list[Scenario]) -> list[tuple[str, str, str]]:
    """(column, metric field, header) for each selected base scenario, in A..G order."""
    bases = sorted({s.column for s in selected})
    return [
        (base, metric.field, f"{base} {metric.header}")
        for base in bases
        for metric in SCENARIOS[base].metrics
    ]


def table(rows: list[Row], selected: list[Scenario], results: list[RunResult]) -> str:
    cols = columns(selected)
    keys = {s.key for s in selected}
    lines = [
        "| server | " + " | ".join(header for _, _, header in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for row in rows:
        cells = []
        for column, metric, _ in cols:
            key = row.scenario_key(column)
            runs = [r for r in results if r.contender == row.contender and r.scenario == key]
            cells.append(cell(runs if key in keys else [], metric))
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_table(rows: list[Row], selected: list[Scenario], results: list[RunResult]) -> str:
    """Server CPU µs per operation for the load scenarios; "" if none was selected.

    Throughput ties when the client or the kernel is the limit (B, G on a 2-core box);
    the server's own CPU per message, handshake or delivery still shows which does less.
    """
    bases = sorted({s.column for s in selected if s.column in CPU_COLUMNS})
    if not bases:
        return ""
    keys = {s.key for s in selected}
    unit = {"B": "msg", "C": "msg", "D": "64 KiB msg", "E": "handshake", "G": "delivery"}
    lines = [
        "Server CPU (user + system, µs) per operation in the same runs:",
        "",
        "| server | " + " | ".join(f"{b} µs/{unit[b]}" for b in bases) + " |",
        "|---|" + "---:|" * len(bases),
    ]
    for row in rows:
        cells = []
        for base in bases:
            key = row.scenario_key(base)
            runs = [r for r in results if r.contender == row.contender and r.scenario == key]
            cells.append(cell(runs if key in keys else [], CPU_METRIC))
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def notes(rows: list[Row], results: list[RunResult]) -> list[str]:
    """Footnotes: full error reasons and wsload-reported errors, per row and scenario."""
    found: list[str] = []
    for row in rows:
        mine = [r for r in results if r.contender == row.contender]
        mine = [r for r in mine if r.scenario.endswith("z") == row.compression]
        reasons = dict.fromkeys(r.error for r in mine if r.error)
        found.extend(f"{row.label}: {reason}" for reason in reasons)
        for key in SCENARIOS:
            runs = [r for r in mine if r.scenario == key]
            if runs and any(r.ok for r in runs):
                found.extend(wsload_notes(f"{row.label} {key[0]}", runs))
    return found


def wsload_notes(where: str, runs: list[RunResult]) -> list[str]:
    """Error counters wsload reported in the runs that produced a number."""
    counts: dict[str, int] = {}
    for run in runs:
        for name, value in run.wsload.items():
            if name.startswith("err_") and isinstance(value, int) and value > 0:
                counts[name] = counts.get(name, 0) + value
    if not counts:
        return []
    detail = ", ".join(f"{name}={n}" for name, n in sorted(counts.items()))
    return [f"{where}: wsload counted errors over {len(runs)} rep(s): {detail}"]


def legend() -> str:
    return (
        "median (min-max) over the repetitions; † wsload used >= "
        f"{CLIENT_BOUND_PCT:.0f}% of its core (the client may be the limit); "
        f"‡ the server or wsload waited for its CPU >= {NOISY_PCT:.0f}% of the run (noisy); "
        f"* some repetitions failed; {NOT_RUN}: not applicable"
    )


def save(path: Path, meta: dict[str, Any], results: list[RunResult], rendered: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "table": rendered, "runs": [asdict(r) for r in results]}
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
