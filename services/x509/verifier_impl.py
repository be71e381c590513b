"""``CertVerifier`` server: chain and signature verification.

Converts capnp arguments to :mod:`model` values (fetching the chain and
the trust store's anchors over RPC, so both may live in other
processes), enforces the anchors' metadata, calls
:func:`services.x509.policy.verify_chain`, writes one audit record per
call, and returns a ``VerificationOutcome`` carrying the verified path.

Anchor metadata (``TrustStore.anchorInfo``): an anchor is used only for
the purposes it is trusted for, and not for a leaf whose notBefore is
after its distrust-after date for the purpose
(:func:`services.x509.trust.usable_anchors`). Either way the anchor is
left out of path building, so such a chain fails ``unknownAnchor``, not
``policyViolation``: a root program's distrust-after removes the root as
an anchor for certificates issued later (NSS reports an untrusted
issuer), exactly as a root missing from the store, whereas
``policyViolation`` means this verifier's own policy refused a chain that
does reach a trusted anchor. The detail names the anchor and the date
when one of the left-out anchors would have verified the chain.

Anchor cache: the store's anchors are fetched and parsed once per
content, not per call. Each call asks the store for ``snapshot()``
(version and content digest, one small RPC) and looks the digest up; on
a miss it fetches ``anchorInfo`` and caches the parsed anchors under the
digest *it computes itself* from what it received, never under the
store's claim, so a store that lies about its digest cannot make another
caller's store resolve to its anchors. Any change to a store bumps its
version and changes its digest, so the next call misses and sees the
change. Outcomes are not cached: validity at ``at``, the chain, purpose
and hostname are checked on every call; only the anchors are reused.

Revocation (DESIGN.md section 6; RFC 6960, RFC 7633): evidence reaches
the verifier only through capabilities and arguments, never a URL it
fetches on its own authority. ``verifyChainWithStaple`` carries the OCSP
response the caller got in its TLS handshake (``verifyChain`` is the
same call with no staple). The ``CrlStore`` the verifier is minted with
gives the issuers' CRLs; the ``OcspResponder`` it is minted with is
asked for the leaf's status only when the staple and the CRLs do not
decide (no staple, or one that is not usable, and the leaf is not
short-lived). A verifier minted without a responder cannot fetch, so
it soft-fails, or fails ``ocspUnavailable`` under ``requireOcsp``. The
decision itself is :func:`services.x509.policy.decide_revocation`. A
soft-fail is reported: ``ValidChain.ocspStatus = responderUnreachable``
(``unknown`` if a responder said so), ``ValidChain.revocation`` starts
``softFail:`` with the notes, and the audit record's detail says
``revocation soft-fail`` and why.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
from typing import Any

from services._runtime import deferred
from services._runtime.audit import AuditEvent, AuditSink
from services._runtime.clock import Clock, epoch_seconds, from_epoch
from services._runtime.schema import pki
from services.ocsp import errors as ocsp_errors
from services.ocsp.transport import MAX_RESPONSE
from services.x509.boundary import reason_of
from services.x509.certificate_impl import CertificateImpl, write_name
from services.x509.errors import Reason, ServiceError, VerificationError
from services.x509.model import ParsedCertificate, parse_certificate
from services.x509.policy import (
    PRESETS,
    VerificationPolicy,
    VerifiedPath,
    build_path,
    decide_revocation,
)
from services.x509.publickey_impl import verify_with
from services.x509.trust import (
    Anchor,
    Excluded,
    PurposeView,
    content_digest,
    distrust,
    purpose_view,
    usable_anchors,
)

#: Anchor sets kept, one per distinct store content.
ANCHOR_CACHE_SIZE = 16
#: Anchors read from one store; Mozilla's program has about 150.
MAX_STORE_ANCHORS = 1024
#: Largest stapled response taken (the OCSP client's own limit).
MAX_STAPLE = MAX_RESPONSE


async def fetch_ders(certs: Any) -> list[bytes]:
    """DER of every Certificate cap in a list, calls pipelined."""
    replies = await asyncio.gather(*(c.der() for c in certs))
    return [bytes(r.encoded) for r in replies]


def preset_name(policy: VerificationPolicy) -> str:
    """The preset ``policy`` equals, or ``custom``."""
    return next((n for n, p in PRESETS.items() if p == policy), "custom")


@deferred.dataclass()
class _Entry:
    """One cached store content: its anchors and per-purpose views."""

    anchors: tuple[Anchor, ...]
    views: dict[str, PurposeView] = dataclasses.field(default_factory=dict)

    def view(self, purpose: str) -> PurposeView:
        view = self.views.get(purpose)
        if view is None:
            view = self.views[purpose] = purpose_view(self.anchors, purpose)
        return view


@deferred.dataclass(frozen=True)
class CacheStats:
    """How often the anchor cache answered (for tests and the bench)."""

    hits: int
    fills: int


class CertVerifierImpl(pki().CertVerifier.Server):  # type: ignore[misc]
    """A verifier whose policy is fixed when it is minted.

    :param name: the capability's label, recorded in every audit record
        (the verifier service uses the preset's name).
    :param policy_name: the preset name recorded in audit; by default
        the preset ``policy`` equals, or ``custom``.
    """

    def __init__(self, policy: VerificationPolicy, *, audit: AuditSink,
                 clock: Clock, ct_logs: Any = None,
                 service: str = "verifier", name: str = "verifier",
                 policy_name: str = "", crl_store: Any = None,
                 ocsp_responder: Any = None) -> None:
        self._service = service
        self._name = name
        self._policy = policy
        self._policy_name = policy_name or preset_name(policy)
        self._audit = audit
        self._clock = clock
        self._ct_logs = ct_logs
        self._crl_store = crl_store  # a CrlStore capability, or None
        # An OcspResponder capability, or None: then nothing is fetched.
        self._ocsp = ocsp_responder
        # Parsed certificates by DER, so a repeat call does not re-parse.
        self._parsed: dict[bytes, ParsedCertificate] = {}
        self._anchors: collections.OrderedDict[
            bytes, _Entry] = collections.OrderedDict()
        self._hits = 0
        self._fills = 0

    @property
    def cache_stats(self) -> CacheStats:
        return CacheStats(self._hits, self._fills)

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
            at=self._clock.now(), service=self._service,
            capability=self._name, operation=operation, outcome=outcome,
            reason=reason, subject=subject, detail=detail[:800]))

    async def _store_anchors(self, trust: Any) -> _Entry | ServiceError:
        """The store's anchors, from the cache when its content is known.

        :returns: the anchors, or (not raised, so that the chain's
            fingerprints can still be audited) a ``policyViolation``
            for a store that offers too many or malformed anchors.
        """
        snap = await trust.snapshot()
        cached = self._anchors.get(bytes(snap.digest))
        if cached is not None:
            self._anchors.move_to_end(bytes(snap.digest))
            self._hits += 1
            return cached
        info = (await trust.anchorInfo()).anchors
        if len(info) > MAX_STORE_ANCHORS:
            return ServiceError(
                Reason.policyViolation,
                f"trust store offers {len(info)} anchors, more than "
                f"{MAX_STORE_ANCHORS}")
        ders = await fetch_ders([a.cert for a in info])
        try:
            anchors = tuple(
                Anchor(cert=self._parse(der), label=a.label,
                       purposes=frozenset(str(p) for p in a.purposes),
                       distrust_after=distrust({
                           str(d.purpose): from_epoch(d.epochSeconds)
                           for d in a.distrustAfter if d.epochSeconds}))
                for a, der in zip(info, ders, strict=True))
        except ServiceError as err:
            return ServiceError(Reason.policyViolation,
                                f"trust store anchor: {err.detail}")
        except (ValueError, OverflowError, OSError) as err:
            return ServiceError(Reason.policyViolation,
                                f"trust store anchor metadata: {err}")
        entry = _Entry(anchors)
        self._anchors[content_digest(anchors)] = entry
        while len(self._anchors) > ANCHOR_CACHE_SIZE:
            self._anchors.popitem(last=False)
        self._fills += 1
        return entry

    def _verify(self, certs: list[ParsedCertificate], store: _Entry,
                purpose: str, at: Any, hostname: str) -> VerifiedPath:
        if not certs:
            raise ServiceError(Reason.policyViolation, "empty chain")
        leaf, inter = certs[0], certs[1:]
        leaf.decode()  # a malformed leaf before any other reason
        usable, excluded = usable_anchors(store.view(purpose),
                                          leaf.not_before)
        try:
            if not usable:
                raise VerificationError(
                    Reason.unknownAnchor,
                    f"no anchor in the store is trusted for {purpose}")
            return build_path(leaf, inter, usable, purpose, at, hostname,
                              self._policy)
        except VerificationError as err:
            if err.reason is not Reason.unknownAnchor or not excluded:
                raise
            why = self._diagnose(leaf, inter, excluded, purpose, at,
                                 hostname)
            if why is None:
                raise
            raise VerificationError(Reason.unknownAnchor, why) from err

    def _diagnose(self, leaf: ParsedCertificate,
                  inter: list[ParsedCertificate],
                  excluded: list[Excluded], purpose: str, at: Any,
                  hostname: str) -> str | None:
        """Why a left-out anchor that would have verified was left out."""
        try:
            found = build_path(leaf, inter,
                               [e.anchor.cert for e in excluded],
                               purpose, at, hostname, self._policy)
        except ServiceError:
            return None
        return next((e.why for e in excluded
                     if e.anchor.cert.der == found.anchor.der), None)

    async def _crls_for(self, certs: list[ParsedCertificate]) -> tuple[
            list[bytes], dict[bytes, str]]:
        """The CRL store's CRL for each distinct issuer of ``certs``.

        :returns: the CRLs, and by issuer name (DER) why the store
            could not give one (revocation status unknown: the policy
            decides whether that fails).
        """
        if self._crl_store is None:
            return [], {}
        issuers = {c.issuer.der: c.issuer for c in certs}
        requests = []
        for name in issuers.values():
            request = self._crl_store.crlFor_request()
            write_name(request.init("issuer"), name)
            requests.append(request.send())
        replies = await asyncio.gather(*requests, return_exceptions=True)
        crls: list[bytes] = []
        problems: dict[bytes, str] = {}
        for name, reply in zip(issuers.values(), replies, strict=True):
            if not isinstance(reply, BaseException):
                if len(reply.crl):
                    crls.append(bytes(reply.crl))
                continue
            reason, detail = reason_of(reply)
            if reason == Reason.unknownAnchor.value:
                continue  # the store does not serve this issuer
            problems[name.der] = f"crl store: {reason}: {detail}"
        return crls, problems

    async def _fetch(self, built: VerifiedPath,
                     at: Any) -> tuple[bytes | None, str]:
        """The leaf's status from the minted responder: DER, or a note."""
        if self._ocsp is None:
            return None, ("no OcspResponder capability: status not "
                          "fetched")
        try:
            reply = await self._ocsp.status(
                cert=CertificateImpl(built.path[0]),
                issuer=CertificateImpl(built.path[1]),
                atEpochSeconds=epoch_seconds(at))
        except Exception as err:  # capnp.KjException, from the peer
            reason, detail = reason_of(err)
            what = ("unreachable" if detail.startswith("unreachable")
                    else "gave no usable status")
            return None, f"ocsp responder {what}: {reason}: {detail}"
        return bytes(reply.response.der), ""

    async def _revocation(self, built: VerifiedPath, at: Any,
                          staple: bytes | None, crls: list[bytes],
                          problems: dict[bytes, str]) -> VerifiedPath:
        """Decide with the evidence at hand; fetch only if undecided."""
        def decide(fetched: bytes | None,
                   notes: tuple[str, ...]) -> VerifiedPath:
            return decide_revocation(
                built, at, self._policy, staple=staple, fetched=fetched,
                crls=crls, crl_problems=problems, notes=notes)

        try:
            first = decide(None, ())
        except VerificationError as err:
            if err.context.get("problem") != (
                    ocsp_errors.Problem.noEvidence.value):
                raise
        else:
            assert first.revocation is not None
            if first.revocation.outcome != "softFail":
                return first
        fetched, note = await self._fetch(built, at)
        return decide(fetched, (note,) if note else ())

    async def verifyChain(self, chain: Any, trust: Any, purpose: Any,
                          atEpochSeconds: int, hostname: str,
                          _context: Any, **kwargs: Any) -> None:
        """``verifyChainWithStaple`` with no staple."""
        await self._verify_call("verifyChain", chain, trust, purpose,
                                atEpochSeconds, hostname, None, _context)

    async def verifyChainWithStaple(self, chain: Any, trust: Any,
                                    purpose: Any, atEpochSeconds: int,
                                    hostname: str, staple: bytes,
                                    _context: Any, **kwargs: Any) -> None:
        """Verify with the OCSP response stapled in the handshake."""
        await self._verify_call("verifyChainWithStaple", chain, trust,
                                purpose, atEpochSeconds, hostname,
                                bytes(staple) or None, _context)

    async def _verify_call(self, operation: str, chain: Any, trust: Any,
                           purpose: Any, atEpochSeconds: int,
                           hostname: str, staple: bytes | None,
                           _context: Any) -> None:
        purpose_name = str(purpose)
        at = (from_epoch(atEpochSeconds) if atEpochSeconds
              else self._clock.now())
        context = (f"policy={self._policy_name} purpose={purpose_name} "
                   f"hostname={hostname} at={at.isoformat()} "
                   f"staple={'yes' if staple else 'no'}")
        subject: tuple[str, ...] = ()
        try:
            chain_caps = (await chain.certificates()).chain
            chain_ders, store = await asyncio.gather(
                fetch_ders(chain_caps), self._store_anchors(trust))
        except Exception as err:
            self._emit(operation, "error", "", subject,
                       f"{context}; fetching chain or anchors: {err}")
            raise
        subject = tuple(f"sha256={hashlib.sha256(d).hexdigest()}"
                        for d in chain_ders)
        out = _context.results.init("outcome")
        try:
            if isinstance(store, ServiceError):
                raise store
            if staple is not None and len(staple) > MAX_STAPLE:
                raise ServiceError(
                    Reason.policyViolation,
                    f"staple of {len(staple)} B is over {MAX_STAPLE} B")
            certs = [self._parse(d) for d in chain_ders]
            crls, problems = await self._crls_for(certs)
            built = self._verify(certs, store, purpose_name, at, hostname)
            result = await self._revocation(built, at, staple, crls,
                                            problems)
        except ServiceError as err:
            failure = out.init("invalid")
            failure.reason = err.reason.value
            failure.detail = err.detail
            self._emit(operation, "refused", err.reason.value, subject,
                       f"{context}; {err.detail}")
            return
        rev = result.revocation
        assert rev is not None
        valid = out.init("valid")
        valid.anchor = CertificateImpl(result.anchor)
        valid.sctCount = result.sct_count
        valid.ocspStatus = result.ocsp_status
        basis = "softFail" if rev.outcome == "softFail" else rev.source
        valid.revocation = f"{basis}: {rev.note}" if rev.note else basis
        valid.notAfter = epoch_seconds(result.not_after)
        path = valid.init("path", len(result.path))
        for i, cert in enumerate(result.path):
            path[i] = CertificateImpl(cert)
        said = ("revocation soft-fail" if rev.outcome == "softFail"
                else f"revocation={rev.source}")
        note = f" ({rev.note[:300]})" if rev.note else ""
        self._emit(operation, "ok", "", subject,
                   f"{context}; {said} ocspStatus={result.ocsp_status}"
                   f"{note}; anchor={result.anchor.sha256.hex()}")

    async def verifySignature(self, cert: Any, message: bytes,
                              signature: bytes, scheme: Any,
                              _context: Any, **kwargs: Any) -> bool:
        """One signature under the certificate's key.

        ``False`` when the scheme is outside the policy's
        ``allowedSignatureSchemes`` or the key outside its
        ``allowedAlgorithms`` (audited ``weakAlgorithm``), when the
        scheme does not fit the key or the signature does not verify
        (``signatureMismatch``).
        """
        scheme_name = str(scheme)
        der = bytes((await cert.der()).encoded)
        subject = (f"sha256={hashlib.sha256(der).hexdigest()}",)
        detail = f"policy={self._policy_name} scheme={scheme_name}"
        try:
            parsed = self._parse(der)
        except ServiceError as err:
            self._emit("verifySignature", "refused", err.reason.value,
                       subject, f"{detail}; {err.detail}")
            return False
        if scheme_name not in self._policy.allowed_signature_schemes:
            self._emit("verifySignature", "refused",
                       Reason.weakAlgorithm.value, subject,
                       f"{detail}; scheme not allowed by policy")
            return False
        if parsed.algorithm not in self._policy.allowed_algorithms:
            self._emit("verifySignature", "refused",
                       Reason.weakAlgorithm.value, subject,
                       f"{detail}; key {parsed.key_label} not allowed")
            return False
        ok = verify_with(parsed.cert.public_key(), bytes(message),
                         bytes(signature), scheme_name)
        self._emit("verifySignature", "ok" if ok else "refused",
                   "" if ok else Reason.signatureMismatch.value, subject,
                   detail if ok else f"{detail}; signature does not verify")
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
