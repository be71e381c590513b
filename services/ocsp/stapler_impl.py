"""``OcspStapler`` server: the staple a TLS server hands out.

``setCertificate(chain, responder)`` fixes the leaf (chain[0]) and its
issuer (chain[1]) and the ``OcspResponder`` capability to ask;
``refresh`` asks now; ``currentResponse`` refreshes first when due
(half the validity, :mod:`services.ocsp.stapler`) and returns the
staple, or status ``stapledAbsent`` with no DER when there is none:
never a response past its nextUpdate. The responder capability has
already checked what it returns; the stapler checks it again against
its own leaf, so a responder answering for the wrong certificate cannot
plant a staple. The TLS server reads :meth:`current_der` synchronously
from its OCSP callback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import capnp
from cryptography import x509

from services._runtime.boundary import CapabilityError, parse_remote
from services._runtime.schema import pki
from services.ocsp.errors import UnavailableError
from services.ocsp.responder_impl import write_response
from services.ocsp.stapler import StaplerCore


class OcspStaplerImpl(pki().OcspStapler.Server):  # type: ignore[misc]
    """Staples for one certificate at a time."""

    def __init__(self, core: StaplerCore) -> None:
        self.core = core
        self._responder: Any = None
        self._leaf: Any = None
        self._issuer: Any = None

    def current_der(self) -> bytes:
        """The DER to staple now, or ``b""`` (no staple). Callable from
        any thread; the stop is recorded by :meth:`maintain` or the next
        capability call, on the event loop."""
        held = self.core.peek()
        return held.der if held is not None else b""

    async def _refresh(self) -> bool:
        if self._responder is None:
            raise CapabilityError("policyViolation", "no certificate set")
        try:
            reply = await self._responder.status(self._leaf, self._issuer, 0)
        except capnp.KjException as err:
            reason, detail = parse_remote(err)
            self.core.failed(UnavailableError(f"{reason}: {detail}"))
            return False
        return self.core.accept(bytes(reply.response.der))

    async def maintain(self, sleep: Callable[[float], Awaitable[None]], *,
                       poll: float = 60.0,
                       rounds: int | None = None) -> None:
        """Keep the staple fresh in the background: refresh when due,
        then sleep until the next refresh point (at most ``poll``
        seconds, so a failed refresh is retried). ``sleep`` is
        ``asyncio.sleep`` in a service; tests pass one that moves a
        fake clock. ``rounds`` bounds the loop (None: forever)."""
        done = 0
        while rounds is None or done < rounds:
            done += 1
            if self._responder is not None and self.core.due():
                await self._refresh()
            held = self.core.current()
            wait = poll
            if held is not None:
                ahead = (held.refresh_at - self.core.now()).total_seconds()
                wait = min(poll, max(ahead, 1.0))
            await sleep(wait)

    async def setCertificate(self, chain: Any, responder: Any,
                             _context: Any, **kwargs: Any) -> None:
        await self.attach(chain, responder)

    async def attach(self, chain: Any, responder: Any) -> None:
        """``setCertificate`` for a caller in this process (client caps
        of a CertificateChain and an OcspResponder)."""
        certs = (await chain.certificates()).chain
        if len(certs) < 2:
            raise CapabilityError("policyViolation",
                                  "the chain must carry the leaf's issuer")
        ders = [bytes((await certs[i].der()).encoded) for i in (0, 1)]
        try:
            leaf, issuer = (x509.load_der_x509_certificate(d) for d in ders)
        except ValueError as err:
            raise CapabilityError("policyViolation",
                                  "not a DER certificate") from err
        self._responder, self._leaf, self._issuer = responder, certs[0], (
            certs[1])
        self.core.set_certificate(leaf, issuer)
        if self.core.current() is None:
            await self._refresh()

    async def refresh(self, _context: Any, **kwargs: Any) -> None:
        await self._refresh()

    async def currentResponse(self, _context: Any, **kwargs: Any) -> None:
        if self._responder is not None and self.core.due():
            await self._refresh()
        held = self.core.current()
        out = _context.results.init("response")
        if held is None:
            out.status = "stapledAbsent"
            return
        write_response(out, held)
