"""Two-party Cap'n Proto RPC over a socketpair, as pycapnp's tests do."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import capnp

from services._runtime import loop

T = TypeVar("T")


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main`` inside a fresh KJ event loop, its garbage collected
    on the loop's thread (:mod:`services._runtime.loop`)."""
    return loop.run(main())


@contextlib.asynccontextmanager
async def serve(server: Any, interface: Any) -> AsyncIterator[Any]:
    """Export ``server`` on one end of a socketpair; yield a client cap."""
    a, b = socket.socketpair()
    try:
        server_stream = await capnp.AsyncIoStream.create_connection(sock=a)
        client_stream = await capnp.AsyncIoStream.create_connection(sock=b)
        host = capnp.TwoPartyServer(server_stream, bootstrap=server)
        client = capnp.TwoPartyClient(client_stream)
        yield client.bootstrap().cast_as(interface)
        del host, client
    finally:
        a.close()
        b.close()
