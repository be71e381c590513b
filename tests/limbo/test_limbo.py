"""The whole x509-limbo corpus through the ``CertVerifier`` capability.

One test runs every testcase (tools/limbo.py maps each onto a
``verifyChain`` call), writes logs/limbo/results.json, and fails on any
wrong accept, wrong reject, verifier error, or more than ten skips. The
summary line ``limbo: agree=N wrong_accept=N wrong_reject=N skipped=N``
is printed at the end of the pytest run.
"""

from __future__ import annotations

from tests.limbo import conftest
from tools import limbo


def test_skip_list_is_explicit_and_short() -> None:
    assert len(limbo.SKIP) <= 10
    ids = {c.id for c in limbo.load()}
    for case_id, reason in limbo.SKIP.items():
        assert case_id in ids, case_id
        assert reason and "\n" not in reason, case_id


def test_limbo_corpus() -> None:
    cases = limbo.load()
    assert len(cases) == 9780
    results = limbo.run_capability(cases)
    limbo.write_results(results)
    conftest.SUMMARY.append(limbo.summary(results))
    counts = limbo.counts(results)
    wrong = [f"{r.verdict} {r.id}: {r.reason} {r.detail[:80]}"
             for r in results
             if r.verdict in ("wrong_accept", "wrong_reject", "error")]
    assert not wrong, "\n".join(wrong[:40])
    assert counts["skipped"] <= 10
    assert counts["agree"] + counts["skipped"] == len(cases)
