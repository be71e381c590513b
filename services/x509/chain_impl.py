"""``CertificateChain`` server: leaf first, closest-to-root last."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services._runtime.schema import pki
from services.x509.certificate_impl import CertificateImpl
from services.x509.model import ParsedCertificate


class CertificateChainImpl(pki().CertificateChain.Server):  # type: ignore
    """An ordered chain of parsed certificates."""

    def __init__(self, certs: Sequence[ParsedCertificate]) -> None:
        if not certs:
            raise ValueError("a chain holds at least the leaf")
        self.parsed = tuple(certs)

    async def certificates(self, _context: Any, **kwargs: Any) -> None:
        out = _context.results.init("chain", len(self.parsed))
        for i, cert in enumerate(self.parsed):
            out[i] = CertificateImpl(cert)

    async def leaf(self, _context: Any, **kwargs: Any) -> None:
        _context.results.cert = CertificateImpl(self.parsed[0])

    async def verify(self, against: Any, verifier: Any, atEpochSeconds: int,
                     hostname: str, _context: Any, **kwargs: Any) -> None:
        # The shortcut always verifies for TLS server authentication,
        # the one purpose the proposal's signature leaves room for.
        result = await verifier.verifyChain(
            self, against, "tlsServerAuth", atEpochSeconds, hostname)
        _context.results.outcome = result.outcome
