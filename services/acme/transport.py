"""HTTPS to the ACME server, trusting only what a TrustStore grants.

The ``acme`` library talks through ``requests``. :class:`TrustStoreAdapter`
pins every HTTPS connection to one ``ssl.SSLContext`` whose only anchors
are the DER certificates read from the TrustStore capability the service
was granted: no CA file path, no certifi bundle, no system default, and
verification cannot be switched off by a ``verify=False`` argument.
"""

from __future__ import annotations

import ssl
from typing import Any

from requests.adapters import HTTPAdapter


def context_from_anchors(anchors_der: list[bytes]) -> ssl.SSLContext:
    """A client context that trusts exactly ``anchors_der``."""
    if not anchors_der:
        raise ValueError("no trust anchors: refusing to build a context")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    for der in anchors_der:
        ctx.load_verify_locations(cadata=der)
    return ctx


class TrustStoreAdapter(HTTPAdapter):
    """A requests adapter that verifies against one fixed context."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._ctx = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._ctx
        super().init_poolmanager(*args, **kwargs)

    def build_connection_pool_key_attributes(
        self, request: Any, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host, pool = super().build_connection_pool_key_attributes(
            request, True, cert
        )
        pool.pop("ca_certs", None)
        pool.pop("ca_cert_dir", None)
        pool["cert_reqs"] = "CERT_REQUIRED"
        pool["ssl_context"] = self._ctx
        return host, pool

    def cert_verify(self, conn: Any, url: str, verify: Any,
                    cert: Any) -> None:
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None
