"""The benchmark harness behind ``bench/run.py``: contenders, scenarios, processes, report.

Layout, in the order of a run: ``contenders`` (which servers and which interpreter runs
each), ``scenarios`` (what wsload is asked to do), ``processes`` (spawn, probe, measure and
stop a server), ``wsload`` (build and drive the load generator), ``features`` (the wsload
flags, TLS certificate and file limit the Performance II scenarios need), ``openloop``
(the rate H offers every server), ``report`` (the tables and the JSON file), ``plot``
(``--plot``'s chart).
"""

from __future__ import annotations


class BenchError(Exception):
    """A run could not produce a number; the message is short enough for a table cell."""
