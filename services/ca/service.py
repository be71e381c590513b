"""The private-CA service: the CA, its OCSP responder and its CRL.

Settings (all optional):

- ``caDir``: the CA directory (default ``ca`` in the service's
  ``stateDir``, its private directory on the data disk, so keys and
  database survive a reboot; ``/var/lib/capos/ca`` without one), see
  :mod:`services.ca.store`;
- ``caName``; ``ocspUrl`` and ``crlUrl``, written into every issued
  certificate (defaults on ``http://127.0.0.1:<the listener's port>``);
- ``ocspPort`` (default 8080): the listener capos-init made from the
  manifest's ``listen``, or else a bind on 127.0.0.1;
- ``ocspValiditySeconds`` (default 7200): nextUpdate - thisUpdate;
- ``maxLifetimeSeconds``, ``mustStaple`` (``true``/``false``): the
  root capability's issuance policy.

Exports ``ca`` (the root CertificateAuthority; holders narrow it) and
``crlStore`` (this CA's CRL, checked like any other). The responder
answers RFC 6960 POST and GET on the ``ocspUrl`` path and serves the CRL
on the ``crlUrl`` path of the same port.

Console line, once serving: ``CAPOS-CA serving ocsp=<url> records=<n>
ca_sha256=<hex>`` (issued certificates on record at start, and the CA
certificate's fingerprint: the same after a reboot on the same disk).
"""

from __future__ import annotations

import datetime as dt
import logging
import urllib.parse
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
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


def config_from(settings: dict[str, str],
                port: int | None = None) -> CAConfig:
    """The CA's configuration; without ``ocspUrl``/``crlUrl`` settings
    the URLs name 127.0.0.1 and ``port``, where the responder really
    listens (a host run may have moved the manifest's port)."""
    base = CAConfig()
    ocsp_url, crl_url = base.ocsp_url, base.crl_url
    if port is not None:
        ocsp_url = f"http://127.0.0.1:{port}/ocsp"
        crl_url = f"http://127.0.0.1:{port}/crl"
    return CAConfig(
        name=settings.get("caName", base.name),
        ocsp_url=settings.get("ocspUrl", ocsp_url),
        crl_url=settings.get("crlUrl", crl_url),
    )


def ca_dir(ctx: ServiceContext) -> Path:
    """``caDir``, else ``ca`` under the granted ``stateDir``."""
    if "caDir" in ctx.settings:
        return Path(ctx.settings["caDir"])
    state = ctx.inputs.get("stateDir")
    if state:
        return Path(state.decode()) / "ca"
    return Path("/var/lib/capos/ca")


async def build(ctx: ServiceContext) -> dict[str, Any]:
    settings = ctx.settings
    port = int(settings.get("ocspPort", "8080"))
    sock = ctx.listeners.get(port)
    config = config_from(settings, sock.getsockname()[1] if sock else None)
    ca = PrivateCA(ca_dir(ctx), config, ctx.clock)
    validity = dt.timedelta(
        seconds=int(settings.get("ocspValiditySeconds", "7200")))
    core = for_ca(ca, validity)

    def crl_der() -> tuple[bytes, str]:
        return ca.crl().public_bytes(Encoding.DER), "application/pkix-crl"

    server = OcspHttpServer(
        core.respond, ctx.clock, port=port,
        prefix=urllib.parse.urlsplit(config.ocsp_url).path or "/",
        routes={urllib.parse.urlsplit(config.crl_url).path: crl_der},
        sock=sock).start()
    _RUNNING.append(server)
    print(f"CAPOS-CA serving ocsp={server.url} records="
          f"{len(ca.store.records())} ca_sha256="
          f"{ca.cert.fingerprint(hashes.SHA256()).hex()}", flush=True)
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
