"""``CrlStore`` server: ``crlFor`` and ``contains``.

The store knows a fixed set of issuer certificates (given when it is
minted) and a :class:`~services.crl.transport.CrlSource`. A CRL is
fetched on first use and again once the held one passes its
nextUpdate; every fetched CRL is checked by
:func:`services.crl.policy.check_crl` before it is held, and an
unusable one is never held or answered from. ``contains`` on an issuer
whose CRL is unusable fails with the problem (e.g.
``policyViolation: crlUnsupportedCriticalExtension: ...``): "unknown",
never "not revoked" (field report 13a).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from typing import Any

from cryptography import x509

from services._runtime.audit import AuditEvent, AuditSink
from services._runtime.boundary import CapabilityError
from services._runtime.clock import Clock
from services._runtime.schema import pki
from services.crl.errors import CrlError, Problem
from services.crl.model import CheckedCrl
from services.crl.policy import check_crl
from services.crl.transport import CrlSource


class CrlCache:
    """Checked CRLs per issuer, refetched once past nextUpdate."""

    def __init__(self, issuers: Sequence[x509.Certificate],
                 source: CrlSource, clock: Clock, *,
                 skew: dt.timedelta = dt.timedelta(seconds=300),
                 allow_sha1: bool = True) -> None:
        self._issuers = {c.subject.public_bytes(): c for c in issuers}
        self._source = source
        self._clock = clock
        self._skew = skew
        self._allow_sha1 = allow_sha1
        self._held: dict[bytes, CheckedCrl] = {}
        self._lock = threading.Lock()

    def issuer(self, name_der: bytes) -> x509.Certificate:
        cert = self._issuers.get(name_der)
        if cert is None:
            raise CrlError(Problem.crlUnknownIssuer,
                           "this store knows no such issuer")
        return cert

    def get(self, name_der: bytes) -> CheckedCrl:
        """The issuer's current checked CRL.

        :raises CrlError: unknown issuer, fetch failed, or unusable CRL.
        """
        issuer = self.issuer(name_der)
        now = self._clock.now()
        with self._lock:
            held = self._held.get(name_der)
            if held is not None and now < held.next_update:
                return held
            self._held.pop(name_der, None)
        checked = check_crl(self._source.fetch(issuer), issuer, now,
                            skew=self._skew, allow_sha1=self._allow_sha1)
        with self._lock:
            self._held[name_der] = checked
        return checked


class CrlStoreImpl(pki().CrlStore.Server):  # type: ignore[misc]
    """CRLs of a fixed set of issuers."""

    def __init__(self, cache: CrlCache, *, audit: AuditSink, clock: Clock,
                 service: str = "crl") -> None:
        self._cache = cache
        self._audit = audit
        self._clock = clock
        self._service = service

    def _emit(self, operation: str, outcome: str, reason: str,
              subject: tuple[str, ...], detail: str) -> None:
        self._audit.emit(AuditEvent(
            at=self._clock.now(), service=self._service,
            capability="crlStore", operation=operation, outcome=outcome,
            reason=reason, subject=subject, detail=detail))

    def _get(self, operation: str, name: Any,
             subject: tuple[str, ...]) -> CheckedCrl:
        try:
            return self._cache.get(bytes(name.der))
        except CrlError as err:
            self._emit(operation, "refused", err.reason.value,
                       (name.rfc4514, *subject), err.detail)
            raise CapabilityError(err.reason.value, err.detail) from err

    async def crlFor(self, issuer: Any, _context: Any,
                     **kwargs: Any) -> bytes:
        crl = self._get("crlFor", issuer, ())
        self._emit("crlFor", "ok", "", (issuer.rfc4514,),
                   f"number={crl.number} entries={len(crl.entries)}")
        return crl.der

    async def contains(self, issuer: Any, serial: bytes, _context: Any,
                       **kwargs: Any) -> bool:
        number = int.from_bytes(bytes(serial), "big", signed=True)
        subject = (f"serial={number:x}",)
        crl = self._get("contains", issuer, subject)
        entry = crl.entries.get(number)
        self._emit("contains", "ok", "", (issuer.rfc4514, *subject),
                   "revoked " + entry.reason if entry else "not listed")
        return entry is not None
