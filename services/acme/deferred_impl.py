"""``AcmeClient`` that loads the ACME stack on its first call.

The ``acme`` library, josepy and requests (with urllib3 and
charset_normalizer) are the largest set of modules any service imports:
about 0.9 s of the guest's boot under TCG, measured with
``capos.debug=importtime``, and a third of capos-init's pre-fork
imports. Only the acme service needs them, and only once something
orders, renews, revokes or asks the directory. A gateway that finds its
chain in the certificate store at boot serves it without any of that
(:mod:`services.gateway.service`), so the import waits for the first
call instead of every boot.

:class:`DeferredAcmeClientImpl` answers every ``AcmeClient`` method by
handing it, unchanged, to the client its ``make`` returns, made on the
first call. The load writes one audit record (operation ``load``, with
how long it took), so a caller can tell from the log whether a boot
reached the ACME stack at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services._runtime import audit as _audit
from services._runtime.clock import Clock
from services._runtime.schema import pki


class DeferredAcmeClientImpl(pki().AcmeClient.Server):  # type: ignore[misc]
    """Forwards each call to ``make()``'s client, made once, on the
    first call. A ``make`` that raises is tried again on the next call:
    nothing half-made is kept."""

    def __init__(self, make: Callable[[], Any], clock: Clock,
                 audit: _audit.AuditSink, service: str = "acme") -> None:
        self._make = make
        self._clock = clock
        self._audit = audit
        self._service = service
        self._client: Any = None

    @property
    def loaded(self) -> bool:
        return self._client is not None

    def client(self) -> Any:
        """The client, made (and the ACME stack imported) if need be."""
        if self._client is None:
            started = self._clock.monotonic()
            made = self._make()
            self._client = made
            self._audit.emit(_audit.AuditEvent(
                at=self._clock.now(), service=self._service,
                capability="acmeClient", operation="load", outcome="ok",
                detail=f"ACME stack loaded in "
                       f"{self._clock.monotonic() - started:.3f} s",
            ))
        return self._client

    async def register(self, accountKey: Any, contact: Any, _context: Any,
                       **kwargs: Any) -> Any:
        return await self.client().register(accountKey, contact, _context,
                                            **kwargs)

    async def order(self, account: Any, identifiers: Any, certKey: Any,
                    solver: Any, _context: Any, **kwargs: Any) -> Any:
        return await self.client().order(account, identifiers, certKey,
                                         solver, _context, **kwargs)

    async def renew(self, chain: Any, certKey: Any, solver: Any,
                    _context: Any, **kwargs: Any) -> Any:
        return await self.client().renew(chain, certKey, solver, _context,
                                         **kwargs)

    async def revoke(self, cert: Any, reason: Any, _context: Any,
                     **kwargs: Any) -> Any:
        return await self.client().revoke(cert, reason, _context, **kwargs)

    async def directory(self, _context: Any, **kwargs: Any) -> Any:
        return await self.client().directory(_context, **kwargs)

    async def renewalInfo(self, chain: Any, _context: Any,
                          **kwargs: Any) -> Any:
        return await self.client().renewalInfo(chain, _context, **kwargs)
