"""Debian's pebble and pebble-challtestsrv on 127.0.0.1, for ACME runs.

:class:`Pebble` is a context manager that starts both, waits for pebble's
own readiness line (never a port probe), and always stops them. Pebble's
HTTPS listener uses a certificate from a test CA made here, so the guest
can trust it through a TrustStore capability seeded from the manifest
(``acme-server-root``) instead of a CA file or a library default. That CA
is kept in ``~/.cache/capos/pebble/`` so the manifest and image stay
cached across runs.

Names: the ACME directory is ``https://acme.capos.test:<port>/dir``; the
guest resolves ``acme.capos.test`` to QEMU's guestfwd address. Pebble
resolves every name through challtestsrv's DNS, which answers 127.0.0.1,
so http-01 validation reaches ``127.0.0.1:<httpPort>``, which QEMU
forwards to the guest's port 80.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import logging
import os
import socket
import ssl
import subprocess
import threading
import urllib.request
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tools.proc import die_with_parent

log = logging.getLogger(__name__)

ACME_HOST = "acme.capos.test"
CACHE = Path(os.environ.get("CAPOS_CACHE", Path.home() / ".cache/capos"))


class PebbleError(RuntimeError):
    """Pebble could not be started or did not answer."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_ca(directory: Path) -> tuple[Path, Path, Path]:
    """The test CA for pebble's HTTPS listener: (root, cert, key) PEMs.

    Made once and kept; valid for ten years from its creation.
    """
    root_p = directory / "acme-server-root.pem"
    cert_p = directory / "acme-server-cert.pem"
    key_p = directory / "acme-server-key.pem"
    if root_p.exists() and cert_p.exists() and key_p.exists():
        return root_p, cert_p, key_p
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start, end = now - dt.timedelta(days=1), now + dt.timedelta(days=3650)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME,
                            "capOS test ACME-server root")]
    )
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name).issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False,
            key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(
            root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, ACME_HOST)]))
        .issuer_name(root_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                       True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName(ACME_HOST), x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            root_key.public_key()), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(
            key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    key_p.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    cert_p.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    root_p.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    return root_p, cert_p, key_p


@dataclasses.dataclass(frozen=True)
class Ports:
    acme: int
    management: int
    http01: int
    tlsalpn01: int
    dns: int
    challtest: int


class Pebble:
    """Pebble plus challtestsrv, loopback only.

    :param logs: directory for both servers' output.
    :param nonce_reject: percentage of valid nonces pebble rejects (its
        default is 5; runs that measure pass 0).
    :param authz_reuse: percentage of valid authorizations pebble reuses
        for a new order (``None``: pebble's default, 50). Even 0 reuses
        one in a hundred: pebble makes a new authorization only when
        ``rand.Intn(100) > percent``. A test that needs an order
        validated orders under an account with no valid authorization.
    :param validity: lifetime in seconds of the certificates pebble
        issues (its ``certificateValidityPeriod``; ``None``: pebble's
        default of five years). Rotation tests pass a short one so that
        the renewal policy itself makes renewals due in bounded time.
    """

    def __init__(self, logs: Path, nonce_reject: int = 5,
                 ports: Ports | None = None,
                 authz_reuse: int | None = None,
                 validity: int | None = None) -> None:
        self.logs = logs
        self.nonce_reject = nonce_reject
        self.authz_reuse = authz_reuse
        self.validity = validity
        self.ports = ports or Ports(*(free_port() for _ in range(6)))
        self.root_pem, self._cert, self._key = server_ca(CACHE / "pebble")
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def directory_url(self) -> str:
        return f"https://{ACME_HOST}:{self.ports.acme}/dir"

    @property
    def local_directory_url(self) -> str:
        return f"https://127.0.0.1:{self.ports.acme}/dir"

    def __enter__(self) -> Pebble:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, et: type[BaseException] | None,
                 ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        p = self.ports
        self._spawn("challtestsrv", [
            "pebble-challtestsrv",
            "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
            "-dns01", f"127.0.0.1:{p.dns}", "-http01", "",
            "-https01", "", "-tlsalpn01", "",
            "-management", f"127.0.0.1:{p.challtest}",
        ], "Starting management server", {})
        config = self.logs / "pebble-config.json"
        settings: dict[str, object] = {
            "listenAddress": f"127.0.0.1:{p.acme}",
            "managementListenAddress": f"127.0.0.1:{p.management}",
            "certificate": str(self._cert),
            "privateKey": str(self._key),
            "httpPort": p.http01,
            "tlsPort": p.tlsalpn01,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        if self.validity is not None:
            settings["certificateValidityPeriod"] = self.validity
        config.write_text(json.dumps({"pebble": settings}, indent=2))
        env = {
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": str(self.nonce_reject),
        }
        if self.authz_reuse is not None:
            env["PEBBLE_AUTHZREUSE"] = str(self.authz_reuse)
        self._spawn("pebble", [
            "pebble", "-config", str(config),
            "-dnsserver", f"127.0.0.1:{p.dns}",
        ], "ACME directory available", env)

    def _spawn(self, name: str, cmd: list[str], ready: str,
               env: dict[str, str], timeout: float = 30.0) -> None:
        logfile = self.logs / f"{name}.log"
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**os.environ, **env}, preexec_fn=die_with_parent,
        )
        self._procs.append(proc)
        seen = threading.Event()
        out = open(logfile, "wb")

        def pump() -> None:
            assert proc.stdout is not None
            with out, proc.stdout:
                for line in proc.stdout:
                    out.write(line)
                    out.flush()
                    if ready.encode() in line:
                        seen.set()

        threading.Thread(target=pump, daemon=True).start()
        if not seen.wait(timeout):
            code = proc.poll()
            raise PebbleError(
                f"{name} did not say {ready!r} within {timeout:.0f} s "
                f"(exit status {code}); log: {logfile}"
            )
        log.info("%s ready (pid %d)", name, proc.pid)

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.root_pem))
        ctx.check_hostname = False
        return ctx

    def issuance_roots(self) -> list[bytes]:
        """PEM of pebble's current issuance root (and its alternates)."""
        url = f"https://127.0.0.1:{self.ports.management}/roots/0"
        with urllib.request.urlopen(url, context=self._context(),
                                    timeout=10) as resp:
            return [resp.read()]
