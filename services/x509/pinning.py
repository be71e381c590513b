"""The pin-set core: SPKI pins, modes, expiry and the pin decision.

Pure: values in, a :class:`PinDecision` out; the time is an argument.
``pinset_impl`` wraps it as the schema ``PinSet`` capability.

A pin is a digest of a certificate's DER SubjectPublicKeyInfo (RFC 7469
section 2.4, "pin-sha256"; SHA-384 and SHA-512 are accepted too, SHA-1
is not). :func:`decide` matches pins against a *verified path*, the one
the verifier built from the leaf to a trust anchor, never against the
list a peer sent: a peer may append any certificate it likes (a pinned
intermediate it did not chain through), so only what the path builder
actually used proves anything. Any certificate of the path may match
(leaf, intermediate or anchor), as in RFC 7469 section 2.6.

Modes (schema ``PinMode``): ``enforce`` fails a mismatch with
``pinMismatch``; ``reportOnly`` lets it pass and the caller audits it.
An expired pin set (``expires`` in the past, RFC 7469 section 2.3.3's
max-age) enforces nothing, in either mode, and its decision says so. A
pin set with no pins matches nothing: in ``enforce`` mode it fails
closed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence

from services.x509.errors import PolicyRejectedError, Reason
from services.x509.model import ParsedCertificate

#: Pin digests accepted, with their lengths.
PIN_HASHES = {"sha256": 32, "sha384": 48, "sha512": 64}
MODES = ("enforce", "reportOnly")


@dataclasses.dataclass(frozen=True, order=True)
class Pin:
    """One SPKI pin (schema ``Pin``)."""

    hash_algorithm: str
    spki_hash: bytes

    def __post_init__(self) -> None:
        size = PIN_HASHES.get(self.hash_algorithm)
        if size is None:
            raise PolicyRejectedError(
                Reason.weakAlgorithm,
                f"pin hash {self.hash_algorithm} not accepted "
                f"(use one of {', '.join(PIN_HASHES)})")
        if len(self.spki_hash) != size:
            raise PolicyRejectedError(
                Reason.policyViolation,
                f"{self.hash_algorithm} pin must be {size} bytes, "
                f"got {len(self.spki_hash)}")

    @classmethod
    def of(cls, cert: ParsedCertificate,
           hash_algorithm: str = "sha256") -> Pin:
        """The pin of ``cert``'s SPKI."""
        return cls(hash_algorithm,
                   hashlib.new(hash_algorithm, cert.spki_der).digest())

    def matches(self, cert: ParsedCertificate) -> bool:
        digest = hashlib.new(self.hash_algorithm, cert.spki_der).digest()
        return digest == self.spki_hash

    def describe(self) -> str:
        return f"pin-{self.hash_algorithm}={self.spki_hash.hex()}"


@dataclasses.dataclass(frozen=True)
class PinDecision:
    """What :func:`decide` concluded about one verified path.

    :param verdict: ``match``, ``mismatch`` or ``expired``.
    :param enforced: whether a mismatch fails the chain.
    :param detail: one line for the outcome and the audit record.
    """

    verdict: str
    enforced: bool
    detail: str
    matched: Pin | None = None

    @property
    def passes(self) -> bool:
        return self.verdict != "mismatch" or not self.enforced


class PinSetCore:
    """A mutable set of pins with a mode and an expiry fixed at minting."""

    def __init__(self, pins: Iterable[Pin] = (), *, mode: str = "enforce",
                 expires: dt.datetime | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"pin mode must be one of {MODES}")
        if expires is not None and expires.tzinfo is None:
            raise ValueError("expiry must be timezone-aware")
        self._pins = set(pins)
        self.mode = mode
        self.expires = expires

    @property
    def pins(self) -> tuple[Pin, ...]:
        return tuple(sorted(self._pins))

    def add(self, pin: Pin) -> bool:
        """Add ``pin``; whether it was new."""
        new = pin not in self._pins
        self._pins.add(pin)
        return new

    def remove(self, pin: Pin) -> bool:
        """Remove ``pin``; whether it was there."""
        if pin not in self._pins:
            return False
        self._pins.remove(pin)
        return True

    def expired(self, now: dt.datetime) -> bool:
        return self.expires is not None and now >= self.expires


def decide(core: PinSetCore, path: Sequence[ParsedCertificate],
           now: dt.datetime) -> PinDecision:
    """Match ``core``'s pins against a verified ``path`` at ``now``.

    :param path: the verifier's path, leaf first, anchor last.
    """
    if core.expired(now):
        assert core.expires is not None
        return PinDecision(
            "expired", False,
            f"pin set expired at {core.expires.isoformat()}; not enforced")
    for cert in path:
        for pin in core.pins:
            if pin.matches(cert):
                return PinDecision(
                    "match", core.mode == "enforce",
                    f"{pin.describe()} matches {cert.describe()}", pin)
    enforced = core.mode == "enforce"
    what = ("no pins" if not core.pins
            else f"none of {len(core.pins)} pins")
    return PinDecision(
        "mismatch", enforced,
        f"{what} match the verified path of {len(path)} certificates"
        + ("" if enforced else " (report-only)"))
