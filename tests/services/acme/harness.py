"""Shared pieces of the ACME tests: a client served over a socketpair,
pebble's http-01 port answered from a ChallengeTable, fake sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
from collections.abc import AsyncIterator
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from services._runtime.audit import MemoryAuditSink
from services._runtime.clock import Clock, FakeClock
from services._runtime.schema import pki
from services.acme.client_impl import AcmeClientImpl
from services.gateway.service import serve_http01
from services.gateway.solver_impl import ChallengeTable
from tests.services.x509.rpc import serve
from tools.pebble import Pebble

T0 = dt.datetime(2026, 10, 21, 7, 0, tzinfo=dt.UTC)


class FakeSleep:
    """Sleeps by moving a FakeClock; records every wait."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


def pebble_anchor(peb: Pebble) -> list[bytes]:
    cert = x509.load_pem_x509_certificate(peb.root_pem.read_bytes())
    return [cert.public_bytes(serialization.Encoding.DER)]


def client_for(peb: Pebble, audit: MemoryAuditSink, clock: Clock,
               **kwargs: Any) -> AcmeClientImpl:
    return AcmeClientImpl(peb.local_directory_url, pebble_anchor(peb),
                          clock, audit, **kwargs)


@contextlib.asynccontextmanager
async def http01_port(peb: Pebble,
                      table: ChallengeTable) -> AsyncIterator[None]:
    """Answer pebble's http-01 validations from ``table``."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", peb.ports.http01))
    sock.listen(16)
    task = asyncio.get_running_loop().create_task(serve_http01(sock, table))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


@contextlib.asynccontextmanager
async def served(impl: AcmeClientImpl) -> AsyncIterator[Any]:
    async with serve(impl, pki().AcmeClient) as cap:
        yield cap


def leaf_of(chain_ders: list[bytes]) -> x509.Certificate:
    return x509.load_der_x509_certificate(chain_ders[0])


async def ders_of(chain: Any) -> list[bytes]:
    certs = (await chain.certificates()).chain
    return [bytes((await c.der()).encoded) for c in certs]
