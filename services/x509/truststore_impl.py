"""``TrustStore`` server over a :class:`~services.x509.trust.TrustStoreCore`.

Two kinds of capability share one core: a writable store (write
authority, minted only for a trust administrator) and its read-only
views (``read_only()``), which refuse ``addAnchor``/``removeAnchor``
with ``policyViolation: read-only trust store ...``. Both see every
change, and ``version`` bumps on each. ``restrict`` mints a fresh,
read-only store over a new core holding only the filtered anchors.
``anchorInfo`` carries each anchor's label, purposes and distrust-after
dates across the boundary; ``snapshot`` is the verifier's cheap cache
check. Every mutation and refusal is audited.
"""

from __future__ import annotations

from typing import Any

from services._runtime.audit import AuditEvent, AuditSink, NullAuditSink
from services._runtime.clock import Clock, SystemClock, epoch_seconds
from services._runtime.schema import pki
from services.x509.boundary import from_service_error
from services.x509.certificate_impl import CertificateImpl, read_name_der
from services.x509.errors import ReadOnlyError, Reason, ServiceError
from services.x509.model import parse_certificate
from services.x509.trust import Anchor, Filter, TrustStoreCore


class TrustStoreImpl(pki().TrustStore.Server):  # type: ignore[misc]
    """A trust store capability; ``writable`` is fixed at minting."""

    def __init__(self, core: TrustStoreCore, *, writable: bool = False,
                 audit: AuditSink | None = None,
                 clock: Clock | None = None,
                 service: str = "trust", name: str = "") -> None:
        self._service = service
        self._name = name or ("trustAdmin" if writable else "trustStore")
        self.core = core
        self.writable = writable
        self._audit = audit or NullAuditSink()
        self._clock = clock or SystemClock()

    def read_only(self) -> TrustStoreImpl:
        """A view of the same anchors that refuses mutation."""
        return TrustStoreImpl(self.core, writable=False,
                              audit=self._audit, clock=self._clock,
                              service=self._service)

    def _emit(self, operation: str, outcome: str, reason: str = "",
              subject: tuple[str, ...] = (), detail: str = "") -> None:
        self._audit.emit(AuditEvent(
            at=self._clock.now(), service=self._service,
            capability=self._name, operation=operation, outcome=outcome,
            reason=reason, subject=subject, detail=detail))

    def _refuse_if_read_only(self, operation: str) -> None:
        if not self.writable:
            err = ReadOnlyError(
                f"read-only trust store: {operation} needs the write "
                "capability")
            self._emit(operation, "refused", err.reason.value,
                       detail=err.detail)
            raise from_service_error(err)

    async def anchors(self, _context: Any, **kwargs: Any) -> None:
        anchors = self.core.anchors
        out = _context.results.init("certs", len(anchors))
        for i, anchor in enumerate(anchors):
            out[i] = CertificateImpl(anchor.cert)

    async def anchorInfo(self, _context: Any, **kwargs: Any) -> None:
        anchors = self.core.anchors
        res = _context.results
        out = res.init("anchors", len(anchors))
        for i, anchor in enumerate(anchors):
            info = out[i]
            info.cert = CertificateImpl(anchor.cert)
            info.label = anchor.label
            purposes = sorted(anchor.purposes)
            lst = info.init("purposes", len(purposes))
            for j, purpose in enumerate(purposes):
                lst[j] = purpose
            dates = info.init("distrustAfter", len(anchor.distrust_after))
            for j, (purpose, when) in enumerate(anchor.distrust_after):
                dates[j].purpose = purpose
                dates[j].epochSeconds = epoch_seconds(when)
        res.version = self.core.version
        res.digest = self.core.digest

    async def snapshot(self, _context: Any, **kwargs: Any) -> None:
        res = _context.results
        res.version = self.core.version
        res.digest = self.core.digest
        res.writable = self.writable

    async def restrict(self, filter: Any, _context: Any,
                       **kwargs: Any) -> None:
        flt = Filter(
            purposes=frozenset(str(p) for p in filter.purposes),
            fingerprints=frozenset(bytes(f) for f in filter.fingerprints),
            subjects=frozenset(bytes(s) for s in filter.subjects),
            exclude_fingerprints=frozenset(
                bytes(f) for f in filter.excludeFingerprints),
        )
        subset = self.core.restrict(flt)
        _context.results.subset = TrustStoreImpl(
            subset, writable=False, audit=self._audit,
            clock=self._clock, service=self._service)
        self._emit("restrict", "ok", detail=(
            f"kept {len(subset.anchors)} of {len(self.core.anchors)}"))

    async def addAnchor(self, cert: Any, pin: Any, _context: Any,
                        **kwargs: Any) -> None:
        self._refuse_if_read_only("addAnchor")
        der = (await cert.der()).encoded
        try:
            parsed = parse_certificate(bytes(der))
            parsed.decode()  # a malformed anchor is refused on entry
            if pin.hashAlgorithm != "sha256" and len(pin.spkiHash):
                raise ServiceError(Reason.pinMismatch,
                                   "anchor pins are SHA-256 only")
            self.core.add(Anchor(parsed, parsed.subject.rfc4514),
                          bytes(pin.spkiHash))
        except ServiceError as err:
            self._emit("addAnchor", "refused", err.reason.value,
                       detail=err.detail)
            raise from_service_error(err) from None
        self._emit("addAnchor", "ok", subject=(parsed.describe(),))

    async def removeAnchor(self, selector: Any, _context: Any,
                           **kwargs: Any) -> None:
        self._refuse_if_read_only("removeAnchor")
        if selector.which() == "fingerprint":
            n = self.core.remove(fingerprint=bytes(selector.fingerprint))
        else:
            n = self.core.remove(subject_der=read_name_der(selector.subject))
        self._emit("removeAnchor", "ok", detail=f"removed {n}")

    async def version(self, _context: Any, **kwargs: Any) -> int:
        return self.core.version
