"""Fetching CRLs behind a ``typing.Protocol``.

:class:`HttpCrlSource` GETs each issuer's CRL from a configured URL
(its certificates' distribution point) over plain HTTP, loopback only
unless told otherwise, as RFC 5280 4.2.1.13 and appendix B of RFC 6960
expect. :class:`CallableCrlSource` wraps an in-process producer, such
as the private CA's :meth:`~services.ca.core.PrivateCA.crl`.
"""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from typing import Protocol

from cryptography import x509

from services.crl.errors import CrlUnavailableError

MAX_CRL = 4 * 1024 * 1024


class CrlSource(Protocol):
    """Returns the current DER CRL of one issuer."""

    def fetch(self, issuer: x509.Certificate) -> bytes: ...


class CallableCrlSource:
    """A producer in this process: ``issuer -> DER``."""

    def __init__(self, produce: Callable[[x509.Certificate], bytes]) -> None:
        self._produce = produce

    def fetch(self, issuer: x509.Certificate) -> bytes:
        return self._produce(issuer)


class HttpCrlSource:
    """GET from a URL per issuer (keyed by subject DER)."""

    def __init__(self, urls: Mapping[bytes, str], *, timeout: float = 5.0,
                 allowed_hosts: Collection[str] = ("127.0.0.1",)) -> None:
        self._urls = dict(urls)
        self._timeout = timeout
        self._allowed = frozenset(allowed_hosts)

    def fetch(self, issuer: x509.Certificate) -> bytes:
        url = self._urls.get(issuer.subject.public_bytes())
        if url is None:
            raise CrlUnavailableError(
                f"no CRL URL for {issuer.subject.rfc4514_string()}")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or parts.hostname not in self._allowed:
            raise CrlUnavailableError(f"CRL URL {url!r} is not allowed")
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80,
                                          timeout=self._timeout)
        try:
            conn.request("GET", parts.path or "/")
            resp = conn.getresponse()
            body = resp.read(MAX_CRL + 1)
        except (OSError, http.client.HTTPException) as err:
            raise CrlUnavailableError(f"{url}: {err}") from err
        finally:
            conn.close()
        if resp.status != 200 or len(body) > MAX_CRL:
            raise CrlUnavailableError(f"{url}: HTTP {resp.status}")
        return body
