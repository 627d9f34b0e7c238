"""Results: one record per run, summarised as markdown tables plus notes, and saved raw
as JSON. A row per contender; a column per (scenario, number). A cell is the median over the
repetitions, with (min-max) when there are several; a cell whose every repetition failed
shows ``error:`` and a short reason (the full reason is in the notes under the tables), one
that does not apply says ``n/a: why`` and one wsload cannot run says ``skipped: why``.

Tables: the main one (A-G), one per Performance II group (deflate, tls, latency, scale),
then the server's CPU µs per operation and its RSS per connection under load.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.scenarios import (
    ACTIVE_RSS_METRIC,
    CLIENT_CPU_METRIC,
    CPU_METRIC,
    GROUPS,
    SCENARIOS,
    Scenario,
)

CLIENT_BOUND_PCT = 90.0  # wsload CPU% (of its one core) above which the client is the limit
CLIENT_NOTE_PCT = 85.0  # H: wsload CPU% from which the notes say the client may be the limit
NOISY_PCT = 10.0  # % of a run that the server or wsload spent waiting for its CPU: noisy
ERROR_CELL_CHARS = 36
NOT_RUN = "n/a"
UNMEASURED = "—"
CPU_TITLE = "Server CPU (user + system, µs) per operation in the same runs:"
RSS_TITLE = "Server RSS growth per connection (KiB) at the end of the measured window, under load:"
UNTABLED = ("n/a", "skipped")  # error prefixes shown as they are, not as "error: ..."

Column = tuple[str, str, str]  # (scenario key, value field, header)


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
    rss_active_kib: int | None = None  # at the end of the measured window (rss_active)
    server_cpu_s: float | None = None  # server tree CPU (user+system) in wsload's window
    cpu_wait_pct: dict[str, float] = field(default_factory=dict)  # runnable, CPU taken
    discarded: str = ""  # why this run is left out of the table (it stays in the JSON)
    server_log_tail: str = ""
    server_log_bytes: int = 0
    seconds: float = 0.0
    offered_rate: int = 0  # H: the -r msgs/s (harness.openloop), the same for every server
    own_b_msgs_per_s: float = 0.0  # H: this server's own median B msgs/s in the run
    over_own_b: bool = False  # H: offered more than its own B (the table's ↑)

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def noisy(self) -> bool:
        return max(self.cpu_wait_pct.values(), default=0.0) >= NOISY_PCT

    @property
    def client_bound(self) -> bool:
        return float(self.wsload.get("cpu_pct", 0.0)) >= CLIENT_BOUND_PCT


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
    if not good and all(r.ok for r in runs):
        return UNMEASURED  # e.g. CPU per operation when the server used under one tick
    if not good:
        reason = next((r.error for r in runs if r.error), "no value")
        if reason.startswith(UNTABLED):
            return short_reason(reason)
        return "error: " + short_reason(reason)
    text = fmt(statistics.median(good))
    if len(good) > 1:
        text += f" ({fmt(min(good))}-{fmt(max(good))})"
    if any(r.client_bound for r in runs if r.ok):
        text += " †"
    if any(r.noisy for r in runs if r.ok):
        text += " ‡"
    if any(r.over_own_b for r in runs if r.ok):
        text += " ↑"
    if len(good) < len(runs):
        text += " *"
    return text


def short_reason(reason: str) -> str:
    reason = reason.replace("|", "/").strip()
    if len(reason) <= ERROR_CELL_CHARS:
        return reason
    return reason[: ERROR_CELL_CHARS - 3].rstrip() + "..."


def markdown(title: str, rows: list[str], cols: list[Column], results: list[RunResult]) -> str:
    """One table: a row per contender, a column per (scenario, field); "" without columns."""
    if not cols:
        return ""
    lines = [f"{title}", ""] if title else []
    lines += [
        "| server | " + " | ".join(header for _, _, header in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for row in rows:
        cells = []
        for key, metric, _ in cols:
            runs = [r for r in results if r.contender == row and r.scenario == key]
            cells.append(cell(runs, metric))
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def group_columns(selected: list[Scenario], group: str) -> list[Column]:
    return [
        (s.key, m.field, f"{s.key} {m.header}")
        for s in selected
        if s.group == group
        for m in s.metrics
    ]


def skipped(key: str, results: list[RunResult]) -> str:
    """The reason if every run of scenario ``key`` that applies was skipped (wsload too
    old...), else ""."""
    reasons = {r.error for r in results if r.scenario == key and not r.error.startswith("n/a")}
    if len(reasons) == 1 and (reason := reasons.pop()).startswith("skipped"):
        return reason
    return ""


def render(
    rows: list[str],
    selected: list[Scenario],
    results: list[RunResult],
    titles: dict[str, str] | None = None,
) -> str:
    """Every table that has a selected scenario, blank-line separated. Scenarios skipped
    for everyone get one line instead of a column of identical cells. ``titles``: text
    added to a group's title (H's offered rate)."""
    tables = []
    ran = [s for s in selected if not skipped(s.key, results)]
    for group, title in GROUPS.items():
        if extra := (titles or {}).get(group, ""):
            title = f"{title}; {extra}"
        if cols := group_columns(ran, group):
            tables.append(markdown(f"{title}:" if title else "", rows, cols, results))
        tables.extend(
            f"{s.key} ({s.title}): {skipped(s.key, results)}"
            for s in selected
            if s.group == group and s not in ran
        )
    cpu = [(s.key, CPU_METRIC, f"{s.key} µs/{s.unit}") for s in ran if s.unit]
    tables.append(markdown(CPU_TITLE, rows, cpu, results))
    active = [(s.key, ACTIVE_RSS_METRIC, f"{s.key} KiB/conn") for s in ran if s.rss_active]
    tables.append(markdown(RSS_TITLE, rows, active, results))
    return "\n\n".join(t for t in tables if t)


def notes(rows: list[str], results: list[RunResult]) -> list[str]:
    """Footnotes: full error reasons and wsload-reported errors, per row and scenario."""
    found: list[str] = []
    for row in rows:
        mine = [r for r in results if r.contender == row]
        reasons = dict.fromkeys(
            f"{r.scenario}: {r.error}" for r in mine if r.error and not r.error.startswith(UNTABLED)
        )
        found.extend(f"{row} {reason}" for reason in reasons)
        for key in SCENARIOS:
            runs = [r for r in mine if r.scenario == key]
            if runs and any(r.ok for r in runs):
                found.extend(wsload_notes(f"{row} {key}", runs))
                found.extend(client_notes(f"{row} {key}", runs))
    return found


def client_notes(where: str, runs: list[RunResult]) -> list[str]:
    """H: a note when wsload used >= CLIENT_NOTE_PCT of its core in a repetition (one core
    drives 1,000 open-loop connections: it can be what limits the run)."""
    cpu = [r.values[CLIENT_CPU_METRIC] for r in runs if r.ok and CLIENT_CPU_METRIC in r.values]
    busy = [pct for pct in cpu if pct >= CLIENT_NOTE_PCT]
    if not busy:
        return []
    return [
        f"{where}: wsload used {max(busy):.0f}% of its core (>= {CLIENT_NOTE_PCT:.0f}%) in "
        f"{len(busy)}/{len(cpu)} rep(s): the client may have limited the run"
    ]


#: open-loop counters (H): sends the socket delayed past their schedule, echoes never seen
OPEN_LOOP_COUNTERS = ("late_sends", "unanswered")


def wsload_notes(where: str, runs: list[RunResult]) -> list[str]:
    """Error counters wsload reported in the runs that produced a number, and the open-loop
    counters that say the server (or the socket) fell behind the schedule."""
    found = []
    for kind, wanted in (
        ("errors", lambda name: name.startswith("err_")),
        ("open-loop shortfalls", lambda name: name in OPEN_LOOP_COUNTERS),
    ):
        counts: dict[str, int] = {}
        for run in runs:
            for name, value in run.wsload.items():
                if wanted(name) and isinstance(value, int) and value > 0:
                    counts[name] = counts.get(name, 0) + value
        if counts:
            detail = ", ".join(f"{name}={n}" for name, n in sorted(counts.items()))
            found.append(f"{where}: wsload counted {kind} over {len(runs)} rep(s): {detail}")
    return found


def legend() -> str:
    return (
        "median (min-max) over the repetitions; † wsload used >= "
        f"{CLIENT_BOUND_PCT:.0f}% of its core (the client may be the limit); "
        f"‡ the server or wsload waited for its CPU >= {NOISY_PCT:.0f}% of the run (noisy); "
        "↑ H offered this server more than its own B msg/s; "
        f"* some repetitions failed; {NOT_RUN}: not applicable (why follows); skipped: this "
        f"wsload cannot run it; {UNMEASURED}: too small to measure (server CPU under one "
        "clock tick in the window)"
    )


def save(path: Path, meta: dict[str, Any], results: list[RunResult], rendered: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "table": rendered, "runs": [asdict(r) for r in results]}
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
