"""Trust-store and verifier figures for ``make bench`` (issue #3).

- ``verify_chain_capability_call``: one ``CertVerifier.verifyChain`` on
  the google.com chain against the Mozilla store, both held as
  capabilities in this process, with the verifier's anchor cache warm
  (the store unchanged since the first call), against pyca's verifier
  alone on the same chain and store, in the same run;
- ``verify_chain_two_party_rpc``: the same call with the verifier and
  the trust store each behind a real socketpair (two-party RPC), as
  between guest processes; the peer is the same pyca figure.

Medians of :data:`N` calls; nothing here is asserted.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from pathlib import Path
from typing import Any

from tests.services.x509.rpc import serve

REPO = Path(__file__).resolve().parent.parent
CHAIN = REPO / "tests" / "vectors" / "chains" / "google.com.pem"
HOST = "google.com"
AT = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
N = 300


async def _time_calls(verifier: Any, trust: Any, chain: Any) -> list[float]:
    at = int(AT.timestamp())

    async def once() -> None:
        outcome = (await verifier.verifyChain(
            chain=chain, trust=trust, purpose="tlsServerAuth",
            atEpochSeconds=at, hostname=HOST)).outcome
        if outcome.which() != "valid":
            raise RuntimeError(
                f"benchmark chain did not verify: {outcome.invalid.detail}")

    await once()  # fills the anchor cache
    times = []
    for _ in range(N):
        t0 = time.perf_counter()
        await once()
        times.append(time.perf_counter() - t0)
    return times


def _capability_times(two_party: bool) -> list[float]:
    from services._runtime import loop
    from services._runtime.audit import MemoryAuditSink
    from services._runtime.clock import SystemClock
    from services._runtime.schema import pki
    from services.x509.chain_impl import CertificateChainImpl
    from services.x509.model import parse_certificate
    from services.x509.policy import PRESETS
    from services.x509.trust import TrustStoreCore
    from services.x509.truststore_impl import TrustStoreImpl
    from services.x509.verifier_impl import CertVerifierImpl
    from tools import verify

    ders = verify.read_certs(CHAIN)
    verifier_impl = CertVerifierImpl(
        PRESETS["webPkiLenient"], audit=MemoryAuditSink(),
        clock=SystemClock(), name="bench")
    store = TrustStoreImpl(TrustStoreCore(verify.mozilla_anchors()))
    chain = CertificateChainImpl([parse_certificate(d) for d in ders])

    async def main() -> list[float]:
        if not two_party:
            return await _time_calls(
                pki().CertVerifier._new_client(verifier_impl),
                pki().TrustStore._new_client(store),
                pki().CertificateChain._new_client(chain))
        async with serve(verifier_impl, pki().CertVerifier) as v, \
                serve(store, pki().TrustStore) as t:
            return await _time_calls(v, t, chain)

    times = loop.run(main())
    if verifier_impl.cache_stats.fills != 1:
        raise RuntimeError("anchor cache was refilled during the bench")
    return times


def _pyca_times() -> list[float]:
    from cryptography import x509
    from cryptography.x509 import verification as pv

    from tools import verify

    ders = verify.read_certs(CHAIN)
    store = pv.Store([a.cert.cert for a in verify.mozilla_anchors()])
    leaf = x509.load_der_x509_certificate(ders[0])
    inter = [x509.load_der_x509_certificate(d) for d in ders[1:]]
    times = []
    for _ in range(N):
        t0 = time.perf_counter()
        (pv.PolicyBuilder().store(store).time(AT)
         .build_server_verifier(x509.DNSName(HOST))).verify(leaf, inter)
        times.append(time.perf_counter() - t0)
    return times


def figures() -> None:
    from tools.bench import line

    bare = statistics.median(_pyca_times()) * 1000
    local = statistics.median(_capability_times(two_party=False)) * 1000
    remote = statistics.median(_capability_times(two_party=True)) * 1000
    line("verify_chain_capability_call", local, "ms", ("pyca alone", bare))
    line("verify_chain_two_party_rpc", remote, "ms", ("pyca alone", bare))


if __name__ == "__main__":
    figures()
