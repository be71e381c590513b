"""The staple state machine: which OCSP response a server staples, and
when it asks for a new one (RFC 6066 section 8, RFC 6961; DESIGN.md
section 6).

Rules :class:`StaplerCore` keeps:

- It serves a response only while ``now < nextUpdate``, with no skew
  on this side: never a response past its nextUpdate (field report 12b).
- It refreshes at half the held response's validity
  (``thisUpdate + (nextUpdate - thisUpdate) / 2``), or whenever it
  holds nothing.
- A new response replaces the held one only after the full check
  (:func:`services.ocsp.policy.check_response`: signature, delegated
  signer, CertID, freshness). A failed refresh, whether the responder
  is down, or answers for another serial or under an unauthorised
  signer, keeps the previous good staple (12c).
- When the held response passes nextUpdate it is dropped, stapling
  stops, and that is audited once (``stopStapling``); for a must-staple
  certificate the record is an ``error`` with ``mustStapleMissing``,
  the health signal.
- Every accepted response is written to the cache directory
  (write-then-rename); a write that fails is a logged warning only,
  the in-memory staple is still served (12d). On
  :meth:`set_certificate` a cached response that still checks is
  loaded, so a restart staples at once.

Transitions (state is what :attr:`health` reports):

======== ========================== ==========
from     event                      to
======== ========================== ==========
empty    refresh ok                 ok
any      refresh failed, staple     degraded
         still before nextUpdate
any      now >= nextUpdate          failing
failing  refresh ok                 ok
======== ========================== ==========
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from services._runtime.audit import AuditEvent, AuditSink
from services._runtime.clock import Clock
from services.ocsp import policy
from services.ocsp.client import DEFAULT_SETTINGS, ClientSettings
from services.ocsp.errors import (
    Problem,
    ResponseRejectedError,
    ServiceError,
)
from services.ocsp.model import CheckedResponse, is_must_staple, responder_url
from services.ocsp.transport import OcspTransport

log = logging.getLogger(__name__)

#: ``(leaf, issuer) -> response DER``; raises a ServiceError on failure.
Fetcher = Callable[[x509.Certificate, x509.Certificate], bytes]


def http_fetcher(transport: OcspTransport) -> Fetcher:
    """Fetch from the leaf's AIA responder (no nonce: RFC 5019 2.1.1
    responders pre-produce, and a staple is shared by every client)."""

    def fetch(leaf: x509.Certificate, issuer: x509.Certificate) -> bytes:
        url = responder_url(leaf)
        if not url:
            raise ResponseRejectedError(Problem.noResponderUrl,
                                        "certificate has no AIA OCSP URL")
        return transport.post(url, policy.build_request(leaf, issuer))

    return fetch


class StaplerCore:
    """The staple for one certificate."""

    def __init__(self, fetch: Fetcher | None, clock: Clock,
                 audit: AuditSink, *, cache_dir: Path | None = None,
                 settings: ClientSettings = DEFAULT_SETTINGS,
                 service: str = "stapler") -> None:
        self._fetch = fetch
        self._clock = clock
        self._audit = audit
        self._cache_dir = cache_dir
        self._settings = settings
        self._service = service
        self.leaf: x509.Certificate | None = None
        self.issuer: x509.Certificate | None = None
        self._held: CheckedResponse | None = None
        self._stopped = False
        self.health = "empty"

    # Events.

    def _emit(self, operation: str, outcome: str, reason: str = "",
              detail: str = "") -> None:
        subject: tuple[str, ...] = ()
        if self.leaf is not None:
            subject = (f"serial={self.leaf.serial_number:x}", "sha256="
                       + self.leaf.fingerprint(hashes.SHA256()).hex())
        self._audit.emit(AuditEvent(
            at=self._clock.now(), service=self._service,
            capability="stapler", operation=operation, outcome=outcome,
            reason=reason, subject=subject, detail=detail))

    def now(self) -> dt.datetime:
        """The injected clock's time."""
        return self._clock.now()

    @property
    def must_staple(self) -> bool:
        return self.leaf is not None and is_must_staple(self.leaf)

    def set_certificate(self, leaf: x509.Certificate,
                        issuer: x509.Certificate) -> None:
        """Staple for ``leaf`` from now on; load a usable cached staple."""
        self.leaf, self.issuer = leaf, issuer
        self._held, self._stopped, self.health = None, False, "empty"
        cached = self._read_cache()
        if cached is not None:
            try:
                self._held = self._check(cached)
                self.health = "ok"
                self._emit("loadCache", "ok", detail=self._when())
            except ServiceError as err:
                log.info("cached staple not used: %s", err)

    def _when(self) -> str:
        held = self._held
        if held is None:
            return ""
        return (f"thisUpdate={held.this_update.isoformat()} "
                f"nextUpdate={held.next_update.isoformat()}")

    def _check(self, der: bytes) -> CheckedResponse:
        assert self.leaf is not None and self.issuer is not None
        return policy.check_response(
            der, self.leaf, self.issuer, self._clock.now(),
            skew=self._settings.skew, allow_sha1=self._settings.allow_sha1)

    def peek(self) -> CheckedResponse | None:
        """:meth:`current` without side effects (no audit, no state
        change), safe from a TLS callback on another thread: the audit
        sink in a service belongs to the event loop's thread."""
        held = self._held
        if held is not None and self._clock.now() < held.next_update:
            return held
        return None

    def current(self) -> CheckedResponse | None:
        """The response to staple now, or None: never one past its
        nextUpdate."""
        held = self._held
        if held is None:
            return None
        if self._clock.now() < held.next_update:
            return held
        self._held = None
        self.health = "failing"
        if not self._stopped:
            self._stopped = True
            if self.must_staple:
                log.error("must-staple certificate has no valid staple")
                self._emit("stopStapling", "error", "mustStapleMissing",
                           f"staple reached nextUpdate "
                           f"{held.next_update.isoformat()}")
            else:
                self._emit("stopStapling", "refused", "ocspUnavailable",
                           f"staple reached nextUpdate "
                           f"{held.next_update.isoformat()}")
        return None

    def due(self) -> bool:
        """Whether a refresh is due (half the validity, or nothing held)."""
        held = self.current()
        return held is None or self._clock.now() >= held.refresh_at

    def accept(self, der: bytes) -> bool:
        """Take a freshly fetched response if it checks; else keep the
        previous one. :returns: whether it was taken."""
        try:
            checked = self._check(der)
        except ServiceError as err:
            self.failed(err)
            return False
        if checked.next_update <= self._clock.now():
            # The check tolerates the skew; serving never does.
            self.failed(ResponseRejectedError(
                Problem.ocspStale, "response is past its nextUpdate "
                f"{checked.next_update.isoformat()}; not servable"))
            return False
        held = self._held
        if held is not None and checked.this_update < held.this_update:
            self._emit("refresh", "refused", "ocspUnavailable",
                       "response older than the held staple")
            return False
        self._held, self._stopped, self.health = checked, False, "ok"
        self._emit("refresh", "ok", detail=self._when() + "".join(
            f" warning={w}" for w in checked.warnings))
        self._write_cache(der)
        return True

    def failed(self, err: ServiceError) -> None:
        """Record a failed refresh; the previous staple stays."""
        held = self.current()
        self.health = "degraded" if held is not None else "failing"
        kept = (f"; keeping staple until {held.next_update.isoformat()}"
                if held is not None else "; nothing to staple")
        log.warning("staple refresh failed: %s%s", err, kept)
        self._emit("refresh", "refused", err.reason.value,
                   err.detail + kept)

    def refresh(self) -> bool:
        """Fetch now through the fetcher and :meth:`accept` it."""
        if self.leaf is None or self.issuer is None:
            raise ValueError("no certificate set")
        if self._fetch is None:
            raise ValueError("no fetcher: use accept() with a response")
        try:
            der = self._fetch(self.leaf, self.issuer)
        except ServiceError as err:
            self.failed(err)
            return False
        return self.accept(der)

    def tick(self) -> CheckedResponse | None:
        """Refresh if due; return what to staple."""
        if self.leaf is not None and self.due():
            self.refresh()
        return self.current()

    # The on-disk cache.

    def _cache_path(self) -> Path | None:
        if self._cache_dir is None or self.leaf is None:
            return None
        fp = self.leaf.fingerprint(hashes.SHA256()).hex()
        return self._cache_dir / f"{fp}.ocsp.der"

    def _read_cache(self) -> bytes | None:
        path = self._cache_path()
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError:
            return None

    def _write_cache(self, der: bytes) -> None:
        path = self._cache_path()
        if path is None:
            return
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with open(tmp, "wb") as out:
                out.write(der)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except OSError as err:
            log.warning("staple cache %s not written: %s", path, err)
