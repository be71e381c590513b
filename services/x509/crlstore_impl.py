"""``CrlStore`` server: CRLs held in memory, by issuer (RFC 5280 5).

A store of DER CRLs a ``CertVerifier`` may be minted with; ``crlFor``
answers the newest CRL (by thisUpdate) whose issuer DN is the one asked
for, or empty Data when there is none. The store only indexes CRLs;
whether one is usable is decided by :mod:`services.x509.policy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography import x509

from services._runtime.schema import pki
from services.x509.certificate_impl import read_name_der


class CrlStoreImpl(pki().CrlStore.Server):  # type: ignore[misc]
    """An in-memory CRL store."""

    def __init__(self, crls: Sequence[bytes]) -> None:
        newest: dict[bytes, tuple[Any, bytes]] = {}
        for der in crls:
            crl = x509.load_der_x509_crl(der)  # ValueError: bad input
            key = crl.issuer.public_bytes()
            held = newest.get(key)
            if held is None or crl.last_update_utc > held[0]:
                newest[key] = (crl.last_update_utc, der)
        self._by_issuer = {k: v[1] for k, v in newest.items()}

    def lookup(self, issuer_der: bytes) -> bytes:
        return self._by_issuer.get(issuer_der, b"")

    async def crlFor(self, issuer: Any, _context: Any,
                     **kwargs: Any) -> bytes:
        return self.lookup(read_name_der(issuer))
