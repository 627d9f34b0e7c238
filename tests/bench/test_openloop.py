"""H50/H90's offered rate (bench/harness/openloop.py and bench/run.py's use of it), unit
level: no server, no wsload. Hand-made B results stand for a run's B measurements; the
probe callback records which servers would be measured (run.py's probe_b starts a real
server: the smoke run in test_run_scenarios.py covers it).

The point of the shared rate (issue 17: "p99 <= 0.7x picows's at the same offered rate"):
two servers in one run get the same wsload ``-r``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"

sys.path.insert(0, str(BENCH))
from harness import BenchError  # noqa: E402
from harness.features import FEATURES  # noqa: E402
from harness.openloop import H_PROBE, OpenLoopRates, annotate, b_rate, pick_reference  # noqa: E402
from harness.report import RunResult, notes, render  # noqa: E402
from harness.scenarios import SCENARIOS, expand  # noqa: E402

H50, H90 = SCENARIOS["H50"], SCENARIOS["H90"]


def load_run() -> ModuleType:
    """bench/run.py as a module (it is a script, not in a package)."""
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


run = load_run()


def b(contender: str, msgs: float, discarded: str = "") -> RunResult:
    return RunResult(contender, "B", 0, values={"msgs_per_s": msgs}, discarded=discarded)


def context(*argv: str) -> Any:
    ctx = run.Context(run.settings_from(run.parse_args(list(argv))))
    ctx.features = set(FEATURES)  # as if wsload had every flag: nothing skipped
    return ctx


def no_probe(name: str) -> None:
    raise AssertionError(f"unexpected B probe of {name}")


def r_option(args: list[str]) -> int:
    return int(args[args.index("-r") + 1])


def test_two_servers_in_one_run_get_the_same_r() -> None:
    """pyswoole (B 223k) and picows (B 198k): both offered load x picows's B."""
    ctx = context("--servers", "pyswoole,picows", "--scenarios", "B,H", "--reps", "2")
    results = [b("pyswoole", 223_000), b("picows", 198_000)]
    sizes = ctx.settings.sizes
    for scenario in (H50, H90):
        rs = {
            c.name: r_option(
                scenario.wsload_args(sizes, run.h_rate(ctx, c, scenario, 0, results, no_probe))
            )
            for c in ctx.settings.contenders
        }
        assert rs["pyswoole"] == rs["picows"] == round(198_000 * scenario.load), rs
    assert run.h_rate(ctx, ctx.settings.contenders[0], SCENARIOS["B"], 0, results) == 0
    later = [*results, b("pyswoole", 300_000), b("picows", 100_000)]  # rep 2's B
    assert run.h_rate(ctx, ctx.settings.contenders[0], H50, 1, later, no_probe) == 99_000
    title = ctx.open_loop.title(ctx.settings.scenarios)
    assert "H50 99,000 msg/s, H90 178,200 msg/s" in title and "picows's B" in title
    meta = ctx.open_loop.summary(ctx.settings.scenarios, results)
    assert meta["reference"] == "picows" and meta["offered"] == {"H50": 99_000, "H90": 178_200}


def test_every_repetitions_b_runs_before_its_h() -> None:
    ctx = context("--servers", "pyswoole,picows", "--scenarios", "H,B", "--reps", "2")
    plan, unrunnable = run.plan_runs(ctx)
    assert unrunnable == []
    order = [(rep, c.name, s.key) for rep, c, s in plan]
    assert order[:6] == [
        (0, "pyswoole", "B"),
        (0, "picows", "B"),
        (0, "pyswoole", "H50"),
        (0, "pyswoole", "H90"),
        (0, "picows", "H50"),
        (0, "picows", "H90"),
    ]
    assert order[6:] == [(1, name, key) for _, name, key in order[:6]]


def test_default_without_picows_is_the_lowest_b() -> None:
    ctx = context("--servers", "pyswoole,websockets,aiohttp", "--scenarios", "B,H")
    results = [b("pyswoole", 223_000), b("websockets", 41_000), b("aiohttp", 60_000)]
    rates = {c.name: run.h_rate(ctx, c, H90, 0, results, no_probe) for c in ctx.settings.contenders}
    assert set(rates.values()) == {round(41_000 * 0.9)}
    assert ctx.open_loop.offer.reference == "websockets"
    assert "lowest B" in ctx.open_loop.offer.why


def test_default_falls_back_when_picows_b_failed() -> None:
    ctx = context("--servers", "pyswoole,picows", "--scenarios", "B,H")
    failed = RunResult("picows", "B", 0, error="server exited (1)")
    probed: list[str] = []
    results = [b("pyswoole", 223_000), failed]

    def probe(name: str) -> None:  # picows's probe fails too
        probed.append(name)
        results.append(RunResult(name, "B", 0, error="server exited (1)", discarded=H_PROBE))

    rate = run.h_rate(ctx, ctx.settings.contenders[1], H50, 0, results, probe)
    assert rate == 111_500 and probed == ["picows"]
    assert "picows's B produced no number" in ctx.open_loop.offer.why


def test_explicit_reference() -> None:
    ctx = context("--servers", "pyswoole,picows", "--scenarios", "B,H", "--h-reference", "pyswoole")
    results = [b("pyswoole", 200_000), b("picows", 150_000)]
    for contender in ctx.settings.contenders:
        assert run.h_rate(ctx, contender, H50, 0, results, no_probe) == 100_000


