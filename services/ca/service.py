"""The private-CA service: the CA, its OCSP responder and its CRL.

Settings (all optional):

- ``caDir``: the CA directory on the data disk (default
  ``/var/lib/capos/ca``), see :mod:`services.ca.store`;
- ``caName``; ``ocspUrl`` and ``crlUrl``, written into every issued
  certificate (defaults on ``http://127.0.0.1:8080``);
- ``ocspPort`` (default 8080): the listener capos-init made from the
  manifest's ``listen``, or else a bind on 127.0.0.1;
- ``ocspValiditySeconds`` (default 7200): nextUpdate - thisUpdate;
- ``maxLifetimeSeconds``, ``mustStaple`` (``true``/``false``): the
  root capability's issuance policy.

Exports ``ca`` (the root CertificateAuthority; holders narrow it) and
``crlStore`` (this CA's CRL, checked like any other). The responder
answers RFC 6960 POST and GET on the ``ocspUrl`` path and serves the CRL
on the ``crlUrl`` path of the same port.
"""

from __future__ import annotations

import datetime as dt
import logging
import urllib.parse
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from services._runtime.host import ServiceContext
from services.ca.authority_impl import CertificateAuthorityImpl
from services.ca.core import PrivateCA
from services.ca.model import CAConfig, IssuancePolicy
from services.crl.store_impl import CrlCache, CrlStoreImpl
from services.crl.transport import CallableCrlSource
from services.ocsp.responder import for_ca
from services.ocsp.server import OcspHttpServer

log = logging.getLogger(__name__)

#: Kept alive for the life of the process.
_RUNNING: list[Any] = []


def config_from(settings: dict[str, str]) -> CAConfig:
    base = CAConfig()
    return CAConfig(
        name=settings.get("caName", base.name),
        ocsp_url=settings.get("ocspUrl", base.ocsp_url),
        crl_url=settings.get("crlUrl", base.crl_url),
    )


async def build(ctx: ServiceContext) -> dict[str, Any]:
    settings = ctx.settings
    config = config_from(settings)
    ca = PrivateCA(Path(settings.get("caDir", "/var/lib/capos/ca")),
                   config, ctx.clock)
    validity = dt.timedelta(
        seconds=int(settings.get("ocspValiditySeconds", "7200")))
    core = for_ca(ca, validity)

    def crl_der() -> tuple[bytes, str]:
        return ca.crl().public_bytes(Encoding.DER), "application/pkix-crl"

    port = int(settings.get("ocspPort", "8080"))
    server = OcspHttpServer(
        core.respond, ctx.clock, port=port,
        prefix=urllib.parse.urlsplit(config.ocsp_url).path or "/",
        routes={urllib.parse.urlsplit(config.crl_url).path: crl_der},
        sock=ctx.listeners.get(port)).start()
    _RUNNING.append(server)
    print(f"CAPOS-CA serving ocsp={server.url} records="
          f"{len(ca.store.records())}", flush=True)
    root = IssuancePolicy(
        max_lifetime_seconds=int(settings.get(
            "maxLifetimeSeconds", str(IssuancePolicy().max_lifetime_seconds))),
        must_staple=settings.get("mustStaple", "false") == "true")
    crls = CrlStoreImpl(CrlCache([ca.cert], CallableCrlSource(
        lambda issuer: crl_der()[0]), ctx.clock), audit=ctx.audit,
        clock=ctx.clock, service=ctx.name)
    return {
        "ca": CertificateAuthorityImpl(ca, root, audit=ctx.audit,
                                       clock=ctx.clock, service=ctx.name),
        "crlStore": crls,
    }
