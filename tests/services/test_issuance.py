"""The whole service graph on the host: capos-init's real processes,
pebble as the ACME server, a real TLS client against the gateway.

This is the guest's path minus QEMU: the same manifest, the same
services, the same grants. The VM test (tests/vm) repeats it in the
image over virtio-net.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import capnp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bootmanifest import build, sign
from services._runtime import loop
from services._runtime.clock import SystemClock
from services._runtime.schema import pki
from services.init import system
from tools.pebble import Pebble

NAME = "www.capos.test"


def signed_manifest(peb: Pebble, tmp_path: Path) -> Any:
    extra = build.extra_anchor_from_pem(
        "acme-server-root", peb.root_pem.read_bytes()
    )
    inputs = build.read_inputs(extra_anchors=(extra,))
    now = int(SystemClock().now().timestamp())
    key = sign.load_or_create_key(tmp_path / "signing.key")
    raw = build.assemble(inputs, build.BuildParams(
        version=1, issued_at=now, expires_at=now + 86400,
        signers=(sign.key_id(key.public_key()),),
    ))
    return sign.verify(sign.sign(raw, [key]), [key.public_key()], 1, 0,
                       SystemClock().now())


def tls_get(port: int, roots_pem: bytes) -> dict[str, Any]:
    """One HTTPS request to the gateway, retried while it has no chain
    yet (it closes connections until the first chain arrives)."""
    ctx = ssl.create_default_context(cadata=roots_pem.decode())
    last: Exception | None = None
    for _ in range(50):
        try:
            with socket.create_connection(("127.0.0.1", port), 10) as raw, \
                    ctx.wrap_socket(raw, server_hostname=NAME) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: " + NAME.encode()
                            + b"\r\n\r\n")
                body = b""
                while chunk := tls.recv(4096):
                    body += chunk
                der = tls.getpeercert(binary_form=True)
                return {"version": tls.version(), "cipher": tls.cipher(),
                        "body": body, "leaf": der}
        except (ssl.SSLError, ConnectionError) as err:
            last = err
            time.sleep(0.1)
    raise AssertionError(f"gateway never served TLS: {last}")


def test_issue_store_serve_and_verify(pebble: Pebble, tmp_path: Path) -> None:
    m = signed_manifest(pebble, tmp_path)
    order = system.start_order(system.specs_from_manifest(m))
    procs = system.spawn(order, bind="127.0.0.1",
                         port_map={80: pebble.ports.http01, 443: 0,
                                   8080: 0, 8443: 0})
    gateway = next(p for p in procs if p.spec.name == "gateway")
    roots = pebble.issuance_roots()[0]
    settings = {
        "acmeDirectory": f"https://localhost:{pebble.ports.acme}/dir",
        "tlsName": NAME,
    }
    # The audit service keeps its log in its own state directory.
    dirs = system.state_dirs(order, tmp_path / "data", isolated=False)
    audit_path = Path(dirs["audit"]) / "audit.jsonl"

    async def go() -> dict[str, Any]:
        exports, keep = await system.wire(m, procs, settings, dirs)
        store = exports[("certstore", "certStore")].as_interface(
            pki().CertificateStore)
        sub = (await store.watch(handle="gateway")).subscription
        events: list[Any] = []
        deadline = time.monotonic() + 60
        while not events and time.monotonic() < deadline:
            events = list((await sub.events()).events)
        assert events, "no chain reached the certificate store"
        served = await asyncio.to_thread(tls_get, gateway.ports[443], roots)
        # Verify what was served with the project's own verifier, against
        # pebble's root held in a TrustStore capability.
        from services.x509.model import parse_certificate
        from services.x509.trust import Anchor, TrustStoreCore
        from services.x509.truststore_impl import TrustStoreImpl

        root_der = x509.load_pem_x509_certificate(roots).public_bytes(
            serialization.Encoding.DER)
        trust = TrustStoreImpl(TrustStoreCore(
            (Anchor(parse_certificate(root_der), "pebble"),)))
        verifier = exports[("verifier", "webPkiLenient")].as_interface(
            pki().CertVerifier)
        chain = (await store.get(handle="gateway")).chain
        outcome = (await verifier.verifyChain(
            chain=chain, trust=trust, purpose="tlsServerAuth",
            atEpochSeconds=int(time.time()), hostname=NAME,
        )).outcome
        stored_leaf = bytes((await (await chain.leaf()).cert.der()).encoded)
        wrong = (await verifier.verifyChain(
            chain=chain, trust=trust, purpose="tlsServerAuth",
            atEpochSeconds=int(time.time()), hostname="other.capos.test",
        )).outcome
        del keep
        return {"served": served, "outcome": outcome.which(),
                "wrong": (wrong.which(), str(wrong.invalid.reason)),
                "stored_leaf": stored_leaf}

    try:
        got = loop.run(go())
    finally:
        system.stop(procs)
    served = got["served"]
    assert served["version"] in ("TLSv1.2", "TLSv1.3")
    assert served["body"].startswith(b"HTTP/1.1 200 OK")
    assert served["leaf"] == got["stored_leaf"]
    leaf = x509.load_der_x509_certificate(served["leaf"])
    sans = leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert sans == [NAME]
    assert leaf.not_valid_after_utc > dt.datetime.now(dt.UTC)
    assert got["outcome"] == "valid"
    assert got["wrong"] == ("invalid", "nameMismatch")
    records = [json.loads(line) for line in audit_path.read_text().split(
        "\n") if line]
    ops = {(r["service"], r["operation"], r["outcome"]) for r in records}
    assert ("acme", "register", "ok") in ops
    assert ("acme", "order", "ok") in ops
    assert ("certstore", "put", "ok") in ops
    assert ("gateway", "rotate", "ok") in ops
    assert ("verifier", "verifyChain", "ok") in ops


def test_unreachable_acme_server_is_reported(tmp_path: Path,
                                             pebble: Pebble) -> None:
    """Pebble stopped before the gateway orders: the failure names the
    unreachable server and nothing is left running."""
    m = signed_manifest(pebble, tmp_path)
    port = pebble.ports.acme
    pebble.stop()
    order = system.start_order(system.specs_from_manifest(m))
    procs = system.spawn(order, bind="127.0.0.1",
                         port_map={80: 0, 443: 0, 8080: 0, 8443: 0})
    settings = {"acmeDirectory": f"https://localhost:{port}/dir",
                "tlsName": NAME}

    async def go() -> tuple[str, str]:
        exports, keep = await system.wire(m, procs, settings)
        acme = exports[("acme", "acmeClient")].as_interface(pki().AcmeClient)
        try:
            await acme.directory()
        except capnp.KjException as err:
            from services._runtime.boundary import parse_remote

            return parse_remote(err)
        finally:
            del keep
        return ("", "")

    try:
        reason, detail = loop.run(go())
    finally:
        system.stop(procs)
    assert reason == "unavailable"
    assert f"localhost:{port}" in detail
    for p in procs:
        with pytest.raises(ChildProcessError):
            os.waitpid(p.pid, os.WNOHANG)
