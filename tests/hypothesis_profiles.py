"""Hypothesis profiles for every property-based test (the fuzz tests in
tests/protocol/test_fuzz_*.py, and the runtime's in tests/runtime/test_flow.py); loaded by
tests/conftest.py, so whichever folder pytest collects, the profile is the same.

* ``ci`` (the default): deterministic (``derandomize``: the same examples on every run, so
  a red CI run is reproducible and a green one is not luck), no example database, no
  deadline (a 2-core CI machine is slow now and then; a deadline would only add flakiness).
  Sized so that all fuzz tests together take well under 25 s per build.
* ``long``: random, many examples, failures saved in ``.hypothesis/`` and replayed first on
  the next run. Selected with ``HYPOTHESIS_PROFILE=long``; ``scripts/fuzz`` runs it in both
  builds (see docs/fuzzing.md). ``PYSWOOLE_FUZZ_EXAMPLES`` sets its example count.

A test that is costlier per example than most asks for a fraction of the profile's count
with :func:`tests.protocol.strategies.budget`, so both profiles scale it alike.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

_SLOW_GENERATION = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.large_base_example,
]

settings.register_profile(
    "ci",
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=_SLOW_GENERATION,
    # explain (which lines a failure covers) costs seconds per failure and nothing when green
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("PYSWOOLE_FUZZ_EXAMPLES", "5000")),
    derandomize=False,
    deadline=None,
    print_blob=True,
    suppress_health_check=_SLOW_GENERATION,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
