"""One private CA: its directory, its clock and its random source.

:class:`PrivateCA` is what every CertificateAuthority capability of one
CA shares (each holder differs only in its :class:`IssuancePolicy`),
and what the OCSP responder and the CRL endpoint read statuses from.
Opening a directory a second time, from this process or after a
restart, yields the same CA, records and revocations.

The delegated OCSP signer is renewed once half its lifetime has passed
(the same rule as staple refresh, DESIGN.md section 6), so a responder
never signs with a certificate about to expire.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from services._runtime import deferred
from services._runtime.clock import Clock
from services.ca import issuer
from services.ca.model import Admitted, CAConfig, IssuedRecord, name_text
from services.ca.store import CADirectory

RandomSource = Callable[[int], bytes]


@deferred.dataclass(frozen=True)
class ResponderCredential:
    """The delegated OCSP signer's key and certificate."""

    key: Any
    cert: x509.Certificate


class PrivateCA:
    """A CA whose state lives under ``path``."""

    def __init__(self, path: Path, config: CAConfig, clock: Clock,
                 random: RandomSource = os.urandom) -> None:
        self.config = config
        self._clock = clock
        self._random = random
        self._lock = threading.Lock()
        self.store = CADirectory(path)
        pair = self.store.load_pair("ca")
        if pair is None:
            key = issuer.new_key(config.key_type)
            cert = issuer.new_root(key, config, self._serial(), clock.now())
            self.store.save_pair("ca", key, cert)
            pair = (key, cert)
        self._key, self.cert = pair
        self.cert_der = self.cert.public_bytes(Encoding.DER)
        loaded = self.store.load_pair("responder")
        self._responder = (ResponderCredential(*loaded) if loaded
                           else None)

    def close(self) -> None:
        self.store.close()

    def _serial(self) -> int:
        return issuer.serial_from(self._random(issuer.SERIAL_BYTES))

    def issue(self, admitted: Admitted) -> IssuedRecord:
        """Sign an admitted request and record it before returning."""
        cert = issuer.issue_leaf(self.cert, self._key, admitted,
                                 self._serial(), self._clock.now(),
                                 self.config)
        record = IssuedRecord(
            serial=cert.serial_number, der=cert.public_bytes(Encoding.DER),
            sha256=cert.fingerprint(hashes.SHA256()),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            sans=tuple(name_text(g) for g in admitted.sans))
        self.store.add(record)
        return record

    def revoke(self, serial: int, reason: str,
               at: dt.datetime | None = None) -> bool:
        """Record a revocation; False if it was already revoked."""
        return self.store.revoke(serial, reason, at or self._clock.now())

    def lookup(self, serial: int) -> IssuedRecord | None:
        return self.store.get(serial)

    def crl(self) -> x509.CertificateRevocationList:
        """A fresh CRL of every revocation, numbered."""
        return issuer.build_crl(self.cert, self._key, self.store.revoked(),
                                self.store.next_counter("crl"),
                                self._clock.now(), self.config)

    def responder(self) -> ResponderCredential:
        """The current delegated OCSP signer, renewed at half-life."""
        now = self._clock.now()
        with self._lock:
            cred = self._responder
            if cred is not None:
                nb = cred.cert.not_valid_before_utc
                na = cred.cert.not_valid_after_utc
                if now < nb + (na - nb) / 2:
                    return cred
            key = issuer.new_key(self.config.key_type)
            cert = issuer.issue_responder(self.cert, self._key, key,
                                          self._serial(), now, self.config)
            self.store.save_pair("responder", key, cert)
            self._responder = ResponderCredential(key, cert)
            return self._responder
