"""The gateway's TLS listener consults its ALPN slot: a handshake that
offers acme-tls/1 for the slot's name gets the challenge certificate
while one is installed; ordinary handshakes keep the served chain.
Peer: openssl s_client on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import threading

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services._runtime.clock import SystemClock
from services.gateway.service import TLSServer, tls_context
from services.gateway.solver_impl import ACME_IDENTIFIER, AlpnSlot
from tests.services.acme.scripted import issued_chain

NAME = "x.capos.test"
TOKEN = "Q" * 43


def served_leaf(port: int, alpn: str | None) -> tuple[
        x509.Certificate, str]:
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
           "-servername", NAME, "-showcerts"]
    if alpn:
        cmd += ["-alpn", alpn]
    out = subprocess.run(cmd, input=b"", capture_output=True, timeout=20,
                         check=False).stdout.decode()
    pem = out[out.index("-----BEGIN CERTIFICATE-----"):]
    pem = pem[:pem.index("-----END CERTIFICATE-----") + 25]
    proto = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                  if line.startswith("ALPN protocol:")), "")
    return x509.load_pem_x509_certificate(pem.encode()), proto


def test_gateway_tls_listener_answers_tls_alpn01_from_its_slot() -> None:
    chain_pem = issued_chain(NAME)
    certs = x509.load_pem_x509_certificates(chain_pem.encode())
    ders = [c.public_bytes(serialization.Encoding.DER) for c in certs]
    # The served chain: a leaf (serial 9) for a key held here, and an
    # issuer certificate; s_client does not verify, it only shows.
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(certs[0].subject).issuer_name(certs[0].issuer)
            .public_key(key.public_key()).serial_number(9)
            .not_valid_before(certs[0].not_valid_before_utc)
            .not_valid_after(certs[0].not_valid_after_utc)
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(NAME)]), False)
            .sign(ec.generate_private_key(ec.SECP256R1()),
                  certs[0].signature_hash_algorithm))
    ders = [leaf.public_bytes(serialization.Encoding.DER), ders[1]]
    slot = AlpnSlot(NAME, SystemClock())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    server = TLSServer(sock)
    server.context = tls_context(key, ders, slot)
    port = sock.getsockname()[1]

    def accept(count: int) -> None:
        # The gateway's per-connection path, for a bounded count of
        # connections (its own accept loop never stops).
        for _ in range(count):
            conn, _ = sock.accept()
            server._handle(conn)

    acceptor = threading.Thread(target=accept, args=(4,), daemon=True)
    acceptor.start()

    plain, _ = served_leaf(port, None)
    assert plain.serial_number == 9
    slot.install(TOKEN, f"{TOKEN}.thumb")
    challenge, proto = served_leaf(port, "acme-tls/1")
    assert proto == "acme-tls/1"
    assert challenge.extensions.get_extension_for_oid(
        ACME_IDENTIFIER).critical
    ordinary, _ = served_leaf(port, "http/1.1")
    assert ordinary.serial_number == 9
    slot.withdraw(TOKEN)
    after, _ = served_leaf(port, None)
    assert after.serial_number == 9
    acceptor.join(10)
    assert not acceptor.is_alive()
    assert server.handshakes == 4
    sock.close()
