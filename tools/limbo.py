"""Run the x509-limbo corpus through the project's verifier.

Every testcase of ``tests/vectors/limbo/limbo.json.xz`` (schema version 1)
becomes one ``verifyChain`` call on a ``CertVerifier`` capability, the
same code path a capability caller takes: the chain and the trust store
are ``CertificateChain`` and ``TrustStore`` capabilities and the policy
layer (:mod:`services.x509.policy`) decides. :func:`run_policy` runs the
same cases through the policy layer without Cap'n Proto and
:func:`run_pyca` through bare ``cryptography.x509.verification``, for the
benchmark (tools/bench_verifier.py).

How a testcase maps onto the schema:

- ``validation_kind`` SERVER is purpose ``tlsServerAuth`` with the
  ``expected_peer_name`` as the hostname; CLIENT is ``tlsClientAuth`` with
  the ``expected_peer_names`` as the reference identities, comma joined.
- ``validation_time`` is ``atEpochSeconds``; ``null`` ("verify now") is 0,
  so the verifier reads its injected clock (the system clock here).
- The policy is the ``webPkiLenient`` preset with no clock skew (the
  corpus names exact instants), the CA/B root profile of
  ``webPkiStrict`` (the corpus tests the web PKI) and, when
  ``max_chain_depth`` is set, a
  ``maxChainLength`` of that many intermediates plus the leaf and the
  anchor (the schema counts certificates on the built path).
- ``crls`` go into a ``CrlStore`` capability the case's verifier is
  minted with, under ``requireOcsp`` (hard-fail revocation: the corpus
  expects an unusable CRL to fail the chain).
- ``extended_key_usage`` is implied by the purpose (serverAuth for
  SERVER, clientAuth for CLIENT, the only values the corpus uses) and
  checked to be so; ``key_usage`` (digitalSignature, two online cases)
  is what the web-PKI leaf profile asks anyway.

Usage: ``python -m tools.limbo [--json logs/limbo/results.json]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import ipaddress
import json
import lzma
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests/vectors/limbo/limbo.json.xz"
RESULTS = REPO / "logs/limbo/results.json"

#: The one skip list: testcase id -> why the project does not run it.
SKIP: dict[str, str] = {
    "rfc5280::ca-as-leaf":
        "conflicts with webpki::ca-as-leaf; the CA/B leaf profile applies",
    "rfc5280::eku::ee-without-eku":
        "conflicts with webpki::eku::ee-without-eku; server leaves need EKU",
    "rfc5280::nc::permitted-dns-match-noncritical":
        "conflicts with webpki::nc::permitted-dns-match-noncritical",
    "pathlen::validation-ignores-pathlen-in-leaf":
        "a CA certificate as the leaf, which webpki::ca-as-leaf refuses",
    "rfc5280::nc::permitted-dn-match":
        "SERVER case without a peer name; tlsServerAuth needs a hostname",
    "rfc5280::ski::root-missing-ski":
        "anchors need no SKI (RFC 5280 6.1.1 d); a Mozilla root lacks one",
    "rfc5280::aki::cross-signed-root-missing-aki":
        "contradicts cve::cve-2024-0567, whose anchor also lacks an AKI",
    "pathlen::self-issued-certs-pathlen":
        "pyca counts self-issued CAs against pathLenConstraint, no opt-out",
    "webpki::cn::not-in-san":
        "contradicts rfc5280::nc::permitted-dns-match-more (CN not in SAN)",
    "webpki::cn::punycode-not-in-san":
        "contradicts rfc5280::nc::permitted-dns-match-more (CN not in SAN)",
}

#: The EKU each validation kind implies (the corpus's only values).
KIND_EKU = {"SERVER": "serverAuth", "CLIENT": "clientAuth"}


@dataclasses.dataclass(frozen=True)
class Case:
    """One limbo testcase, reduced to what ``verifyChain`` takes."""

    id: str
    expected: str  # "SUCCESS" or "FAILURE"
    purpose: str
    hostname: str
    at: dt.datetime | None
    max_chain_depth: int | None
    leaf: bytes
    intermediates: tuple[bytes, ...]
    anchors: tuple[bytes, ...]
    extended_key_usage: tuple[str, ...]
    crls: tuple[bytes, ...] = ()


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """The verdict on one testcase."""

    id: str
    expected: str
    actual: str  # "SUCCESS", "FAILURE" or "SKIPPED"
    reason: str
    detail: str

    @property
    def verdict(self) -> str:
        if self.actual == "SKIPPED":
            return "skipped"
        if self.actual == "ERROR":
            return "error"
        if self.actual == self.expected:
            return "agree"
        return "wrong_accept" if self.actual == "SUCCESS" else "wrong_reject"


def _pem_to_der(pem: str) -> bytes:
    import base64
    body = "".join(line for line in pem.strip().splitlines()
                   if not line.startswith("-----"))
    return base64.b64decode(body)


def _peer(name: dict[str, str] | None) -> str:
    if not name:
        return ""
    return str(name["value"])


def load(path: Path = CORPUS) -> list[Case]:
    """Every testcase of the corpus as a :class:`Case`."""
    with lzma.open(path) as fh:
        corpus = json.load(fh)
    if corpus.get("version") != 1:
        raise ValueError(f"limbo schema version {corpus.get('version')}")
    cases = []
    for tc in corpus["testcases"]:
        kind = tc["validation_kind"]
        if kind == "SERVER":
            purpose, host = "tlsServerAuth", _peer(tc["expected_peer_name"])
        elif kind == "CLIENT":
            purpose = "tlsClientAuth"
            host = ",".join(n["value"] for n in tc["expected_peer_names"])
        else:
            raise ValueError(f"{tc['id']}: validation_kind {kind}")
        if set(tc["extended_key_usage"]) - {KIND_EKU[kind]}:
            raise ValueError(f"{tc['id']}: EKU {tc['extended_key_usage']}")
        if tc["signature_algorithms"]:
            raise ValueError(f"{tc['id']}: signature_algorithms set")
        when = tc["validation_time"]
        cases.append(Case(
            id=tc["id"], expected=tc["expected_result"], purpose=purpose,
            hostname=host,
            at=dt.datetime.fromisoformat(when) if when else None,
            max_chain_depth=tc["max_chain_depth"],
            leaf=_pem_to_der(tc["peer_certificate"]),
            intermediates=tuple(_pem_to_der(p)
                                for p in tc["untrusted_intermediates"]),
            anchors=tuple(_pem_to_der(p) for p in tc["trusted_certs"]),
            extended_key_usage=tuple(tc["extended_key_usage"]),
            crls=tuple(_pem_to_der(p) for p in tc["crls"]),
        ))
    return cases


def policy_for(case: Case) -> Any:
    """The ``VerificationPolicy`` a testcase runs under."""
    return _policy(case.max_chain_depth, bool(case.crls))


@functools.cache
def _policy(max_chain_depth: int | None, crls: bool) -> Any:
    # One immutable policy per shape, as a deployment mints a verifier
    # once per policy (run_capability keeps one verifier per policy).
    from services.x509.policy import WEB_PKI_LENIENT
    policy = dataclasses.replace(WEB_PKI_LENIENT, clock_skew_seconds=0,
                                 cabf_root_profile=True)
    if max_chain_depth is not None:
        policy = dataclasses.replace(
            policy, max_chain_length=min(max_chain_depth + 2, 255))
    if crls:
        # A case that supplies CRLs expects hard-fail revocation: an
        # unusable CRL is no evidence, and then the chain must fail
        # (field report 13a: "under hard-fail it fails").
        policy = dataclasses.replace(policy, require_ocsp=True)
    return policy


def _skipped(case: Case) -> CaseResult:
    return CaseResult(case.id, case.expected, "SKIPPED", "", SKIP[case.id])


def run_capability(cases: Sequence[Case]) -> list[CaseResult]:
    """Every case through a ``CertVerifier`` capability, in-process."""
    import capnp

    from services._runtime import loop
    from services._runtime.audit import MemoryAuditSink
    from services._runtime.clock import SystemClock, epoch_seconds
    from services._runtime.schema import pki
    from services.x509.chain_impl import CertificateChainImpl
    from services.x509.errors import ServiceError
    from services.x509.model import parse_certificate
    from services.x509.trust import Anchor, TrustStoreCore
    from services.x509.truststore_impl import TrustStoreImpl
    from services.x509.verifier_impl import CertVerifierImpl

    schema = pki()
    verifiers: dict[Any, Any] = {}

    def crl_store(case: Case) -> Any:
        """A CrlStore serving the case's CRLs for the CAs they name."""
        from cryptography import x509

        from services.crl.store_impl import CrlCache, CrlStoreImpl
        from services.crl.transport import CallableCrlSource
        by_issuer = {x509.load_der_x509_crl(d).issuer.public_bytes(): d
                     for d in case.crls}
        cas = [x509.load_der_x509_certificate(d)
               for d in (*case.anchors, *case.intermediates)]
        issuers = [c for c in cas if c.subject.public_bytes() in by_issuer]
        cache = CrlCache(issuers, CallableCrlSource(
            lambda issuer: by_issuer[issuer.subject.public_bytes()]),
            SystemClock())
        return schema.CrlStore._new_client(CrlStoreImpl(
            cache, audit=MemoryAuditSink(), clock=SystemClock()))

    def verifier_for(case: Case) -> Any:
        policy = policy_for(case)
        if case.crls:
            return schema.CertVerifier._new_client(CertVerifierImpl(
                policy, audit=MemoryAuditSink(), clock=SystemClock(),
                service="limbo", crl_store=crl_store(case)))
        if policy not in verifiers:
            verifiers[policy] = schema.CertVerifier._new_client(
                CertVerifierImpl(policy, audit=MemoryAuditSink(),
                                 clock=SystemClock(), service="limbo"))
        return verifiers[policy]

    async def one(case: Case) -> CaseResult:
        try:
            chain = [parse_certificate(d)
                     for d in (case.leaf, *case.intermediates)]
            anchors = [parse_certificate(d) for d in case.anchors]
        except ServiceError as err:
            # The certificate capability cannot even be minted: the
            # project refuses the input before verification.
            return CaseResult(case.id, case.expected, "FAILURE",
                              err.reason.value, err.detail)
        chain_cap = schema.CertificateChain._new_client(
            CertificateChainImpl(chain))
        trust_cap = schema.TrustStore._new_client(TrustStoreImpl(
            TrustStoreCore(tuple(Anchor(a, a.subject.rfc4514)
                                 for a in anchors))))
        at = epoch_seconds(case.at) if case.at else 0
        try:
            reply = await verifier_for(case).verifyChain(
                chain=chain_cap, trust=trust_cap, purpose=case.purpose,
                atEpochSeconds=at, hostname=case.hostname)
        except capnp.KjException as err:
            # A verifier that raises instead of answering is a bug.
            return CaseResult(case.id, case.expected, "ERROR", "",
                              str(err)[:200])
        out = reply.outcome
        if out.which() == "valid":
            return CaseResult(case.id, case.expected, "SUCCESS", "", "")
        return CaseResult(case.id, case.expected, "FAILURE",
                          str(out.invalid.reason), out.invalid.detail)

    async def main() -> list[CaseResult]:
        results = []
        for case in cases:
            if case.id in SKIP:
                results.append(_skipped(case))
            else:
                results.append(await one(case))
        return results

    return loop.run(main())


