"""Fallback guest program: import the crypto stack, serve HTTPS on :443.

Prints ``CAPOS-READY smoke`` on the console once the TLS listener is up
(the host harness waits for that line), then answers every connection
with a tiny HTTP response. The self-signed certificate is thrown away at
power-off; its SHA-256 fingerprint is printed so the host can check it.
"""
from __future__ import annotations

import datetime
import hashlib
import socket
import ssl
import sys
import threading
import time


def _up() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def _say(msg: str) -> None:
    print(f"capos-boot: t={_up():.2f}s {msg}", flush=True)


def _cert() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                         "capos-smoke")])
    # Guest clock is the only clock here; the smoke cert is throwaway.
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("capos-smoke")]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def _serve(conn: socket.socket, ctx: ssl.SSLContext) -> None:
    try:
        with ctx.wrap_socket(conn, server_side=True) as s:
            s.settimeout(10)
            s.recv(4096)
            s.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 11\r\n\r\n"
                      b"capos-smoke")
    except (OSError, ssl.SSLError) as e:
        _say(f"conn error {e!r}")


def main() -> int:
    t0 = time.monotonic()
    import capnp  # noqa: F401
    import cryptography
    import OpenSSL  # noqa: F401
    _say(f"imports ok in {time.monotonic() - t0:.2f}s "
         f"(cryptography {cryptography.__version__}, "
         f"{ssl.OPENSSL_VERSION})")
    cert_pem, key_pem = _cert()
    with open("/run/smoke.crt", "wb") as f:
        f.write(cert_pem)
    with open("/run/smoke.key", "wb") as f:
        f.write(key_pem)
    der = ssl.PEM_cert_to_DER_cert(cert_pem.decode())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain("/run/smoke.crt", "/run/smoke.key")
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("0.0.0.0", 443))
    lsock.listen(16)
    _say(f"cert sha256 {hashlib.sha256(der).hexdigest()}")
    print("CAPOS-READY smoke", flush=True)
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=_serve, args=(conn, ctx),
                         daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
