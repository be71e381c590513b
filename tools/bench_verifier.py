"""``make bench`` figures for the verifier (issue #3).

The whole x509-limbo corpus through the project's verifier in-process
(the policy layer of :mod:`services.x509.policy`, parsing included, no
Cap'n Proto) and through bare ``cryptography.x509.verification`` in the
same run, each certificate parsed from DER by each side (the median of
:data:`RUNS` alternated runs of each); plus one line
for the corpus over the ``CertVerifier`` capability. Measurements only;
nothing is asserted.
"""

from __future__ import annotations

import statistics
import time

from tools.bench import line

#: Alternated runs of each side over the whole corpus.
RUNS = 5


def figures() -> None:
    from services._runtime.clock import SystemClock
    from tools import limbo

    cases = limbo.load()
    now = SystemClock().now()
    limbo.run_pyca(cases[:200], now)  # warm imports and caches alike
    limbo.run_policy(cases[:200], now)
    # The two sides alternate, RUNS times each, and each figure is its
    # median: this machine's speed drifts by tens of percent within a
    # minute, and one run of each, back to back, measured the drift.
    bare_runs, policy_runs = [], []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        limbo.run_pyca(cases, now)
        bare_runs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        limbo.run_policy(cases, now)
        policy_runs.append(time.perf_counter() - t0)
    line("limbo_policy_layer", statistics.median(policy_runs), "s",
         ("pyca alone", statistics.median(bare_runs)))
    t0 = time.perf_counter()
    limbo.run_capability(cases)
    line("limbo_capability_calls", time.perf_counter() - t0, "s")


if __name__ == "__main__":
    figures()