def run_policy(cases: Sequence[Case], now: dt.datetime) -> list[CaseResult]:
    """Every case through :func:`services.x509.policy.verify_chain`."""
    from services.x509.errors import ServiceError
    from services.x509.model import parse_certificate
    from services.x509.policy import verify_chain

    results = []
    for case in cases:
        if case.id in SKIP:
            results.append(_skipped(case))
            continue
        try:
            chain = [parse_certificate(d)
                     for d in (case.leaf, *case.intermediates)]
            anchors = [parse_certificate(d) for d in case.anchors]
            verify_chain(chain[0], chain[1:], anchors, case.purpose,
                         case.at or now, case.hostname, policy_for(case),
                         case.crls)
        except ServiceError as err:
            results.append(CaseResult(case.id, case.expected, "FAILURE",
                                      err.reason.value, err.detail))
            continue
        results.append(CaseResult(case.id, case.expected, "SUCCESS", "",
                                  ""))
    return results


def run_pyca(cases: Sequence[Case], now: dt.datetime) -> list[CaseResult]:
    """Every case through bare ``cryptography.x509.verification``."""
    import warnings

    from cryptography import x509
    from cryptography.utils import CryptographyDeprecationWarning
    from cryptography.x509 import verification as pv

    results = []
    warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning)
    for case in cases:
        if case.id in SKIP:
            results.append(_skipped(case))
            continue
        try:
            leaf = x509.load_der_x509_certificate(case.leaf)
            inter = [x509.load_der_x509_certificate(d)
                     for d in case.intermediates]
            store = pv.Store([x509.load_der_x509_certificate(d)
                              for d in case.anchors])
            builder = pv.PolicyBuilder().store(store).time(case.at or now)
            if case.max_chain_depth is not None:
                builder = builder.max_chain_depth(case.max_chain_depth)
            if case.purpose == "tlsServerAuth":
                try:
                    subject: Any = x509.IPAddress(
                        ipaddress.ip_address(case.hostname))
                except ValueError:
                    subject = x509.DNSName(case.hostname)
                builder.build_server_verifier(subject).verify(leaf, inter)
            else:
                builder.build_client_verifier().verify(leaf, inter)
        except (ValueError, pv.VerificationError) as err:
            results.append(CaseResult(case.id, case.expected, "FAILURE",
                                      "", str(err)[:200]))
            continue
        results.append(CaseResult(case.id, case.expected, "SUCCESS", "",
                                  ""))
    return results


