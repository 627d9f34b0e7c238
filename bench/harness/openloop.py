"""H50/H90's offered rate: one rate for every server of a run.

Issue 17's target for H is "p99 <= 0.7x picows's *at the same offered rate*", so every
contender is offered the same msgs/s: ``scenario.load`` (0.5, 0.9) x one *reference* B
msgs/s, the median of that contender's B runs in this run. ``--h-reference`` picks it:

* ``SERVER`` (one of ``--servers``): that server's B;
* default: picows's B when picows is among the servers and its B produced a number, else
  the lowest B of the servers of the run (so no server is offered more than the slowest
  one's B; the reason is in the table's title and ``meta.open_loop``);
* ``own``: each server its own B (the bench's behaviour before the shared rate): the rows
  are then not at one offered rate, and the title says so.

The shared rate is decided once, at the first H run, and every H run of every repetition
uses it (run.py runs each repetition's H scenarios after every contender's other scenarios,
so the first repetition's B has run by then). A B that has not run (B not selected, or
every run of it failed) is measured first, once per server: a probe kept in the JSON with
``discarded`` = :data:`H_PROBE`, not in the table. A server whose own B is below the
offered rate still runs: its ``late_sends``/``unanswered`` show how far it fell behind and
:func:`annotate` marks it (``over_own_b``; the table's ``↑``, a note).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness import BenchError
from harness.report import RunResult
from harness.scenarios import Scenario

OWN = "own"  # --h-reference own: each server is offered a share of its own B
DEFAULT_REFERENCE = "picows"  # the peer issue 17's H target is stated against
H_PROBE = "probe: the B msg/s the H rates are based on"

#: run a B probe for a contender (the result goes into the run's results)
Probe = Callable[[str], None]


@dataclass(frozen=True)
class Offer:
    """The B msgs/s H's shared rates are based on, or why there is none."""

    reference: str = ""  # the contender whose B it is
    base: float = 0.0  # its median B msgs/s
    why: str = ""  # how the reference was chosen
    error: str = ""  # no reference: the H cells' error

    def rate(self, load: float) -> int:
        return max(1, round(self.base * load))


def b_rate(results: Sequence[RunResult], contender: str) -> float:
    """The median B msgs/s of ``contender`` so far in this run (0 if none); runs discarded
    as noisy do not count, H's own probes do."""
    rates = [
        r.values["msgs_per_s"]
        for r in results
        if r.contender == contender
        and r.scenario == "B"
        and r.ok
        and r.discarded in ("", H_PROBE)
        and "msgs_per_s" in r.values
    ]
    return statistics.median(rates) if rates else 0.0


def pick_reference(requested: str | None, servers: Sequence[str], b: Mapping[str, float]) -> Offer:
    """The shared offer from the B msgs/s known per server (missing or 0: no B).

    ``requested``: a server's name (``--h-reference``) or None for the default (picows if
    it has a B, else the lowest B among ``servers``).
    """
    if requested is not None:
        if b.get(requested, 0.0) > 0:
            return Offer(requested, b[requested], f"--h-reference {requested}")
        return Offer(error=f"no B msg/s of the H reference {requested} (--h-reference)")
    if b.get(DEFAULT_REFERENCE, 0.0) > 0 and DEFAULT_REFERENCE in servers:
        return Offer(DEFAULT_REFERENCE, b[DEFAULT_REFERENCE], "default: picows is selected")
    measured = {name: b[name] for name in servers if b.get(name, 0.0) > 0}
    if not measured:
        return Offer(error="no B msg/s to base the open-loop rate on")
    lowest = min(measured, key=measured.__getitem__)
    why = "default: the lowest B of the run"
    if DEFAULT_REFERENCE in servers:
        why += " (picows's B produced no number)"
    return Offer(lowest, measured[lowest], why)


