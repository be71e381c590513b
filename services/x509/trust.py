"""The trust-store core: anchors with metadata, restriction, versions.

Pure data and bookkeeping; ``truststore_impl`` wraps it as a capability.
An :class:`Anchor` carries what a root program says about a root: its
label, the purposes it may anchor (Mozilla's ``CKA_TRUST_*`` bits) and,
per purpose, a distrust-after date (``CKA_NSS_SERVER_DISTRUST_AFTER``
and ``CKA_NSS_EMAIL_DISTRUST_AFTER``): certificates whose notBefore is
later are not trusted through it for that purpose.

Restriction builds a new core holding only the filtered anchors (their
purposes narrowed to the filter's), so a restricted view cannot reach
what was filtered out. A core's ``version`` bumps on every change and
its :attr:`TrustStoreCore.digest` names its content, which is what a
verifier caches under (``verifier_impl``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping

from services._runtime import deferred
from services.x509.errors import PolicyRejectedError, Reason
from services.x509.model import ParsedCertificate

ALL_PURPOSES = frozenset({
    "tlsServerAuth", "tlsClientAuth", "codeSigning", "emailSmime",
    "clientIdentity", "ctLog", "ocspSigning", "webauthnRoot",
})


@dataclasses.dataclass(frozen=True)
class Anchor:
    """One trust anchor and what it is trusted for.

    :param purposes: the schema CertPurpose names it may anchor.
    :param distrust_after: ``(purpose, date)`` pairs; a leaf whose
        notBefore is after the date is not trusted through this anchor
        for that purpose. Build it with :func:`distrust`.
    """

    cert: ParsedCertificate
    label: str
    purposes: frozenset[str] = ALL_PURPOSES
    distrust_after: tuple[tuple[str, dt.datetime], ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.purposes) - ALL_PURPOSES
        if unknown:
            raise ValueError(f"unknown purposes {sorted(unknown)}")
        for purpose, when in self.distrust_after:
            if purpose not in ALL_PURPOSES:
                raise ValueError(f"unknown distrust purpose {purpose}")
            if when.tzinfo is None:
                raise ValueError("distrust-after must be timezone-aware")

    def distrusted_after(self, purpose: str) -> dt.datetime | None:
        """The distrust-after date for ``purpose``, or None."""
        dates = [w for p, w in self.distrust_after if p == purpose]
        return min(dates) if dates else None

    def content_line(self) -> str:
        """This anchor's line of the store digest (schema ``snapshot``)."""
        dates = " ".join(f"{p}={int(w.timestamp())}"
                         for p, w in sorted(self.distrust_after))
        return (f"{self.cert.sha256.hex()} "
                f"{','.join(sorted(self.purposes))} {dates}").rstrip()


def distrust(dates: Mapping[str, dt.datetime | None]
             ) -> tuple[tuple[str, dt.datetime], ...]:
    """``Anchor.distrust_after`` from a purpose -> date map (None = none)."""
    return tuple(sorted((p, w) for p, w in dates.items() if w is not None))


def content_digest(anchors: Iterable[Anchor]) -> bytes:
    """SHA-256 naming a set of anchors with their metadata."""
    lines = sorted(a.content_line() for a in anchors)
    return hashlib.sha256("\n".join(lines).encode()).digest()


@deferred.dataclass(frozen=True)
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

    def narrow(self, anchor: Anchor) -> Anchor:
        """``anchor`` trusted only for the purposes this filter names."""
        if not self.purposes:
            return anchor
        kept = anchor.purposes & self.purposes
        return dataclasses.replace(
            anchor, purposes=kept,
            distrust_after=tuple(d for d in anchor.distrust_after
                                 if d[0] in kept))


