"""A steady, bounded load of TLS handshakes against the gateway, each
recorded with its start time, the served leaf's SHA-256 and its outcome.

Used by the host and the VM rotation tests. The client does not verify
the chain (the tests pin what was served against what was stored); it
sets ``TCP_NODELAY`` (DESIGN 4a) and closes after the handshake.
"""

from __future__ import annotations

import dataclasses
import hashlib
import socket
import ssl
import threading
import time


@dataclasses.dataclass(frozen=True)
class Handshake:
    started: float  # time.monotonic() when connect() began
    sha256: str  # the served leaf, "" when the handshake failed
    error: str  # "" when it succeeded


def handshake(port: int, name: str, timeout: float = 30.0) -> Handshake:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port),
                                      timeout=timeout) as raw:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with ctx.wrap_socket(raw, server_hostname=name) as tls:
                der = tls.getpeercert(binary_form=True) or b""
    except (OSError, ssl.SSLError) as err:
        return Handshake(started, "", f"{type(err).__name__}: {err}")
    if not der:
        return Handshake(started, "", "no certificate")
    return Handshake(started, hashlib.sha256(der).hexdigest(), "")


class Load:
    """``threads`` loops of back-to-back handshakes until :meth:`stop`
    or ``limit`` handshakes in all."""

    def __init__(self, port: int, name: str, threads: int = 2,
                 limit: int = 20000) -> None:
        self.port = port
        self.name = name
        self.limit = limit
        self.results: list[Handshake] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True)
                         for _ in range(threads)]

    def _loop(self) -> None:
        while not self._stop.is_set():
            got = handshake(self.port, self.name)
            with self._lock:
                if len(self.results) >= self.limit:
                    return
                self.results.append(got)

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def count_since(self, when: float) -> int:
        with self._lock:
            return sum(1 for h in self.results if h.started > when)

    def stop(self) -> list[Handshake]:
        self._stop.set()
        for t in self._threads:
            t.join(60)
        with self._lock:
            return sorted(self.results, key=lambda h: h.started)


def check_rotation(results: list[Handshake],
                   events: list[tuple[float, str]]) -> dict[str, int]:
    """Count what the tests assert: failed handshakes, and handshakes
    that started after a rotation was seen (``events``: the monotonic
    time the harness saw each rotation, and its new leaf) but were
    served a chain older than that rotation."""
    order = [fp for _, fp in events]
    stale = 0
    after = 0
    for h in results:
        if h.error:
            continue
        seen = [i for i, (t, _) in enumerate(events) if t < h.started]
        if not seen:
            continue
        after += 1
        newest = seen[-1]
        if h.sha256 not in order[newest:]:
            stale += 1
    return {"total": len(results),
            "failed": sum(1 for h in results if h.error),
            "afterRotation": after, "stale": stale}
