"""The trust-store core: anchors with metadata, restriction, versions.

Pure data and bookkeeping; ``truststore_impl`` wraps it as a capability.
Restriction builds a new core holding only the filtered anchors, so a
restricted view cannot reach what was filtered out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

from services.x509.errors import PolicyRejectedError, Reason
from services.x509.model import ParsedCertificate

ALL_PURPOSES = frozenset({
    "tlsServerAuth", "tlsClientAuth", "codeSigning", "emailSmime",
    "clientIdentity", "ctLog", "ocspSigning", "webauthnRoot",
})


@dataclasses.dataclass(frozen=True)
class Anchor:
    """One trust anchor and what it is trusted for."""

    cert: ParsedCertificate
    label: str
    purposes: frozenset[str] = ALL_PURPOSES
    distrust_after: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class Filter:
    """Mirror of schema TrustFilter; empty lists mean "no constraint"."""

    purposes: frozenset[str] = frozenset()
    fingerprints: frozenset[bytes] = frozenset()
    subjects: frozenset[bytes] = frozenset()
    exclude_fingerprints: frozenset[bytes] = frozenset()

    def admits(self, anchor: Anchor) -> bool:
        if self.purposes and not self.purposes & anchor.purposes:
            return False
        if self.fingerprints and anchor.cert.sha256 not in self.fingerprints:
            return False
        if self.subjects and anchor.cert.subject.der not in self.subjects:
            return False
        return anchor.cert.sha256 not in self.exclude_fingerprints


class TrustStoreCore:
    """A mutable set of anchors with a monotonic version."""

    def __init__(self, anchors: tuple[Anchor, ...] = ()) -> None:
        self._anchors: dict[bytes, Anchor] = {}
        for anchor in anchors:
            self._anchors[anchor.cert.sha256] = anchor
        self.version = 0

    @property
    def anchors(self) -> tuple[Anchor, ...]:
        return tuple(self._anchors.values())

    def add(self, anchor: Anchor, spki_pin: bytes = b"") -> None:
        """Add (or replace) an anchor; bumps the version.

        :raises PolicyRejectedError: ``pinMismatch`` if ``spki_pin`` is
            given and is not the SHA-256 of the anchor's SPKI.
        """
        if spki_pin:
            if hashlib.sha256(anchor.cert.spki_der).digest() != spki_pin:
                raise PolicyRejectedError(
                    Reason.pinMismatch, "anchor SPKI does not match pin",
                    sha256=anchor.cert.sha256.hex())
        self._anchors[anchor.cert.sha256] = anchor
        self.version += 1

    def remove(self, *, fingerprint: bytes = b"",
               subject_der: bytes = b"") -> int:
        """Remove anchors by SHA-256 fingerprint or subject DER.

        :returns: how many were removed. The version bumps on every call.
        """
        doomed = [k for k, a in self._anchors.items()
                  if (fingerprint and k == fingerprint)
                  or (subject_der and a.cert.subject.der == subject_der)]
        for key in doomed:
            del self._anchors[key]
        self.version += 1
        return len(doomed)

    def restrict(self, flt: Filter) -> TrustStoreCore:
        """A new core holding only the anchors ``flt`` admits."""
        return TrustStoreCore(tuple(a for a in self.anchors
                                    if flt.admits(a)))
