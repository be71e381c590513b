"""A scripted ACME server behind a requests adapter, for fault injection.

Nothing leaves the process: :class:`ScriptedAcme` is mounted as the
client's transport and answers from defaults that complete an order with
an already-valid authorization, unless a test queues other answers for a
path. Every request is logged with its decoded JWS, so tests can assert
on what the client signed and sent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
from typing import Any
from urllib.parse import urlparse

import josepy as jose
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from requests.adapters import BaseAdapter

BASE = "https://acme.test"
DIRECTORY = f"{BASE}/dir"


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    nonce: str | None = None


def problem(code: str, status: int = 400, detail: str = "scripted",
            headers: tuple[tuple[str, str], ...] = (),
            nonce: str | None = None) -> Reply:
    return Reply(status, {"type": f"urn:ietf:params:acme:error:{code}",
                          "detail": detail}, headers, nonce)


def order_body(status: str, certificate: bool = False,
               error: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": status,
        "identifiers": [{"type": "dns", "value": "x.capos.test"}],
        "authorizations": [f"{BASE}/authz/1"],
        "finalize": f"{BASE}/finalize/1",
    }
    if certificate:
        body["certificate"] = f"{BASE}/cert/1"
    if error:
        body["error"] = error
    return body


def issued_chain(name: str = "x.capos.test") -> str:
    """A leaf and its issuer, PEM, as a server would send them."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime(2026, 10, 21, tzinfo=dt.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name)
          .issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now)
          .not_valid_after(now + dt.timedelta(days=90))
          .add_extension(x509.BasicConstraints(True, None), True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(2)
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(name)]), True)
            .sign(ca_key, hashes.SHA256()))
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode()
                   for c in (leaf, ca))


def anchor_der() -> bytes:
    pem = issued_chain().encode()
    return x509.load_pem_x509_certificates(pem)[1].public_bytes(
        serialization.Encoding.DER)


@dataclasses.dataclass
class Logged:
    method: str
    path: str
    protected: dict[str, Any]
    payload: Any
    jws: dict[str, Any] | None


class ScriptedAcme(BaseAdapter):  # type: ignore[misc]
    """The server. ``queue(path, *replies)`` overrides the defaults."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[Logged] = []
        self.nonces = (f"n{i:07d}" for i in itertools.count())
        self.scripts: dict[str, list[Reply]] = {}
        self.chain = issued_chain()

    def queue(self, path: str, *replies: Reply) -> None:
        self.scripts.setdefault(path, []).extend(replies)

    def posts(self, path: str) -> list[Logged]:
        return [e for e in self.log if e.method == "POST" and e.path == path]

    def count(self, method: str, path: str) -> int:
        return sum(1 for e in self.log
                   if e.method == method and e.path == path)

    def _default(self, method: str, path: str) -> Reply:
        if path == "/dir":
            return Reply(200, {
                "newNonce": f"{BASE}/nonce", "newAccount": f"{BASE}/acct",
                "newOrder": f"{BASE}/new-order",
                "revokeCert": f"{BASE}/revoke",
                "keyChange": f"{BASE}/key-change",
                "meta": {"termsOfService": f"{BASE}/tos"},
            })
        if path == "/nonce":
            return Reply(200)
        if path == "/acct":
            return Reply(201, {"status": "valid", "contact": []},
                         (("Location", f"{BASE}/acct/1"),))
        if path == "/new-order":
            return Reply(201, order_body("pending"),
                         (("Location", f"{BASE}/order/1"),))
        if path == "/authz/1":
            return Reply(200, {
                "status": "valid",
                "identifier": {"type": "dns", "value": "x.capos.test"},
                "challenges": [{"type": "http-01", "status": "valid",
                                "url": f"{BASE}/chall/1",
                                "token": "A" * 43}],
            })
        if path == "/finalize/1":
            return Reply(200, order_body("processing"))
        if path == "/order/1":
            return Reply(200, order_body("valid", certificate=True))
        if path == "/cert/1":
            return Reply(200, self.chain, (
                ("Content-Type", "application/pem-certificate-chain"),))
        if path == "/key-change":
            return Reply(200, {"status": "valid"})
        return problem("malformed", 404, f"no route {method} {path}")

    def send(self, request: requests.PreparedRequest,
             **kwargs: Any) -> requests.Response:
        path = urlparse(request.url).path
        protected: dict[str, Any] = {}
        payload: Any = None
        body = None
        if request.body:
            body = json.loads(request.body)
            protected = json.loads(jose.b64decode(body["protected"]))
            raw = jose.b64decode(body["payload"])
            payload = json.loads(raw) if raw else None
        self.log.append(Logged(str(request.method), path, protected,
                               payload, body))
        queued = self.scripts.get(path)
        reply = (queued.pop(0) if queued
                 else self._default(str(request.method), path))
        resp = requests.Response()
        resp.status_code = reply.status
        resp.url = str(request.url)
        resp.request = request
        resp.headers["Replay-Nonce"] = reply.nonce or next(self.nonces)
        if isinstance(reply.body, str):
            resp._content = reply.body.encode()
        elif reply.body is not None:
            resp._content = json.dumps(reply.body).encode()
            resp.headers["Content-Type"] = (
                "application/problem+json" if reply.status >= 400
                else "application/json")
        else:
            resp._content = b""
        for k, v in reply.headers:
            resp.headers[k] = v
        return resp

    def close(self) -> None:
        pass
