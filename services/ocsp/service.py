"""The OCSP client service: exports ``ocspResponder``, the
OcspResponder capability that asks certificates' own responders over
HTTP (loopback only unless the ``ocspHosts`` setting, a comma list,
allows more) and checks the answers.

Settings: ``clockSkewSeconds`` (default 300), ``ocspAllowSha1``
(``true``/``false``, default true: field report 6c).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from services._runtime.host import ServiceContext
from services.ocsp.client import ClientSettings
from services.ocsp.responder_impl import OcspResponderImpl
from services.ocsp.transport import HttpTransport


async def build(ctx: ServiceContext) -> dict[str, Any]:
    s = ctx.settings
    hosts = tuple(h for h in s.get("ocspHosts", "127.0.0.1").split(",")
                  if h)
    settings = ClientSettings(
        skew=dt.timedelta(seconds=int(s.get("clockSkewSeconds", "300"))),
        allow_sha1=s.get("ocspAllowSha1", "true") == "true")
    return {"ocspResponder": OcspResponderImpl(
        HttpTransport(allowed_hosts=hosts), audit=ctx.audit,
        clock=ctx.clock, settings=settings, service=ctx.name)}
