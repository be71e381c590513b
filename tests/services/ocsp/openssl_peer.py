"""OpenSSL's ``openssl ocsp`` as a responder peer, loopback only.

``openssl ocsp -port`` binds every interface (DESIGN.md 4a), so it is
never used: an :class:`~services.ocsp.server.OcspHttpServer` on
127.0.0.1 runs ``openssl ocsp -reqin/-respout`` once per request over
an OpenSSL ``index.txt`` written from the private CA's database.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from services.ca.core import PrivateCA
from services.ocsp.server import OcspHttpServer


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%y%m%d%H%M%SZ")


def _serial(n: int) -> str:
    text = format(n, "X")
    return text if len(text) % 2 == 0 else "0" + text


class OpenSSLResponder:
    """``openssl ocsp`` answering for a :class:`PrivateCA`."""

    def __init__(self, ca: PrivateCA, clock: Any, workdir: Path,
                 ndays: int = 1) -> None:
        self.ca = ca
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ndays = ndays
        cred = ca.responder()
        (self.dir / "ca.pem").write_bytes(
            ca.cert.public_bytes(serialization.Encoding.PEM))
        (self.dir / "rsigner.pem").write_bytes(
            cred.cert.public_bytes(serialization.Encoding.PEM))
        key = self.dir / "rkey.pem"
        key.write_bytes(cred.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        key.chmod(0o600)
        self.write_index()
        self.server = OcspHttpServer(self.answer, clock)

    def write_index(self) -> None:
        """``index.txt`` from the CA database (status, expiry,
        revocation[,reason], serial, file, subject)."""
        lines = []
        for r in self.ca.store.records():
            revoked = ""
            status = "V"
            if r.revoked_at is not None:
                status = "R"
                revoked = _stamp(r.revoked_at)
                if r.reason != "unspecified":
                    revoked += f",{r.reason}"
            lines.append("\t".join([status, _stamp(r.not_after), revoked,
                                    _serial(r.serial), "unknown",
                                    "/CN=" + r.sans[0].split(":", 1)[1]]))
        (self.dir / "index.txt").write_text("".join(f"{ln}\n"
                                                    for ln in lines))

    def answer(self, request: bytes, now: Any) -> bytes:
        del now  # openssl reads the real clock itself
        with tempfile.TemporaryDirectory(dir=self.dir) as tmp:
            req = Path(tmp) / "req.der"
            resp = Path(tmp) / "resp.der"
            req.write_bytes(request)
            subprocess.run(
                ["openssl", "ocsp", "-index", str(self.dir / "index.txt"),
                 "-CA", str(self.dir / "ca.pem"),
                 "-rsigner", str(self.dir / "rsigner.pem"),
                 "-rkey", str(self.dir / "rkey.pem"),
                 "-reqin", str(req), "-respout", str(resp),
                 "-ndays", str(self.ndays)],
                check=True, capture_output=True, timeout=30)
            return resp.read_bytes()

    def __enter__(self) -> OpenSSLResponder:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
