"""The gateway's ``ChallengeSolver`` capabilities, each scoped to one
thing.

- http-01 (RFC 8555 section 8.3): publishes a key authorization under
  ``/.well-known/acme-challenge/<token>`` of the gateway's HTTP listener
  and nothing else: no other path, no other listener, no DNS, no ALPN.
  The table it writes is shared with the gateway's HTTP responder only.
- tls-alpn-01 (RFC 8737): installs the challenge certificate in one
  :class:`AlpnSlot`, for the one name the slot was made for. The TLS
  listener consults the slot from its ALPN callback.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from services._runtime.boundary import CapabilityError
from services._runtime.clock import Clock
from services._runtime.schema import pki

PREFIX = "/.well-known/acme-challenge/"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,256}$")


class ChallengeTable:
    """Token -> key authorization, for one path prefix."""

    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self._entries: dict[str, str] = {}

    def publish(self, token: str, key_authorization: str) -> None:
        if not _TOKEN.match(token):
            raise CapabilityError(
                "policyViolation", "token is not a base64url string"
            )
        if not key_authorization.startswith(token + "."):
            raise CapabilityError(
                "policyViolation",
                "key authorization does not belong to the token",
            )
        self._entries[token] = key_authorization

    def withdraw(self, token: str) -> None:
        self._entries.pop(token, None)

    def lookup(self, path: str) -> str | None:
        if not path.startswith(self.prefix):
            return None
        return self._entries.get(path[len(self.prefix):])


class Http01SolverImpl(pki().ChallengeSolver.Server):  # type: ignore[misc]
    """Publishes http-01 responses in one :class:`ChallengeTable`."""

    def __init__(self, table: ChallengeTable) -> None:
        self._table = table

    async def solve(self, challenge: Any, _context: Any,
                    **kwargs: Any) -> bool:
        if str(challenge.type) != "http01":
            raise CapabilityError(
                "policyViolation",
                f"this solver publishes http-01 only, not {challenge.type}",
            )
        self._table.publish(challenge.token, challenge.keyAuthorization)
        return True

    async def cleanup(self, challenge: Any, _context: Any,
                      **kwargs: Any) -> None:
        self._table.withdraw(challenge.token)

    async def supports(self, _context: Any, **kwargs: Any) -> list[str]:
        return ["http01"]


#: The acmeIdentifier extension (RFC 8737 section 6.1).
ACME_IDENTIFIER = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")
ACME_TLS_ALPN = b"acme-tls/1"


def alpn_challenge_cert(name: str, key_authorization: str,
                        now: dt.datetime) -> tuple[Any, x509.Certificate]:
    """The self-signed tls-alpn-01 certificate for ``name`` (RFC 8737
    section 3): one dNSName, and a critical acmeIdentifier holding the
    SHA-256 of the key authorization as a DER OCTET STRING."""
    digest = hashlib.sha256(key_authorization.encode()).digest()
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]),
                       critical=False)
        .add_extension(x509.UnrecognizedExtension(
            ACME_IDENTIFIER, b"\x04\x20" + digest), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


class AlpnSlot:
    """The one ALPN slot of a TLS listener, for one name.

    The TLS server consults :meth:`select` from its ALPN callback: a
    ClientHello that offers ``acme-tls/1`` for the slot's name, while a
    challenge is installed, is answered with the challenge certificate;
    every other handshake is untouched.
    """

    def __init__(self, name: str, clock: Clock) -> None:
        self.name = name.lower()
        self.clock = clock
        self._current: tuple[str, Any, x509.Certificate] | None = None

    def install(self, token: str, key_authorization: str) -> None:
        if not _TOKEN.match(token) or not key_authorization.startswith(
            token + "."
        ):
            raise CapabilityError(
                "policyViolation",
                "key authorization does not belong to the token")
        key, cert = alpn_challenge_cert(self.name, key_authorization,
                                        self.clock.now())
        self._current = (token, key, cert)

    def withdraw(self, token: str) -> None:
        if self._current is not None and self._current[0] == token:
            self._current = None

    def lookup(self, server_name: str) -> tuple[Any, x509.Certificate] | None:
        current = self._current
        if current is None or server_name.lower() != self.name:
            return None
        return current[1], current[2]

    def select(self, conn: SSL.Connection,
               offered: list[bytes]) -> bytes | Any:
        """An ALPN select callback (pyOpenSSL): switch the connection to
        the challenge certificate and pick ``acme-tls/1``, or pick
        ``http/1.1`` (or nothing) for ordinary clients."""
        if ACME_TLS_ALPN in offered:
            sni = (conn.get_servername() or b"").decode("ascii", "replace")
            found = self.lookup(sni)
            if found is None:
                return SSL.NO_OVERLAPPING_PROTOCOLS
            conn.use_certificate(found[1])
            conn.use_privatekey(found[0])
            return ACME_TLS_ALPN
        if b"http/1.1" in offered:
            return b"http/1.1"
        return SSL.NO_OVERLAPPING_PROTOCOLS


class TlsAlpn01SolverImpl(pki().ChallengeSolver.Server):  # type: ignore[misc]
    """Publishes tls-alpn-01 certificates in one :class:`AlpnSlot`."""

    def __init__(self, slot: AlpnSlot) -> None:
        self._slot = slot

    def _check(self, challenge: Any) -> None:
        if str(challenge.type) != "tlsAlpn01":
            raise CapabilityError(
                "policyViolation",
                f"this solver publishes tls-alpn-01 only, not "
                f"{challenge.type}")
        name = str(challenge.identifier.value).lower()
        if str(challenge.identifier.type) != "dns" or name != self._slot.name:
            raise CapabilityError(
                "policyViolation",
                f"outside scope: {name} is not {self._slot.name}")

    async def solve(self, challenge: Any, _context: Any,
                    **kwargs: Any) -> bool:
        self._check(challenge)
        self._slot.install(str(challenge.token),
                           str(challenge.keyAuthorization))
        return True

    async def cleanup(self, challenge: Any, _context: Any,
                      **kwargs: Any) -> None:
        self._check(challenge)
        self._slot.withdraw(str(challenge.token))

    async def supports(self, _context: Any, **kwargs: Any) -> list[str]:
        return ["tlsAlpn01"]