def counts(results: Iterable[CaseResult]) -> Counter[str]:
    tally = Counter(r.verdict for r in results)
    for key in ("agree", "wrong_accept", "wrong_reject", "skipped",
                "error"):
        tally.setdefault(key, 0)
    return tally


def summary(results: Iterable[CaseResult]) -> str:
    """The one line ``make test`` prints."""
    c = counts(results)
    return (f"limbo: agree={c['agree']} wrong_accept={c['wrong_accept']} "
            f"wrong_reject={c['wrong_reject']} skipped={c['skipped']}")


def write_results(results: Sequence[CaseResult], path: Path = RESULTS,
                  harness: str = "capos-certverifier") -> None:
    """Per-case results, machine-readable, in limbo's result shape."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "version": 1,
        "harness": harness,
        "summary": dict(counts(results)),
        "results": [
            {"id": r.id, "expected_result": r.expected,
             "actual_result": r.actual, "verdict": r.verdict,
             "reason": r.reason, "context": r.detail}
            for r in results
        ],
    }
    path.write_text(json.dumps(doc, indent=1) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=RESULTS,
                        help="where to write per-case results")
    parser.add_argument("--only", default="",
                        help="run only ids starting with this prefix")
    args = parser.parse_args(argv)
    cases = [c for c in load() if c.id.startswith(args.only)]
    results = run_capability(cases)
    write_results(results, args.json)
    for r in results:
        if r.verdict in ("wrong_accept", "wrong_reject", "error"):
            print(f"{r.verdict}: {r.id} {r.reason} {r.detail[:100]}")
    print(summary(results))
    c = counts(results)
    return 1 if c["wrong_accept"] or c["wrong_reject"] or c["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
