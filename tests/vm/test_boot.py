"""Boot the image under TCG and complete a real TLS handshake with it."""
from __future__ import annotations

import hashlib
import re
import socket
import ssl
import time
from pathlib import Path

import pytest

from tools.vm import VM

pytestmark = pytest.mark.vm


def test_boot_and_tls_handshake(image_dir: Path) -> None:
    with VM(image_dir, guest="smoke") as vm:
        assert vm.ready_line == "CAPOS-READY smoke"
        m = re.search(r"cert sha256 ([0-9a-f]{64})", vm.console())
        assert m, "guest did not print its certificate fingerprint"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # pinned by fingerprint below
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", vm.port),
                                      timeout=30) as raw:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with ctx.wrap_socket(raw, server_hostname="capos-smoke") as s:
                del t0
                der = s.getpeercert(binary_form=True)
                version = s.version()
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                body = s.recv(4096)
        assert version == "TLSv1.3"
        assert der is not None
        assert hashlib.sha256(der).hexdigest() == m.group(1)
        assert body.endswith(b"capos-smoke")
        mem = vm.qmp("query-memory-size-summary")
        assert mem["base-memory"] == 256 << 20  # type: ignore[index]


def test_missing_image_is_reported(tmp_path: Path) -> None:
    from tools.vm import VMError
    with pytest.raises(VMError) as ei:
        with VM(tmp_path):
            pass
    assert "missing" in ei.value.reason