class TrustStoreCore:
    """A mutable set of anchors with a monotonic version."""

    def __init__(self, anchors: Iterable[Anchor] = ()) -> None:
        self._anchors: dict[bytes, Anchor] = {}
        for anchor in anchors:
            self._anchors[anchor.cert.sha256] = anchor
        self.version = 0
        self._digest: tuple[int, bytes] | None = None

    @property
    def anchors(self) -> tuple[Anchor, ...]:
        return tuple(self._anchors.values())

    @property
    def digest(self) -> bytes:
        """:func:`content_digest` of the anchors, cached per version."""
        if self._digest is None or self._digest[0] != self.version:
            self._digest = (self.version,
                            content_digest(self._anchors.values()))
        return self._digest[1]

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

        :returns: how many were removed. The version bumps when that is
            at least one (the content changed).
        """
        doomed = [k for k, a in self._anchors.items()
                  if (fingerprint and k == fingerprint)
                  or (subject_der and a.cert.subject.der == subject_der)]
        for key in doomed:
            del self._anchors[key]
        if doomed:
            self.version += 1
        return len(doomed)

    def restrict(self, flt: Filter) -> TrustStoreCore:
        """A new core holding only the anchors ``flt`` admits.

        The new core shares no state with this one: it holds its own
        dict of the admitted anchors (purposes narrowed to the filter's)
        and nothing else, so later changes here do not reach it.
        """
        return TrustStoreCore(flt.narrow(a) for a in self.anchors
                              if flt.admits(a))


@deferred.dataclass(frozen=True)
class Excluded:
    """An anchor left out of path building for one leaf, and why.

    :param cutoff: the distrust-after date that excluded it, or None
        when it is not trusted for the purpose at all.
    """

    anchor: Anchor
    purpose: str
    cutoff: dt.datetime | None = None
    leaf_not_before: dt.datetime | None = None

    @property
    def why(self) -> str:
        name = (f"anchor {self.anchor.label!r} "
                f"(sha256={self.anchor.cert.sha256.hex()})")
        if self.cutoff is None or self.leaf_not_before is None:
            return f"{name} is not trusted for {self.purpose}"
        return (f"{name} distrusts {self.purpose} certificates issued "
                f"after {self.cutoff.isoformat()}; leaf notBefore "
                f"{self.leaf_not_before.isoformat()}")


@deferred.dataclass(frozen=True)
class PurposeView:
    """A store's anchors split for one purpose; computed once per store
    content and purpose, then reused for every leaf."""

    purpose: str
    trusted: tuple[ParsedCertificate, ...]
    dated: tuple[tuple[Anchor, dt.datetime], ...]
    untrusted: tuple[Anchor, ...]


def purpose_view(anchors: Iterable[Anchor], purpose: str) -> PurposeView:
    """Split ``anchors`` by whether (and until when) they anchor
    ``purpose``."""
    trusted: list[ParsedCertificate] = []
    dated: list[tuple[Anchor, dt.datetime]] = []
    untrusted: list[Anchor] = []
    for anchor in anchors:
        if purpose not in anchor.purposes:
            untrusted.append(anchor)
            continue
        cutoff = anchor.distrusted_after(purpose)
        if cutoff is None:
            trusted.append(anchor.cert)
        else:
            dated.append((anchor, cutoff))
    return PurposeView(purpose, tuple(trusted), tuple(dated),
                       tuple(untrusted))


def usable_anchors(view: PurposeView, leaf_not_before: dt.datetime
                   ) -> tuple[list[ParsedCertificate], list[Excluded]]:
    """The anchors that may anchor this leaf, and those left out.

    An anchor is left out when it is not trusted for the view's purpose,
    or when its distrust-after date for the purpose is earlier than the
    leaf's notBefore (the root program's "certificates issued after").
    """
    usable = list(view.trusted)
    excluded = [Excluded(a, view.purpose) for a in view.untrusted]
    for anchor, cutoff in view.dated:
        if leaf_not_before > cutoff:
            excluded.append(Excluded(anchor, view.purpose, cutoff,
                                     leaf_not_before))
        else:
            usable.append(anchor.cert)
    return usable, excluded