def test_own_keeps_the_old_behaviour() -> None:
    ctx = context("--servers", "pyswoole,picows", "--scenarios", "B,H", "--h-reference", "own")
    results = [b("pyswoole", 223_000), b("picows", 198_000)]
    pys, picows = ctx.settings.contenders
    assert run.h_rate(ctx, pys, H50, 0, results, no_probe) == 111_500
    assert run.h_rate(ctx, picows, H50, 0, results, no_probe) == 99_000
    assert "NOT at one offered rate" in ctx.open_loop.title(ctx.settings.scenarios)
    offered = ctx.open_loop.summary(ctx.settings.scenarios, results)["offered"]
    assert offered["pyswoole"]["H90"] == 200_700 and offered["picows"]["H50"] == 99_000


def test_without_b_selected_the_reference_is_probed_once() -> None:
    """B not among --scenarios: only the reference's B is measured, once for the run."""
    ctx = context("--servers", "pyswoole,picows", "--scenarios", "H", "--reps", "3")
    results: list[RunResult] = []
    probed: list[str] = []

    def probe(name: str) -> None:
        probed.append(name)
        results.append(b(name, 180_000, discarded=H_PROBE))

    rates = [
        run.h_rate(ctx, c, s, rep, results, probe)
        for rep in range(3)
        for c in ctx.settings.contenders
        for s in (H50, H90)
    ]
    assert probed == ["picows"]
    assert rates == [90_000, 162_000] * 6


def test_without_b_and_picows_every_server_is_probed_for_the_lowest() -> None:
    ctx = context("--servers", "pyswoole,aiohttp", "--scenarios", "H")
    results: list[RunResult] = []
    probed: list[str] = []
    measured = {"pyswoole": 200_000.0, "aiohttp": 70_000.0}

    def probe(name: str) -> None:
        probed.append(name)
        results.append(b(name, measured[name], discarded=H_PROBE))

    pys, aiohttp = ctx.settings.contenders
    assert run.h_rate(ctx, pys, H50, 0, results, probe) == 35_000
    assert run.h_rate(ctx, aiohttp, H50, 0, results, probe) == 35_000
    assert probed == ["pyswoole", "aiohttp"]


def test_no_reference_b_is_an_error_for_every_h_run_probed_once() -> None:
    rates = OpenLoopRates("picows", ["pyswoole", "picows"])
    results = [b("pyswoole", 200_000)]
    probed: list[str] = []
    for contender in ("pyswoole", "picows", "pyswoole"):
        with pytest.raises(BenchError, match="no B msg/s of the H reference picows"):
            rates.rate(H50, contender, results, probed.append)
    assert probed == ["picows"]


def test_pick_reference() -> None:
    assert pick_reference(None, ["a", "picows"], {"a": 5.0, "picows": 9.0}).reference == "picows"
    assert pick_reference(None, ["a", "c"], {"a": 5.0, "c": 3.0}).reference == "c"
    assert pick_reference("a", ["a", "c"], {"a": 5.0, "c": 3.0}).base == 5.0
    assert pick_reference(None, ["a"], {}).error
    noisy = b("a", 1_000_000, discarded="noisy, run again")
    assert b_rate([noisy, b("a", 10.0), b("a", 30.0)], "a") == 20.0  # median, noisy left out


def test_reference_must_be_among_the_servers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run.parse_args(["--servers", "pyswoole,aiohttp", "--h-reference", "picows"])
    assert "not among the servers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run.parse_args(["--smoke", "--h-reference", "picows"])  # smoke: pyswoole, bare
    assert run.parse_args(["--smoke", "--h-reference", "own"]).h_reference == "own"


def h(contender: str, rate: int, cpu: float, p99: float) -> RunResult:
    values = {"p50_us": 50.0, "p99_us": p99, "p999_us": p99, "max_us": p99}
    values |= {"msgs_per_s": float(rate), "client_cpu_pct": cpu}
    return RunResult(contender, "H90", 0, values=values, offered_rate=rate)


def test_over_own_b_and_client_cpu_are_shown() -> None:
    """A server offered more than its own B is marked (↑ and a note); wsload's CPU % is a
    column, noted from 85 %."""
    results = [
        b("pyswoole", 223_000),
        b("slow", 150_000),
        h("pyswoole", 178_200, 80.0, 300.0),
        h("slow", 178_200, 93.0, 9000.0),
    ]
    over = annotate(results)
    assert [r.over_own_b for r in results[2:]] == [False, True]
    assert results[3].own_b_msgs_per_s == 150_000
    assert over == [
        "slow H90: ↑ offered 178,200 msg/s, 119% of its own B (150,000 msg/s): more than it "
        "echoes closed-loop (see late_sends/unanswered)"
    ]
    rows = ["pyswoole", "slow"]
    text = render(rows, expand(["H90"]), results, {"latency": "offered to every server: X"})
    assert "open-loop latency (wsload -r, from the scheduled send time); offered to every" in text
    assert "H90 90% client CPU %" in text
    assert "| pyswoole | 50.0 | 300 | 300 | 300 | 178200 | 80.0 |" in text
    assert "| slow | 50.0 ↑ |" in text
    found = notes(rows, results)
    assert any(n.startswith("slow H90: wsload used 93% of its core (>= 85%)") for n in found)
    assert not any(n.startswith("pyswoole H90: wsload used") for n in found)
