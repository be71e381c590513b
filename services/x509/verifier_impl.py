"""``CertVerifier`` server: chain and signature verification.

Converts capnp arguments to :mod:`model` values (fetching the chain and
the trust store's anchors over RPC, so both may live in other
processes), calls :func:`services.x509.policy.verify_chain`, emits one
audit event per call, and returns a ``VerificationOutcome``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from services._runtime.audit import AuditEvent, AuditSink
from services._runtime.clock import Clock, epoch_seconds, from_epoch
from services._runtime.schema import pki
from services.x509.certificate_impl import CertificateImpl, write_name
from services.x509.errors import Reason, ServiceError
from services.x509.model import ParsedCertificate, parse_certificate
from services.x509.policy import VerificationPolicy, verify_chain
from services.x509.publickey_impl import verify_with


async def fetch_ders(certs: Any) -> list[bytes]:
    """DER of every Certificate cap in a list, calls pipelined."""
    replies = await asyncio.gather(*(c.der() for c in certs))
    return [bytes(r.encoded) for r in replies]


class CertVerifierImpl(pki().CertVerifier.Server):  # type: ignore[misc]
    """A verifier whose policy is fixed when it is minted."""

    def __init__(self, policy: VerificationPolicy, *, audit: AuditSink,
                 clock: Clock, ct_logs: Any = None,
                 service: str = "verifier", crl_store: Any = None) -> None:
        self._service = service
        self._policy = policy
        self._audit = audit
        self._clock = clock
        self._ct_logs = ct_logs
        self._crl_store = crl_store  # a CrlStore capability, or None
        # Parsed anchors by DER, so a repeat call does not re-parse.
        self._parsed: dict[bytes, ParsedCertificate] = {}

    def _parse(self, der: bytes) -> ParsedCertificate:
        cert = self._parsed.get(der)
        if cert is None:
            cert = parse_certificate(der)
            if len(self._parsed) < 4096:
                self._parsed[der] = cert
        return cert

    def _emit(self, operation: str, outcome: str, reason: str,
              subject: tuple[str, ...], detail: str) -> None:
        self._audit.emit(AuditEvent(
            at=self._clock.now(), service=self._service, capability="verifier",
            operation=operation, outcome=outcome, reason=reason,
            subject=subject, detail=detail))

    async def _crls_for(self, certs: list[ParsedCertificate]) -> list[bytes]:
        """The CRL store's CRL for each distinct issuer of ``certs``."""
        if self._crl_store is None:
            return []
        issuers = {c.issuer.der: c.issuer for c in certs}
        requests = []
        for name in issuers.values():
            request = self._crl_store.crlFor_request()
            write_name(request.init("issuer"), name)
            requests.append(request.send())
        replies = await asyncio.gather(*requests)
        return [bytes(r.crl) for r in replies if len(r.crl)]

    async def verifyChain(self, chain: Any, trust: Any, purpose: Any,
                          atEpochSeconds: int, hostname: str,
                          _context: Any, **kwargs: Any) -> None:
        purpose_name = str(purpose)
        at = (from_epoch(atEpochSeconds) if atEpochSeconds
              else self._clock.now())
        chain_caps, anchor_caps = await asyncio.gather(
            chain.certificates(), trust.anchors())
        chain_ders, anchor_ders = await asyncio.gather(
            fetch_ders(chain_caps.chain), fetch_ders(anchor_caps.certs))
        subject: tuple[str, ...] = ()
        out = _context.results.init("outcome")
        try:
            certs = [self._parse(d) for d in chain_ders]
            if not certs:
                raise ServiceError(Reason.policyViolation, "empty chain")
            subject = (certs[0].describe(),)
            anchors = [self._parse(d) for d in anchor_ders]
            crls = await self._crls_for(certs)
            result = verify_chain(certs[0], certs[1:], anchors,
                                  purpose_name, at, hostname, self._policy,
                                  crls)
        except ServiceError as err:
            failure = out.init("invalid")
            failure.reason = err.reason.value
            failure.detail = err.detail
            self._emit("verifyChain", "refused", err.reason.value, subject,
                       err.detail)
            return
        valid = out.init("valid")
        valid.anchor = CertificateImpl(result.anchor)
        valid.sctCount = result.sct_count
        # NOTE: no OCSP evidence is gathered in this phase; a stapled
        # response, when there is one, arrives with Phase 4.
        valid.ocspStatus = "stapledAbsent"
        valid.notAfter = epoch_seconds(result.not_after)
        self._emit("verifyChain", "ok", "",
                   subject + (f"anchor={result.anchor.sha256.hex()}",),
                   f"{purpose_name} {hostname}".strip())

    async def verifySignature(self, cert: Any, message: bytes,
                              signature: bytes, scheme: Any,
                              _context: Any, **kwargs: Any) -> bool:
        der = bytes((await cert.der()).encoded)
        try:
            parsed = self._parse(der)
        except ServiceError as err:
            self._emit("verifySignature", "refused", err.reason.value, (),
                       err.detail)
            return False
        ok = str(scheme) in self._policy.allowed_signature_schemes and (
            verify_with(parsed.cert.public_key(), bytes(message),
                        bytes(signature), str(scheme)))
        self._emit("verifySignature", "ok" if ok else "refused",
                   "" if ok else "signatureMismatch",
                   (parsed.describe(),), str(scheme))
        return ok

    async def policy(self, _context: Any, **kwargs: Any) -> None:
        p = self._policy
        out = _context.results.init("policy")
        out.minScts = p.min_scts
        if self._ct_logs is not None:
            out.ctLogs = self._ct_logs
        algs = out.init("allowedAlgorithms", len(p.allowed_algorithms))
        for i, name in enumerate(p.allowed_algorithms):
            algs[i] = name
        schemes = out.init("allowedSignatureSchemes",
                           len(p.allowed_signature_schemes))
        for i, name in enumerate(p.allowed_signature_schemes):
            schemes[i] = name
        out.requireOcsp = p.require_ocsp
        out.maxChainLength = p.max_chain_length
        out.permitNameConstraints = p.permit_name_constraints
        out.clockSkewSeconds = p.clock_skew_seconds
        out.staplingRequired = p.stapling_required


