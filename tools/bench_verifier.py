"""``make bench`` figures for the verifier (issue #3).

The whole x509-limbo corpus through the project's verifier in-process
(the policy layer of :mod:`services.x509.policy`, parsing included, no
Cap'n Proto) and through bare ``cryptography.x509.verification`` in the
same run, each certificate parsed from DER by each side; plus one line
for the corpus over the ``CertVerifier`` capability. Measurements only;
nothing is asserted.
"""

from __future__ import annotations

import time

from tools.bench import line


def figures() -> None:
    from services._runtime.clock import SystemClock
    from tools import limbo

    cases = limbo.load()
    now = SystemClock().now()
    limbo.run_pyca(cases[:200], now)  # warm imports and caches alike
    limbo.run_policy(cases[:200], now)
    t0 = time.perf_counter()
    limbo.run_pyca(cases, now)
    bare = time.perf_counter() - t0
    t0 = time.perf_counter()
    limbo.run_policy(cases, now)
    policy = time.perf_counter() - t0
    line("limbo_policy_layer", policy, "s", ("pyca alone", bare))
    t0 = time.perf_counter()
    limbo.run_capability(cases)
    line("limbo_capability_calls", time.perf_counter() - t0, "s")


if __name__ == "__main__":
    figures()