class OpenLoopRates:
    """The ``-r`` of every H run in one bench run (see the module docstring)."""

    def __init__(self, requested: str | None, servers: Sequence[str]) -> None:
        self.requested = requested  # a server, OWN, or None (default)
        self.servers = list(servers)
        self.offer: Offer | None = None  # the shared one, once decided
        self.probed: set[str] = set()

    @property
    def own(self) -> bool:
        return self.requested == OWN

    def rate(
        self, scenario: Scenario, contender: str, results: list[RunResult], probe: Probe
    ) -> int:
        """``scenario``'s offered msgs/s for ``contender``; BenchError if there is no base."""
        if self.own:
            self._ensure_b(contender, results, probe)
            base = b_rate(results, contender)
            if not base:
                raise BenchError("no B msgs/s to base the open-loop rate on")
            return max(1, round(base * scenario.load))
        if self.offer is None:
            self.offer = self._decide(results, probe)
        if self.offer.error:
            raise BenchError(self.offer.error)
        return self.offer.rate(scenario.load)

    def _ensure_b(self, contender: str, results: list[RunResult], probe: Probe) -> None:
        """Probe ``contender``'s B unless it has one or was probed already in this run."""
        if not b_rate(results, contender) and contender not in self.probed:
            self.probed.add(contender)
            probe(contender)

    def _decide(self, results: list[RunResult], probe: Probe) -> Offer:
        first = [self.requested] if self.requested else []
        if not first and DEFAULT_REFERENCE in self.servers:
            first = [DEFAULT_REFERENCE]
        for name in first:
            self._ensure_b(name, results, probe)
        offer = pick_reference(self.requested, self.servers, self.b_rates(results))
        if offer.error and self.requested is None:  # the lowest B: every server needs one
            for name in self.servers:
                self._ensure_b(name, results, probe)
            offer = pick_reference(None, self.servers, self.b_rates(results))
        return offer

    def b_rates(self, results: Sequence[RunResult]) -> dict[str, float]:
        return {name: b_rate(results, name) for name in self.servers}

    def summary(
        self, scenarios: Sequence[Scenario], results: Sequence[RunResult]
    ) -> dict[str, Any]:
        """``meta.open_loop`` of the JSON: how the rates were chosen and what they were."""
        loads = [s for s in scenarios if s.load]
        document: dict[str, Any] = {
            "h_reference": self.requested or "default",
            "own_b_msgs_per_s": self.b_rates(results),
        }
        if self.own:
            document["offered"] = {
                name: {s.key: max(1, round(rate * s.load)) for s in loads}
                for name, rate in self.b_rates(results).items()
                if rate
            }
        elif self.offer is not None:
            document.update(asdict(self.offer))
            if not self.offer.error:
                document["offered"] = {s.key: self.offer.rate(s.load) for s in loads}
        return document

    def title(self, scenarios: Sequence[Scenario]) -> str:
        """What the H table's title adds: the offered rate(s) and how they were chosen."""
        loads = [s for s in scenarios if s.load]
        shares = " / ".join(f"{s.load * 100:.0f}%" for s in loads)
        if self.own:
            return (
                f"each server offered {shares} of its own B msg/s (--h-reference own): "
                "the rows are NOT at one offered rate"
            )
        if self.offer is None or self.offer.error:
            return ""
        rates = ", ".join(f"{s.key} {self.offer.rate(s.load):,} msg/s" for s in loads)
        return (
            f"offered to every server: {rates} = {shares} of {self.offer.reference}'s B "
            f"({self.offer.base:,.0f} msg/s; {self.offer.why})"
        )


def annotate(results: Sequence[RunResult]) -> list[str]:
    """Mark the H runs offered more than their server's own B (median over this run's B
    runs and probes); the notes that say so, one per (server, scenario)."""
    found: dict[tuple[str, str], str] = {}
    for result in results:
        if not result.offered_rate or result.discarded:
            continue
        own = b_rate(results, result.contender)
        result.own_b_msgs_per_s = own
        result.over_own_b = bool(own) and result.offered_rate > own
        if result.over_own_b:
            found[result.contender, result.scenario] = (
                f"{result.contender} {result.scenario}: ↑ offered {result.offered_rate:,} msg/s, "
                f"{100 * result.offered_rate / own:.0f}% of its own B ({own:,.0f} msg/s): "
                "more than it echoes closed-loop (see late_sends/unanswered)"
            )
    return list(found.values())
