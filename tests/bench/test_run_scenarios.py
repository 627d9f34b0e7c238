"""bench/run.py's Performance II scenarios (Bz, Fz, Gz, Bw, Ew, H50/H90, F100k) end to end at
smoke sizes against pyswoole (and pyswoole with worker_num=2 for F100k), plus the report's
tables and the ``--plot`` chart from fixed results.

One smoke run (module fixture) builds wsload, makes the bench's TLS certificate, measures
each scenario once and writes the JSON; the tests read it. Numbers are judged only for
sanity (a compression ratio below 1 on JSON, handshakes over TLS, ordered percentiles), not
for speed. If this wsload build lacks a flag a scenario needs, the tests that need it skip
with the flag's name (the harness skips the scenario the same way).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
RUN = BENCH / "run.py"
TIMEOUT = 240  # seconds for the whole smoke run
SCENARIOS = "Bz,Fz,Gz,Bw,Ew,H,F100k"  # no B: H measures it first (the probe path)
SMOKE_SCALE_CONNS = 300  # harness/scenarios.py SMOKE.scale_conns

sys.path.insert(0, str(BENCH))
from harness import plot  # noqa: E402
from harness.features import FEATURES, wsload_features  # noqa: E402
from harness.report import RunResult, render  # noqa: E402
from harness.scenarios import SCENARIOS as ALL  # noqa: E402
from harness.scenarios import expand  # noqa: E402
from harness.wsload import WSLOAD, build  # noqa: E402


@pytest.fixture(scope="module")
def features() -> set[str]:
    build()
    return wsload_features(WSLOAD)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``--smoke`` run of the new scenarios; its JSON, stdout and the chart's path."""
    out = tmp_path_factory.mktemp("p2")
    results, chart = out / "smoke.json", out / "chart.png"
    done = subprocess.run(
        [
            *(sys.executable, str(RUN), "--smoke", "--servers", "pyswoole,pyswoole-w2"),
            *("--scenarios", SCENARIOS, "--json", str(results), "--plot", str(chart)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    document: dict[str, Any] = json.loads(results.read_text())
    document["stdout"], document["stderr"], document["chart"] = done.stdout, done.stderr, chart
    return document


def need(features: set[str], *names: str) -> None:
    for name in names:
        if name not in features:
            pytest.skip(f"wsload lacks {FEATURES[name]}")


def run_of(document: dict[str, Any], contender: str, scenario: str) -> dict[str, Any]:
    """The one kept run of (contender, scenario), checked to have no error."""
    runs = [
        r
        for r in document["runs"]
        if r["contender"] == contender and r["scenario"] == scenario and not r["discarded"]
    ]
    assert len(runs) == 1, runs
    assert runs[0]["error"] == "", (runs[0]["error"], runs[0]["server_log_tail"])
    return runs[0]


@pytest.mark.timeout(TIMEOUT + 60)
def test_compressed_json_echo(smoke: dict[str, Any], features: set[str]) -> None:
    need(features, "deflate", "json")
    run = run_of(smoke, "pyswoole", "Bz")
    values, report = run["values"], run["wsload"]
    assert report["deflate"], report
    assert values["msgs_per_s"] > 0
    assert 0 < values["ratio_recv"] < 1, report  # JSON chat messages compress
    assert 0 < report["ratio_sent"] < 1, report
    assert values["server_cpu_us"] > 0
    assert "active_kib_per_conn" in values
    assert run["rss_active_kib"] > 0


@pytest.mark.timeout(TIMEOUT + 60)
def test_compressed_idle_and_broadcast(smoke: dict[str, Any], features: set[str]) -> None:
    need(features, "deflate", "json")
    idle = run_of(smoke, "pyswoole", "Fz")
    assert idle["wsload"]["deflate"]
    assert idle["wsload"]["established"] == idle["wsload"]["conns"]
    assert "kib_per_conn" in idle["values"]
    fan = run_of(smoke, "pyswoole", "Gz")
    assert fan["wsload"]["deflate"]
    assert fan["values"]["deliveries_per_s"] > 0
    assert 0 < fan["values"]["ratio_recv"] < 1, fan["wsload"]


@pytest.mark.timeout(TIMEOUT + 60)
def test_tls(smoke: dict[str, Any], features: set[str]) -> None:
    need(features, "tls")
    echo = run_of(smoke, "pyswoole", "Bw")
    assert echo["wsload"]["tls"], echo["wsload"]
    assert echo["wsload"]["url"].startswith("wss://")
    assert echo["values"]["msgs_per_s"] > 0
    connect = run_of(smoke, "pyswoole", "Ew")
    assert connect["wsload"]["tls"]
    assert connect["values"]["handshakes_per_s"] > 0
    assert connect["wsload"]["handshakes"] > 0
    assert connect["values"]["server_cpu_us"] > 0


@pytest.mark.timeout(TIMEOUT + 60)
def test_open_loop_latency(smoke: dict[str, Any], features: set[str]) -> None:
    """No B selected, no picows: each server's B is probed once and both servers are
    offered the same rate, load x the lower B (harness/openloop.py)."""
    need(features, "echo_rate")
    probes = {r["contender"]: r for r in smoke["runs"] if r["scenario"] == "B"}
    assert len([r for r in smoke["runs"] if r["scenario"] == "B"]) == 2, probes
    assert all(r["discarded"].startswith("probe") for r in probes.values()), probes
    b = {name: r["values"]["msgs_per_s"] for name, r in probes.items()}
    reference = min(b, key=b.__getitem__)
    meta = smoke["meta"]["open_loop"]
    assert meta["reference"] == reference and meta["base"] == b[reference], meta
    for key, load in (("H50", 0.5), ("H90", 0.9)):
        runs = [run_of(smoke, name, key) for name in ("pyswoole", "pyswoole-w2")]
        assert runs[0]["offered_rate"] == runs[1]["offered_rate"] == meta["offered"][key]
        for run in runs:
            values, report = run["values"], run["wsload"]
            assert report["offered_rate"] == pytest.approx(b[reference] * load, rel=0.01, abs=1)
            assert report["achieved_rate"] > 0 and values["msgs_per_s"] > 0
            assert values["p50_us"] <= values["p99_us"] <= values["p999_us"] <= values["max_us"]
            assert values["p50_us"] > 0
            assert values["client_cpu_pct"] == report["cpu_pct"]
    assert f"offered to every server: H50 {meta['offered']['H50']:,} msg/s" in smoke["stdout"]


@pytest.mark.timeout(TIMEOUT + 60)
@pytest.mark.parametrize("contender", ["pyswoole", "pyswoole-w2"])
def test_many_connections(smoke: dict[str, Any], features: set[str], contender: str) -> None:
    need(features, "sources")
    run = run_of(smoke, contender, "F100k")
    values, report = run["values"], run["wsload"]
    assert report["receivers"] == SMOKE_SCALE_CONNS
    assert values["established_receivers"] == SMOKE_SCALE_CONNS, report
    assert report["src_addrs"] == 2  # SMOKE.scale_sources: 127.0.0.1-127.0.0.2
    assert run["rss_held_kib"] > 0 and "kib_per_conn" in values
    assert values["accept_s"] > 0
    assert report["deliveries_per_s"] > 0 and report["deliveries"] > 0
    assert values["last_arrival_ms"] > 0
    assert values["broadcast_deliveries_per_s"] == pytest.approx(
        SMOKE_SCALE_CONNS / (values["last_arrival_ms"] / 1000), rel=1e-6
    )


@pytest.mark.timeout(TIMEOUT + 60)
def test_tables_and_chart(smoke: dict[str, Any], features: set[str]) -> None:
    need(features, "tls")  # so that some scenario ran
    out = smoke["stdout"]
    assert "| pyswoole |" in out and "| pyswoole-w2 |" in out
    assert "Server CPU (user + system, µs) per operation" in out
    assert smoke["meta"]["wsload_features"] is not None
    assert smoke["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def fake(contender: str, scenario: str, **values: float) -> RunResult:
    return RunResult(contender, scenario, 0, values=dict(values))


def test_render_and_plot_from_fixed_results(tmp_path: Path) -> None:
    """The tables and the chart from hand-made results: n/a and skipped cells, ratios."""
    rows = ["pyswoole", "picows"]
    selected = expand(["B", "Bz", "H", "Ew"])
    assert [s.key for s in selected] == ["B", "Bz", "Ew", "H50", "H90"]
    results = [
        fake("pyswoole", "B", msgs_per_s=100.0, server_cpu_us=10.0),
        fake("picows", "B", msgs_per_s=150.0, server_cpu_us=6.0),
        fake("pyswoole", "Bz", msgs_per_s=50.0, ratio_recv=0.4, server_cpu_us=20.0),
        RunResult("picows", "Bz", 0, error="n/a: no permessage-deflate"),
        RunResult("pyswoole", "Ew", 0, error="skipped: wsload lacks wss:// URLs (TLS)"),
        RunResult("picows", "Ew", 0, error="skipped: wsload lacks wss:// URLs (TLS)"),
        fake("pyswoole", "H50", p50_us=10, p99_us=40, p999_us=50, max_us=60, msgs_per_s=50),
        fake("picows", "H50", p50_us=20, p99_us=20, p999_us=30, max_us=90, msgs_per_s=75),
    ]
    text = render(rows, selected, results)
    assert "| picows | 150 |" in text
    assert "| picows | n/a: no permessage-deflate | n/a: no permessage-deflate |" in text
    assert "| pyswoole | 50.0 | 0.40 |" in text
    assert "Ew (TLS: E over wss://" in text and "Ew handshakes/s" not in text
    assert "H90 90% p99 µs" in text  # no result: "n/a" cells, the column stays
    # CPU per operation: H50 ran but has no CPU figure (under one tick): "—", not an error
    assert "| pyswoole | 10.0 | 20.0 | — | n/a |" in text
    reference, groups = plot.ratios(rows, selected, results)
    assert reference == "pyswoole"
    by_label = {label.split("\n")[0]: bars for label, bars in groups}
    assert by_label["B"] == {"pyswoole": 1.0, "picows": 1.5}
    assert by_label["Bz"] == {"pyswoole": 1.0}
    assert by_label["H50"] == {"pyswoole": 1.0, "picows": 0.5}  # p99 is H's headline
    assert "Ew" not in by_label and "H90" not in by_label
    chart = tmp_path / "chart.png"
    assert plot.draw(chart, rows, selected, results) == 3
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_scenario_needs_known_features() -> None:
    for scenario in ALL.values():
        assert set(scenario.needs) <= set(FEATURES), scenario.key
