"""The pure decision core of chain verification.

Values in, a :class:`VerifiedPath` out, or a :class:`VerificationError`
whose reason is a schema ``FailureReason`` name. Path building and
signature checks are pyca's ``cryptography.x509.verification`` (the
CA/B Forum and RFC 5280 profile of rustls-webpki); this module adds, as
checks of its own on the *built* path, what the capOS policy and the
x509-limbo corpus ask for beyond it:

- reference identities (RFC 6125 section 6; IDNA2008 A-labels, no ``*``
  in a reference, RFC 1034 preferred syntax) and CN/SAN agreement
  (CA/B BR 7.1.4.3), wildcards over public suffixes (BR 3.2.2.6);
- EKU per purpose and chained through CAs (RFC 5280 section 4.2.1.12,
  BR 7.1.2.7.10): no ``anyExtendedKeyUsage`` in a leaf; with
  ``cabf_root_profile`` (webPkiStrict) no EKU in the root (BR 7.1.2.1.2);
- the root AKI profile (BR 7.1.2.1.3), AKI on every certificate that is
  not self-issued and SKI on every intermediate (RFC 5280 4.2.1.1/2),
  positive serials (4.1.2.2), critical policyConstraints and
  inhibitAnyPolicy (4.2.1.11, 4.2.1.14);
- algorithm gating by ``allowedAlgorithms`` (keys of every certificate
  of the path, anchor included) and ``allowedSignatureSchemes`` (every
  signature the path relies on; never the anchor's self-signature);
- ``clockSkewSeconds`` applied to both validity edges of every
  certificate of the path (never by adding to a notAfter, so
  9999-12-31T23:59:59Z cannot overflow);
- ``maxChainLength``: the number of certificates on the built path, the
  leaf and the anchor included, self-issued intermediates not counted
  (RFC 5280 section 6.1.4 (l)); so ``maxChainLength = N`` admits N-2
  intermediates;
- ``permitNameConstraints``: when false, a path through a name-
  constrained CA fails ``nameConstraintViolation``.

Path-building budget (field report 9): the intermediates a peer sends
are de-duplicated by DER, the leaf and the anchors are removed from
them, certificates that cannot be on an acceptable path (not a CA, a
refused algorithm, no issuer-name link to the leaf) are dropped, and
the rest is capped at :data:`MAX_INTERMEDIATES` nearest the leaf before
pyca sees it. The schema has no reason of its own for an exhausted
budget; such a failure is ``unknownAnchor`` with a detail starting
``path-building budget exhausted``.

Failure reasons come from checks here, not from pyca's message text:
when pyca refuses, :func:`_diagnose` rebuilds the candidate path by
issuer name and signature (budgeted) and runs this module's checks on
it; pyca's text is the fallback only for what pyca alone checks (name
constraints, extension profile). A name-constraint violation is one
pyca finds only after checking the signature below the constrained CA,
so when pyca names one the path by issuer names alone is checked, and
the violation is the reason unless that path fails a check here (then
the signature search decides, as for any other refusal).

Revocation (DESIGN.md section 6; RFC 6960, RFC 7633, RFC 5280 6.3):
:func:`decide_revocation` runs on the built path. The leaf's decision is
:func:`services.ocsp.evidence.check_revocation` (the one revocation
check of the platform) over the evidence handed in: a stapled OCSP
response, a response the verifier fetched through its ``OcspResponder``
capability, and the issuer's CRL (from its ``CrlStore``); a good
response, a fresh CRL or a short-lived leaf passes, must-staple and
``staplingRequired`` need a good staple, ``requireOcsp`` turns missing
evidence into ``ocspUnavailable``, and otherwise the chain soft-fails
and the result says so. The CA certificates of the path are checked
against their issuers' CRLs when given (listed: ``revoked``; unusable:
noted, and ``ocspUnavailable`` under ``requireOcsp``).

Limitations: SCT signature verification is not implemented here; a
policy with ``min_scts > 0`` fails ``insufficientScts`` rather than
silently passing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import ipaddress
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from cryptography import exceptions as cexc
from cryptography import x509
from cryptography.x509 import verification as pv

from services._runtime import deferred
from services.crl.errors import CrlError
from services.crl.policy import check_crl, lookup
from services.ocsp import errors as ocsp_errors
from services.ocsp import evidence
from services.x509.errors import Reason, VerificationError
from services.x509.model import ParsedCertificate

#: Cap on intermediates handed to the path builder, after de-duplication
#: and pruning, so a hostile peer cannot make path building explode.
MAX_INTERMEDIATES = 20

#: Signature checks :func:`_diagnose` may spend explaining a failure.
DIAGNOSE_BUDGET = 64

#: A leaf valid for this long or less passes revocation without OCSP
#: (DESIGN.md section 6; CA/B Forum BR 4.9.10 short-lived certificates).
SHORT_LIVED = evidence.SHORT_LIVED

MODERN_ALGORITHMS = ("rsa2048", "rsa3072", "rsa4096", "ecdsaP256",
                     "ecdsaP384", "ecdsaP521", "ed25519")
MODERN_SCHEMES = ("rsaPkcs1Sha256", "rsaPkcs1Sha384", "rsaPkcs1Sha512",
                  "rsaPssSha256", "rsaPssSha384", "rsaPssSha512",
                  "ecdsaP256Sha256", "ecdsaP384Sha384", "ecdsaP521Sha512",
                  "ed25519")

ANY_EKU = "2.5.29.37.0"
SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"

#: The EKU each purpose requires of the leaf and of every CA on the path
#: that carries an EKU (None: the purpose names no EKU).
PURPOSE_EKU: dict[str, str | None] = {
    "tlsServerAuth": SERVER_AUTH,
    "tlsClientAuth": CLIENT_AUTH,
    "clientIdentity": CLIENT_AUTH,
    "codeSigning": "1.3.6.1.5.5.7.3.3",
    "emailSmime": "1.3.6.1.5.5.7.3.4",
    "ocspSigning": "1.3.6.1.5.5.7.3.9",
    "webauthnRoot": None,
}

#: Purposes whose leaf may omit the EKU extension ("any purpose" under
#: RFC 5280 section 4.2.1.12; field report 7a). Server certificates must
#: carry one (BR 7.1.2.7.6); the narrow purposes must name themselves.
EKU_OPTIONAL = frozenset({"tlsClientAuth", "clientIdentity",
                          "webauthnRoot"})

#: Purposes verified with a reference identity in ``hostname``.
NAMED_PURPOSES = frozenset({"tlsServerAuth"})


@dataclasses.dataclass(frozen=True)
class VerificationPolicy:
    """Mirror of the schema struct; fixed when a verifier is minted.

    ``max_chain_length`` counts certificates on the built path, leaf and
    anchor included (self-issued intermediates excepted).
    """

    min_scts: int = 0
    allowed_algorithms: tuple[str, ...] = MODERN_ALGORITHMS
    allowed_signature_schemes: tuple[str, ...] = MODERN_SCHEMES
    require_ocsp: bool = False
    max_chain_length: int = 8
    permit_name_constraints: bool = True
    clock_skew_seconds: int = 60
    stapling_required: bool = False
    #: Not in the schema struct: hold the trust anchor to the CA/B root
    #: profile (BR 7.1.2.1.2: no EKU in a root). On in ``webPkiStrict``;
    #: off elsewhere, where private roots (pebble's, say) carry EKUs,
    #: which then must permit the purpose like an intermediate's.
    cabf_root_profile: bool = False

    def __post_init__(self) -> None:
        if not 2 <= self.max_chain_length <= 255:
            raise ValueError("max_chain_length must be 2..255 certificates")
        if not 0 <= self.min_scts <= 255:
            raise ValueError("min_scts must be 0..255")
        if not 0 <= self.clock_skew_seconds <= 0xFFFFFFFF:
            raise ValueError("clock_skew_seconds must fit UInt32")
        for field in ("allowed_algorithms", "allowed_signature_schemes"):
            if not isinstance(getattr(self, field), tuple):
                raise TypeError(f"{field} must be a tuple")


# The four presets of the proposal, with the values of the boot
# manifest's bootmanifest/presets.json (a test holds the two equal).
# NOTE: webPkiStrict does not require OCSP, unlike the proposal: public
# CAs are dropping OCSP (DESIGN.md section 6), so a chain passes
# revocation with a staple, a fresh CRL or a short-lived certificate,
# and requireOcsp stays for private PKI (privateMtls).
WEB_PKI_STRICT = VerificationPolicy(
    min_scts=2, require_ocsp=False, max_chain_length=6,
    clock_skew_seconds=300, cabf_root_profile=True,
    allowed_algorithms=("rsa2048", "rsa3072", "rsa4096", "ecdsaP256",
                        "ecdsaP384"),
    allowed_signature_schemes=("rsaPkcs1Sha256", "rsaPkcs1Sha384",
                               "rsaPkcs1Sha512", "rsaPssSha256",
                               "rsaPssSha384", "rsaPssSha512",
                               "ecdsaP256Sha256", "ecdsaP384Sha384"))
WEB_PKI_LENIENT = VerificationPolicy(max_chain_length=8,
                                     clock_skew_seconds=600)
PRIVATE_MTLS = VerificationPolicy(
    require_ocsp=True, max_chain_length=3, clock_skew_seconds=60,
    allowed_algorithms=("ecdsaP256", "ecdsaP384", "ed25519"),
    allowed_signature_schemes=("ecdsaP256Sha256", "ecdsaP384Sha384",
                               "ed25519"))
CODE_SIGNING = VerificationPolicy(
    max_chain_length=4, clock_skew_seconds=86400,
    allowed_algorithms=("rsa3072", "rsa4096", "ecdsaP256", "ecdsaP384",
                        "ed25519"),
    allowed_signature_schemes=("rsaPssSha256", "rsaPssSha384",
                               "rsaPssSha512", "ecdsaP256Sha256",
                               "ecdsaP384Sha384", "ed25519"))

PRESETS = {
    "webPkiStrict": WEB_PKI_STRICT,
    "webPkiLenient": WEB_PKI_LENIENT,
    "privateMtls": PRIVATE_MTLS,
    "codeSigning": CODE_SIGNING,
}


@deferred.dataclass(frozen=True, init=False)
class VerifiedPath:
    """A chain that passed: leaf first, anchor last."""

    path: tuple[ParsedCertificate, ...]
    anchor: ParsedCertificate
    not_after: dt.datetime
    sct_count: int
    #: How revocation passed (None until :func:`decide_revocation`).
    revocation: evidence.RevocationEvidence | None = None

    def __init__(self, path: tuple[ParsedCertificate, ...],
                 anchor: ParsedCertificate, not_after: dt.datetime,
                 sct_count: int,
                 revocation: evidence.RevocationEvidence | None = None
                 ) -> None:
        # Into the instance dict, not through object.__setattr__ for
        # each field (the generated frozen __init__): one is built for
        # every chain that verifies, and again with its revocation.
        fields = self.__dict__
        fields["path"], fields["anchor"] = path, anchor
        fields["not_after"], fields["sct_count"] = not_after, sct_count
        fields["revocation"] = revocation

    @property
    def ocsp_status(self) -> str:
        """The schema ``OcspStatus`` for ``ValidChain.ocspStatus``.

        A soft-fail is ``responderUnreachable`` (no status was had),
        or ``unknown`` when a responder said so.
        """
        rev = self.revocation
        if rev is None:
            return "responderUnreachable"
        if rev.outcome == "softFail" and rev.ocsp_status != "unknown":
            return "responderUnreachable"
        return rev.ocsp_status


def _fail(reason: Reason, detail: str, cert: ParsedCertificate | None = None,
          **context: Any) -> VerificationError:
    if cert is not None:
        detail = f"{detail} ({_who(cert)})"
        context.setdefault("serial", cert.serial.hex())
    return VerificationError(reason, detail, **context)


def _who(cert: ParsedCertificate) -> str:
    return cert.subject.rfc4514 or f"serial {cert.serial.hex()}"


# ---------------------------------------------------------------------
# The candidate pool (path-building budget)
# ---------------------------------------------------------------------

def dedupe(certs: Sequence[ParsedCertificate],
           cap: int = MAX_INTERMEDIATES) -> list[ParsedCertificate]:
    """Drop repeated DER, keep order, and cap the count."""
    seen: set[bytes] = set()
    out: list[ParsedCertificate] = []
    for cert in certs:
        if cert.der not in seen:
            seen.add(cert.der)
            out.append(cert)
    return out[:cap]


class Pool(NamedTuple):
    """The intermediates pyca may use, and what was left out."""

    certs: tuple[ParsedCertificate, ...]
    refused: tuple[ParsedCertificate, ...]  # by algorithm
    truncated: bool


def candidate_pool(leaf: ParsedCertificate,
                   intermediates: Sequence[ParsedCertificate],
                   anchors: Sequence[ParsedCertificate],
                   policy: VerificationPolicy,
                   cap: int = MAX_INTERMEDIATES) -> Pool:
    """The intermediates worth building with, nearest the leaf first.

    Breadth-first from the leaf over issuer-name links: only a CA whose
    subject is the issuer of the leaf or of a CA already taken can be
    on a path. Duplicates, the leaf, the anchors and CAs with refused
    algorithms are left out; at most ``cap`` are kept.
    """
    skip = {a.der for a in anchors}
    skip.add(leaf.der)
    keys, schemes = policy.allowed_algorithms, policy.allowed_signature_schemes
    distinct: list[ParsedCertificate] = []
    refused: list[ParsedCertificate] = []
    for cert in intermediates:
        if cert.der in skip or not cert.is_ca:
            continue
        skip.add(cert.der)
        # _algorithm_allowed for an intermediate, inline.
        if cert.algorithm in keys and cert.signature_scheme in schemes:
            distinct.append(cert)
        else:
            refused.append(cert)
    by_subject: dict[bytes, list[ParsedCertificate]] = {}
    for cert in distinct:
        by_subject.setdefault(cert.subject_der, []).append(cert)
    taken: list[ParsedCertificate] = []
    seen_names: set[bytes] = set()
    frontier = [leaf.issuer_der]
    truncated = False
    while frontier and not truncated:
        following: list[bytes] = []
        for name in frontier:
            if name in seen_names:
                continue
            seen_names.add(name)
            for cert in by_subject.get(name, ()):
                if len(taken) == cap:
                    truncated = True
                    break
                taken.append(cert)
                following.append(cert.issuer_der)
            if truncated:
                break
        frontier = following
    return Pool(tuple(taken), tuple(refused), truncated)


# ---------------------------------------------------------------------
# Checks of one certificate
# ---------------------------------------------------------------------

def _algorithm_allowed(cert: ParsedCertificate, policy: VerificationPolicy,
                       role: str) -> bool:
    """The key (every role) and the issuer's signature (all but the
    anchor's self-signature) are ones ``policy`` allows."""
    return cert.algorithm in policy.allowed_algorithms and (
        role == "anchor"
        or cert.signature_scheme in policy.allowed_signature_schemes)


def _algorithm_problem(cert: ParsedCertificate, policy: VerificationPolicy,
                       role: str) -> str:
    if cert.algorithm not in policy.allowed_algorithms:
        return f"{role} key {cert.key_label} not allowed"
    if role != "anchor" and (
            cert.signature_scheme not in policy.allowed_signature_schemes):
        return (f"{role} signature {cert.signature_scheme or 'unsupported'}"
                " not allowed")
    return ""


def _check_algorithms(cert: ParsedCertificate,
                      policy: VerificationPolicy, role: str) -> None:
    # The common case asks no message of _algorithm_problem.
    if not _algorithm_allowed(cert, policy, role):
        raise _fail(Reason.weakAlgorithm,
                    _algorithm_problem(cert, policy, role), cert)


@functools.lru_cache(maxsize=64)
def _skew(seconds: int) -> dt.timedelta:
    """A policy's ``clockSkewSeconds`` as a timedelta (kept per value:
    building one from keywords costs more than a check that uses it)."""
    return dt.timedelta(seconds=seconds)


class _Window(NamedTuple):
    """The validation instant and the edges ``clockSkewSeconds`` puts
    around it, worked out once for every certificate checked at it.

    A certificate is not yet valid when its notBefore is after
    ``latest``, expired when its notAfter is before ``earliest``. An
    edge past the datetime range is None: no certificate lies beyond
    it. (Edges of the instant, never a skew added to a notAfter, so
    9999-12-31T23:59:59Z cannot overflow.)
    """

    at: dt.datetime
    earliest: dt.datetime | None
    latest: dt.datetime | None


def _window(at: dt.datetime, skew: dt.timedelta) -> _Window:
    try:
        earliest: dt.datetime | None = at - skew
    except OverflowError:
        earliest = None
    try:
        latest: dt.datetime | None = at + skew
    except OverflowError:
        latest = None
    # tuple.__new__: the NamedTuple's own __new__ is a Python function.
    return tuple.__new__(_Window, (at, earliest, latest))


def _check_validity(cert: ParsedCertificate, window: _Window) -> None:
    latest, earliest = window.latest, window.earliest
    if latest is not None and cert.not_before > latest:
        raise _fail(Reason.notYetValid, "certificate not yet valid", cert,
                    not_before=cert.not_before, at=window.at)
    if earliest is not None and cert.not_after < earliest:
        raise _fail(Reason.expired, "certificate expired", cert,
                    not_after=cert.not_after, at=window.at)


def _check_leaf_eku(leaf: ParsedCertificate, purpose: str) -> None:
    wanted = PURPOSE_EKU[purpose]
    if ANY_EKU in leaf.ekus:
        raise _fail(Reason.badEku, "leaf EKU has anyExtendedKeyUsage", leaf)
    if not leaf.ekus:
        if purpose not in EKU_OPTIONAL:
            raise _fail(Reason.badEku, f"leaf has no EKU for {purpose}",
                        leaf)
        return
    if wanted is not None and wanted not in leaf.ekus:
        raise _fail(Reason.badEku, f"leaf EKU lacks {purpose}", leaf)


def _check_ca_eku(cert: ParsedCertificate, purpose: str,
                  cabf_root: bool) -> None:
    if not cert.ekus:
        return
    if cabf_root:
        raise _fail(Reason.badEku, "web-PKI root carries an EKU", cert)
    wanted = PURPOSE_EKU[purpose]
    if wanted is not None and not {wanted, ANY_EKU} & set(cert.ekus):
        raise _fail(Reason.badEku, f"CA EKU does not allow {purpose}", cert)


def _negative_serial(cert: ParsedCertificate) -> bool:
    # Most serials are positive, which parsing knows without the number.
    return not cert.serial_positive and cert.serial_number < 0


def _check_profile(cert: ParsedCertificate, role: str) -> None:
    """RFC 5280 / BR structure pyca leaves to the relying party."""
    if role != "anchor" and not cert.serial_positive:
        raise _fail(Reason.policyViolation, "non-positive serial", cert)
    if role == "anchor" and _negative_serial(cert):
        # RFC 5280 asks relying parties to cope with such roots; pyca
        # cannot use one, so it is skipped, not fatal to the store.
        raise _fail(Reason.policyViolation,
                    "trust anchor with a negative serial is skipped", cert)
    if cert.noncritical_must_be_critical:
        raise _fail(Reason.policyViolation,
                    "extension must be critical: "
                    + ",".join(cert.noncritical_must_be_critical), cert)
    # The AKI first: telling self-issued needs the names, which a leaf
    # refused before its path is built never reads otherwise.
    if (role != "anchor" and cert.aki_key_id is None
            and not cert.is_self_issued):
        raise _fail(Reason.policyViolation,
                    "certificate has no authorityKeyIdentifier", cert)
    if role == "intermediate" and cert.ski is None:
        raise _fail(Reason.policyViolation,
                    "CA certificate has no subjectKeyIdentifier", cert)
    if role == "anchor" and cert.is_self_issued and cert.has_aki:
        if cert.aki_names_issuer:
            raise _fail(Reason.policyViolation,
                        "root AKI names an issuer and serial", cert)
        if cert.aki_key_id is not None and cert.aki_key_id != cert.ski:
            raise _fail(Reason.policyViolation,
                        "root AKI does not match its SKI", cert)


# ---------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------

def _a_label(name: str) -> str:
    """``name`` as lower-case A-labels (IDNA2008 with UTS-46 mapping)."""
    if name.isascii():
        return name.lower()
    # Only a non-ASCII reference needs idna (its tables are 1% of
    # capos-init's pre-fork imports), so it is imported here.
    import idna

    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as err:
        raise _fail(Reason.nameMismatch,
                    f"reference {name!r} is not a valid IDN") from err


@functools.lru_cache(maxsize=256)
def reference_subject(purpose: str, hostname: str) -> pv.Subject | None:
    """The pyca subject for a TLS server name, after validation.

    Kept per (purpose, name), as a verifier meets the same few names
    again and again (a subject is an immutable value; a refusal is not
    kept, and is raised again).

    :raises VerificationError: ``nameMismatch`` for a missing, wildcard
        or malformed reference identity (RFC 6125 section 6.4).
    """
    if purpose not in NAMED_PURPOSES:
        return None
    if not hostname:
        raise _fail(Reason.nameMismatch, "hostname required")
    if "*" in hostname:
        raise _fail(Reason.nameMismatch,
                    "reference identity must not contain '*'")
    ip = _ip_address(hostname)
    if ip is not None:
        return x509.IPAddress(ip)
    return x509.DNSName(_a_label(hostname.rstrip(".")))


_IPV4_TEXT = frozenset("0123456789.")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ip_address(text: str) -> IPAddress | None:
    """``text`` as an IP address (:func:`ipaddress.ip_address`), or None.

    Text with no colon and a character outside digits and dots is no
    address in any form ``ipaddress`` reads, and most names are such
    text; they skip its two failing parses.
    """
    if ":" not in text and not _IPV4_TEXT.issuperset(text):
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@functools.cache
def _placeholder_anchor() -> x509.Certificate:
    """An anchor nothing chains to, for a store whose keys are refused."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.derive_private_key(1, ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME,
                                         "capOS placeholder")])
    when = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(when).not_valid_after(when)
            .sign(key, hashes.SHA256()))


def _san_strings(cert: ParsedCertificate) -> tuple[frozenset[str],
                                                 frozenset[bytes]]:
    return cert.dns_sans, cert.ip_sans


def _legacy_ipv4(text: str) -> bool:
    """True for inet_aton's IPv4 forms: hex, octal, fewer parts."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return False
    for part in parts:
        low = part.lower()
        if low.startswith("0x"):
            if not low[2:] or any(c not in "0123456789abcdef"
                                  for c in low[2:]):
                return False
        elif not part.isdigit():
            return False
    return True


#: A commonName's AttributeType as DER encodes it (OID 2.5.4.3).
_CN_TYPE = b"\x06\x03\x55\x04\x03"
#: PrintableString's characters (X.680 41.4).
_PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                       "0123456789 '()+,-./:=?")


def _common_name_settled(leaf: ParsedCertificate) -> bool:
    """True when the subject's DER alone shows the commonName check
    passes, without cryptography decoding the subject (a Name of
    Python objects, the dearest read of a leaf's checks).

    Every commonName attribute in DER starts with :data:`_CN_TYPE`. No
    such bytes: no commonName. Exactly one occurrence, followed by a
    UTF8String or PrintableString whose ASCII contents are one of the
    dNSName SANs: either that is the one commonName, a copy of the SAN,
    or the bytes sit inside another attribute's value and there is no
    commonName. Either way the check passes; anything else is decided
    on the decoded subject.
    """
    subject = leaf.subject_der
    found = subject.count(_CN_TYPE)
    if found == 0:
        return True
    if found > 1:
        return False
    at = subject.index(_CN_TYPE) + len(_CN_TYPE)
    if at + 2 > len(subject):
        return False
    tag, size = subject[at], subject[at + 1]
    value = subject[at + 2:at + 2 + size]
    if size >= 0x80 or len(value) != size or not value.isascii():
        return False  # a long-form length, cut short, or not ASCII
    text = value.decode("ascii")
    return text in leaf.dns_sans and (
        tag == 0x0C or (tag == 0x13 and _PRINTABLE.issuperset(text)))


def _check_common_names(leaf: ParsedCertificate) -> None:
    """A CN that claims to be a SAN is an exact copy (BR 7.1.4.3).

    The CN is never matched against the reference (RFC 6125 section
    6.4.4). It is refused when it is an IP address in any text but the
    canonical one (RFC 3986 dotted quad, RFC 5952 IPv6), or a DNS name
    that a SAN spells differently (letter case, U-label for A-label).
    """
    if _common_name_settled(leaf):
        return
    if len(leaf.common_names) > 1:
        raise _fail(Reason.policyViolation, "more than one commonName", leaf)
    if not leaf.common_names:
        return
    cn = leaf.common_names[0]
    dns = leaf.dns_sans
    if cn in dns:
        return
    ip = _ip_address(cn)
    if (ip is not None and str(ip) != cn) or (
            ip is None and (":" in cn or _legacy_ipv4(cn))):
        raise _fail(Reason.policyViolation,
                    f"commonName {cn!r} is an IP address in non-canonical "
                    "text", leaf)
    try:
        folded = _a_label(cn)
    except VerificationError:
        folded = ""
    if not cn.isascii() or folded in {d.lower() for d in dns}:
        raise _fail(Reason.policyViolation,
                    f"commonName {cn!r} is not a copy of its SAN", leaf)


@functools.cache
def _public_suffixes() -> Any:
    from publicsuffixlist import PublicSuffixList
    return PublicSuffixList()


def _check_wildcards(leaf: ParsedCertificate, reference: str) -> None:
    """A wildcard over a public suffix never matches (BR 3.2.2.6).

    Only the SAN the reference would match by counts: a certificate
    that also names the reference exactly is not refused for it.
    """
    if not leaf.has_wildcard_dns_san:
        return  # no SAN the reference could match by a wildcard
    dns = {d.lower().rstrip(".") for d in leaf.dns_sans}
    ref = reference.lower().rstrip(".")
    if ref in dns or "." not in ref:
        return
    base = ref.split(".", 1)[1]
    if f"*.{base}" not in dns:
        return
    try:
        public = "." not in base or _public_suffixes().is_public(base)
    except ImportError as err:  # the image lacks the list
        raise _fail(Reason.nameMismatch,
                    f"public suffix list unavailable for *.{base}",
                    leaf) from err
    if public:
        raise _fail(Reason.nameMismatch,
                    f"wildcard SAN '*.{base}' spans a public suffix", leaf)


def _check_reference_named(leaf: ParsedCertificate,
                           subject: pv.Subject) -> None:
    """Fail early when no SAN can match the reference (RFC 6125 6.4).

    A superset of pyca's matching (exact, or a left-most ``*`` label);
    pyca still decides every name this lets through.
    """
    # The exact class first: an isinstance that fails on these ABCs is
    # a slow call, and most references are DNS names.
    if type(subject) is not x509.DNSName and isinstance(subject,
                                                        x509.IPAddress):
        address = subject.value
        packed = (address.packed if isinstance(
            address, (ipaddress.IPv4Address, ipaddress.IPv6Address))
            else b"")
        if packed not in leaf.ip_sans:
            text = _ip_text(packed) if len(packed) == 4 else str(address)
            raise _name_mismatch(leaf, f"leaf has no iPAddress SAN {text}")
        return
    ref = subject.value.lower().rstrip(".")
    parent = ref.split(".", 1)[1] if "." in ref else None
    for name in leaf.dns_sans:
        name = name.lower().rstrip(".")
        if name == ref or (parent is not None and name.startswith("*.")
                           and name[2:] == parent):
            return
    raise _name_mismatch(leaf, f"leaf is not valid for {ref!r}")


def _ip_text(packed: bytes) -> str:
    """A packed IPv4 address as ``str(IPv4Address)`` writes it (dotted
    decimal), without building the address object and its text, which
    cost ten times as much in a name-mismatch detail."""
    return ".".join(map(str, packed))


#: SAN identities a name-mismatch detail lists before "and N more".
LISTED_NAMES = 4


def _name_mismatch(leaf: ParsedCertificate, what: str) -> VerificationError:
    """``nameMismatch`` listing the identities the leaf does carry.

    For a name fault the leaf's SANs say more than its subject DN (as
    Go's "certificate is valid for ..., not ..." does), and the check
    has just read them, where the DN would be decoded for the message
    alone.
    """
    dns, ips = _san_strings(leaf)
    names = [*sorted(dns), *sorted(_ip_text(p) if len(p) == 4
                                   else str(ipaddress.ip_address(p))
                                   for p in ips if len(p) in (4, 16))]
    shown = ", ".join(repr(n) for n in names[:LISTED_NAMES]) or "none"
    if len(names) > LISTED_NAMES:
        shown += f" and {len(names) - LISTED_NAMES} more"
    return _fail(Reason.nameMismatch, f"{what} (its DNS and IP SANs: {shown})",
                 serial=leaf.serial.hex())


def _check_identities(leaf: ParsedCertificate, hostname: str) -> None:
    """Client purposes: every listed identity is one of the leaf's SANs.

    ``hostname`` holds comma-separated reference identities: an e-mail
    address (rfc822Name, RFC 8398 domain case-insensitive), an IP
    address, or a DNS name matched exactly.
    """
    dns, ips = _san_strings(leaf)
    mails = {str(g.value) for g in leaf.sans if g.kind == "rfc822Name"}
    for ref in (r.strip() for r in hostname.split(",") if r.strip()):
        if "@" in ref:
            local, _, domain = ref.rpartition("@")
            ok = any(m.rpartition("@")[0] == local
                     and m.rpartition("@")[2].lower() == domain.lower()
                     for m in mails)
        else:
            try:
                ok = ipaddress.ip_address(ref).packed in ips
            except ValueError:
                ok = _a_label(ref) in {d.lower() for d in dns}
        if not ok:
            raise _name_mismatch(leaf, f"leaf is not valid for {ref!r}")


# ---------------------------------------------------------------------
# pyca's profile, per purpose
# ---------------------------------------------------------------------

def _ca_key_usage(_policy: Any, _cert: Any, ku: x509.KeyUsage | None) -> None:
    # RFC 5280 section 6.1.4 (n): keyCertSign, if the extension is there.
    if ku is not None and not ku.key_cert_sign:
        raise ValueError("CA keyUsage lacks keyCertSign")


@functools.cache
def _extension_policies(purpose: str) -> tuple[pv.ExtensionPolicy,
                                               pv.ExtensionPolicy]:
    """(ca_policy, ee_policy) for pyca."""
    ca = pv.ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.KeyUsage, pv.Criticality.AGNOSTIC, _ca_key_usage)
    ee = pv.ExtensionPolicy.webpki_defaults_ee()
    if purpose in ("tlsServerAuth", "tlsClientAuth", "clientIdentity"):
        return ca, ee
    # Narrow purposes: EKU (leaf and CAs) is checked by this module, and
    # code-signing, S/MIME, OCSP and attestation leaves need no SAN.
    ca = ca.may_be_present(x509.ExtendedKeyUsage, pv.Criticality.AGNOSTIC,
                           None)
    ee = (ee.may_be_present(x509.ExtendedKeyUsage, pv.Criticality.AGNOSTIC,
                            None)
          .may_be_present(x509.SubjectAlternativeName,
                          pv.Criticality.AGNOSTIC, None))
    return ca, ee


def _validation_instant(certs: Sequence[ParsedCertificate],
                        leaf: ParsedCertificate,
                        window: _Window) -> dt.datetime:
    """One instant for pyca, within ``skew`` of ``at``.

    pyca takes no skew, so it validates at the instant nearest ``at``
    that every certificate within ``skew`` of ``at`` admits; a
    certificate outside the skew stays invalid at it. When those share
    no instant, the leaf's nearest instant is used.
    """
    at, earliest, latest = window.at, window.earliest, window.latest
    lo = hi = None
    for cert in certs:  # one pass over those within skew of at
        before, after = cert.not_before, cert.not_after
        if ((latest is None or before <= latest)
                and (earliest is None or after >= earliest)):
            if lo is None or before > lo:
                lo = before
            if hi is None or after < hi:
                hi = after
    if lo is None or hi is None or lo > hi:
        lo, hi = leaf.not_before, leaf.not_after
    return min(max(at, lo), hi)


# ---------------------------------------------------------------------
# The path
# ---------------------------------------------------------------------

def _counted_intermediates(path: Sequence[ParsedCertificate]) -> int:
    return sum(1 for c in path[1:-1] if not c.is_self_issued)


def _check_path_length(path: Sequence[ParsedCertificate],
                       policy: VerificationPolicy) -> None:
    if len(path) <= policy.max_chain_length:
        return  # no more intermediates than allowed, counted or not
    counted = _counted_intermediates(path)
    if counted > policy.max_chain_length - 2:
        raise _fail(Reason.chainTooLong,
                    f"built path of {counted + 2} certificates, policy "
                    f"allows {policy.max_chain_length}")


def _check_path(path: Sequence[ParsedCertificate], purpose: str,
                window: _Window, policy: VerificationPolicy,
                first: int = 0) -> None:
    """Every check of this module on a path, leaf first, anchor last
    (from ``path[first]``: the caller has checked those before it)."""
    last = len(path) - 1
    earliest, latest = window.earliest, window.latest
    for i in range(first, last + 1):
        cert = path[i]
        role = ("leaf" if i == 0 else "anchor" if i == last
                else "intermediate")
        if ((latest is not None and cert.not_before > latest)
                or (earliest is not None and cert.not_after < earliest)):
            _check_validity(cert, window)  # which names the fault
        if not _algorithm_allowed(cert, policy, role):
            raise _fail(Reason.weakAlgorithm,
                        _algorithm_problem(cert, policy, role), cert)
        _check_profile(cert, role)
        if i:
            if cert.ekus:  # a CA without an EKU allows every purpose
                _check_ca_eku(cert, purpose, cabf_root=(
                    i == last and policy.cabf_root_profile))
            if (not policy.permit_name_constraints
                    and cert.has_name_constraints):
                raise _fail(Reason.nameConstraintViolation,
                            "policy does not permit name-constrained CAs",
                            cert)
    _check_path_length(path, policy)


def _by_der(cert: x509.Certificate, pool: Sequence[ParsedCertificate],
            anchors: Sequence[ParsedCertificate]) -> ParsedCertificate:
    """The candidate pyca returned as ``cert`` (equal by DER)."""
    for candidate in (*pool, *anchors):
        if candidate.cert == cert:
            return candidate
    raise ValueError("path builder returned a certificate not given to it")


def _issued_by(child: ParsedCertificate, parent: ParsedCertificate) -> bool:
    """Issuer name and signature, for diagnosis only (no profile)."""
    try:
        child.cert.verify_directly_issued_by(parent.cert)
    except (TypeError, cexc.InvalidSignature, cexc.UnsupportedAlgorithm):
        return False
    except ValueError:
        # pyca verifies only the algorithms it permits; a SHA-1 (say)
        # signature is checked by hand, so the diagnosis can name the
        # weak algorithm instead of a missing issuer.
        return _legacy_signature_ok(child, parent)
    return True


def _legacy_signature_ok(child: ParsedCertificate,
                         parent: ParsedCertificate) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    if child.issuer_der != parent.subject_der:
        return False
    cert = child.cert
    key = parent.cert.public_key()
    digest = cert.signature_hash_algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey) and digest is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes,
                       padding.PKCS1v15(), digest)
        elif (isinstance(key, ec.EllipticCurvePublicKey)
              and digest is not None):
            key.verify(cert.signature, cert.tbs_certificate_bytes,
                       ec.ECDSA(digest))
        else:
            return False
    except (cexc.InvalidSignature, cexc.UnsupportedAlgorithm, ValueError,
            TypeError):
        return False
    return True


def _named_by(child: ParsedCertificate, parent: ParsedCertificate) -> bool:
    """Issuer name only (the caller matched it): a path by names."""
    return True


def _find_path(leaf: ParsedCertificate,
               pool: Sequence[ParsedCertificate],
               anchors: Sequence[ParsedCertificate],
               max_len: int,
               issued: Callable[[ParsedCertificate, ParsedCertificate],
                                bool] = _issued_by,
               ) -> tuple[list[ParsedCertificate] | None, str]:
    """A path by issuer name and signature only; (path, why-not).

    ``why-not`` is ``"signature"`` when the leaf's named issuers or a
    named anchor failed their signature checks, ``"budget"`` when the
    signature budget ran out, else ``"no issuer"``. With ``issued``
    :func:`_named_by`, the likeliest path by names alone (the one the
    signature search finds first when its signatures verify).
    """
    search = _Search(pool, anchors, max_len, issued)
    found = search.walk([leaf])
    if found:
        return found, ""
    if search.budget <= 0:
        return None, "budget"
    return None, "signature" if search.forged else "no issuer"


class _Search:
    """The state of one :func:`_find_path` (a class, not a recursive
    closure, which would be a reference cycle holding the candidates
    until the cyclic collector ran)."""

    def __init__(self, pool: Sequence[ParsedCertificate],
                 anchors: Sequence[ParsedCertificate], max_len: int,
                 issued: Callable[[ParsedCertificate, ParsedCertificate],
                                  bool]) -> None:
        self.pool, self.anchors = pool, anchors
        self.max_len, self.issued = max_len, issued
        self.budget = DIAGNOSE_BUDGET
        self.forged = False

    def walk(self, chain: list[ParsedCertificate]
             ) -> list[ParsedCertificate] | None:
        cert = chain[-1]
        issuer = cert.issuer_der
        named = verified = 0
        for anchor in self.anchors:
            if anchor.subject_der != issuer:
                continue
            if self.budget <= 0:
                return None
            self.budget -= 1
            named += 1
            if self.issued(cert, anchor):
                return [*chain, anchor]
            self.forged = True
        if len(chain) + 1 < self.max_len:
            named_pool = []
            for c in self.pool:  # a loop: most pools name one or none
                if c.subject_der == issuer and c not in chain:
                    named_pool.append(c)
            if len(named_pool) > 1:
                # Likeliest first, as pyca and Go order them: AKI = SKI.
                aki = cert.aki_key_id
                named_pool.sort(key=lambda c: c.ski != aki)
            for cand in named_pool:
                if self.budget <= 0:
                    return None
                self.budget -= 1
                named += 1
                if not self.issued(cert, cand):
                    continue
                verified += 1
                found = self.walk([*chain, cand])
                if found:
                    return found
        if len(chain) == 1 and named and not verified:
            self.forged = True
        return None


_PYCA_TEXT: tuple[tuple[str, Reason], ...] = (
    ("name constraint", Reason.nameConstraintViolation),
    ("maximum depth", Reason.chainTooLong),
    ("exceeds max depth", Reason.chainTooLong),
    ("path length", Reason.chainTooLong),
    ("no matching subjectaltname", Reason.nameMismatch),
    ("extendedkeyusage", Reason.badEku),
    ("eku", Reason.badEku),
    ("signature check limit", Reason.unknownAnchor),
    ("signature does not match", Reason.signatureMismatch),
    ("public key", Reason.weakAlgorithm),
    ("rsa key", Reason.weakAlgorithm),
    ("forbidden signature algorithm", Reason.weakAlgorithm),
    ("not valid at validation time", Reason.expired),
)


def _pyca_reason(text: str) -> Reason:
    """Fallback: pyca's own message, for what only pyca checks."""
    low = text.lower()
    for needle, reason in _PYCA_TEXT:
        if needle in low:
            return reason
    return Reason.policyViolation


def _diagnose(err: pv.VerificationError, leaf: ParsedCertificate,
              pool: Pool, anchors: Sequence[ParsedCertificate],
              purpose: str, window: _Window,
              policy: VerificationPolicy) -> VerificationError:
    """Why pyca refused, from this module's checks where possible."""
    text = str(err).replace("validation failed: ", "")[:200]
    if "signature check limit" in text:
        return _fail(Reason.unknownAnchor,
                     f"path-building budget exhausted: {text}")
    candidates = [*pool.certs, *pool.refused]
    max_len = max(policy.max_chain_length, 2) + 4
    if _pyca_reason(text) is Reason.nameConstraintViolation:
        # pyca applies a CA's name constraints only after checking the
        # signature below it, so the violation it names is real; when
        # the path by names passes this module's checks there is no
        # other fault to name first, and no signature to check again.
        named, _why = _find_path(leaf, candidates, anchors, max_len,
                                 issued=_named_by)
        if named is not None:
            try:
                # The leaf (first on every path) passed its checks.
                _check_path(named, purpose, window, policy, first=1)
            except VerificationError:
                pass  # named only on a path whose signatures verify
            else:
                return _fail(Reason.nameConstraintViolation, text)
    path, why = _find_path(leaf, candidates, anchors, max_len)
    if path is not None:
        _check_path(path, purpose, window, policy, first=1)
        reason = _pyca_reason(text)
        if reason is Reason.signatureMismatch:
            # pyca reports its last candidate; this path's signatures
            # verified, so something else refused it.
            reason = Reason.policyViolation
        return _fail(reason, text)
    if pool.truncated:
        return _fail(Reason.unknownAnchor,
                     "path-building budget exhausted: more than "
                     f"{MAX_INTERMEDIATES} candidate intermediates: {text}")
    if why == "budget":
        return _fail(Reason.unknownAnchor,
                     f"path-building budget exhausted: {text}")
    if why == "signature":
        return _fail(Reason.signatureMismatch,
                     f"no candidate issuer's signature verifies: {text}")
    return _fail(Reason.unknownAnchor, f"no path to a trust anchor: {text}")


@functools.lru_cache(maxsize=64)
def revocation_policy(policy: VerificationPolicy) -> (
        evidence.RevocationPolicy):
    """The revocation part of ``policy`` (DESIGN.md section 6); both
    are immutable, so one is derived once per policy."""
    return evidence.RevocationPolicy(
        require_ocsp=policy.require_ocsp,
        stapling_required=policy.stapling_required,
        short_lived=SHORT_LIVED,
        skew=dt.timedelta(seconds=policy.clock_skew_seconds))


def _crls_by_issuer(crls: Sequence[bytes]) -> dict[bytes, bytes]:
    by_issuer: dict[bytes, bytes] = {}
    for der in crls:
        try:
            name = x509.load_der_x509_crl(der).issuer.public_bytes()
        except ValueError as err:
            raise _fail(Reason.policyViolation,
                        f"crlMalformed: {str(err)[:80]}") from err
        by_issuer.setdefault(name, der)
    return by_issuer


def _check_ca_crls(path: Sequence[ParsedCertificate],
                   by_issuer: dict[bytes, bytes],
                   problems: Mapping[bytes, str], at: dt.datetime,
                   rev: evidence.RevocationPolicy) -> list[str]:
    """The CA certificates of ``path`` (leaf and anchor excepted)
    against their issuers' CRLs; what was unusable, as notes."""
    notes: list[str] = []
    if not by_issuer and not problems:
        return notes  # no CRL and no refusal: nothing to note or find
    for cert, issuer in itertools.pairwise(path[1:]):
        der = by_issuer.get(cert.issuer_der)
        if der is None:
            if cert.issuer_der in problems:
                notes.append(f"crl of {issuer.subject.rfc4514} unusable "
                             f"for {_who(cert)}: "
                             f"{problems[cert.issuer_der]}")
            continue
        try:
            entry = lookup(check_crl(der, issuer.cert, at, skew=rev.skew,
                                     allow_sha1=rev.allow_sha1), cert.cert)
        except CrlError as err:
            notes.append(f"crl of {issuer.subject.rfc4514} unusable for "
                         f"{_who(cert)}: {err.detail}")
            continue
        if entry is not None:
            stamp = entry.revoked_at.isoformat()
            raise _fail(Reason.revoked,
                        f"crl: revoked at {stamp} ({entry.reason})", cert,
                        revocation_time=entry.revoked_at,
                        revocation_reason=entry.reason, source="crl")
    return notes


def decide_revocation(verified: VerifiedPath, at: dt.datetime,
                      policy: VerificationPolicy, *,
                      staple: bytes | None = None,
                      fetched: bytes | None = None,
                      crls: Sequence[bytes] = (),
                      crl_problems: Mapping[bytes, str] | None = None,
                      notes: Sequence[str] = ()) -> VerifiedPath:
    """Revocation of a built path: ``verified`` with its evidence.

    :param staple: the OCSP response stapled in the handshake (DER).
    :param fetched: a response the verifier fetched for the leaf.
    :param crls: DER CRLs (any issuers; each is used for the
        certificates its issuer issued on the path).
    :param crl_problems: issuer name (DER) -> why its CRL could not be
        had (a ``CrlStore`` refusal); that issuer's CRL is unusable.
    :param notes: what else the caller could not get (a responder that
        did not answer), for the outcome.
    :raises VerificationError: ``revoked`` (detail with the time and
        reason; context ``revocation_time``, ``revocation_reason``),
        ``mustStapleMissing`` or ``ocspUnavailable``.
    """
    if at.tzinfo is None:
        raise ValueError("validation time must be timezone-aware")
    if at.microsecond:
        at = at.replace(microsecond=0)
    rev = revocation_policy(policy)
    path = verified.path
    by_issuer = _crls_by_issuer(crls)
    problems = crl_problems or {}
    ca_notes = _check_ca_crls(path, by_issuer, problems, at, rev)
    extra = [*notes, *ca_notes]
    if len(path) >= 2 and path[0].issuer_der in problems:
        extra.append(f"crl of {path[1].subject.rfc4514} unusable: "
                     f"{problems[path[0].issuer_der]}")
    if len(path) < 2:  # the leaf is itself a trust anchor
        found = evidence.RevocationEvidence("good", "anchor",
                                            "stapledAbsent")
    else:
        leaf, issuer = path[0], path[1]
        try:
            found = evidence.check_revocation(
                leaf.cert, issuer.cert, at, rev, staple=staple,
                fetched=fetched, crl=by_issuer.get(leaf.issuer_der))
        except ocsp_errors.RevocationError as err:
            context = {k: v for k, v in err.context.items()
                       if k != "serial"}  # _fail writes it, as hex
            raise _fail(Reason(err.reason.value),
                        "; ".join([err.detail, *extra]), leaf,
                        problem=err.problem.value, **context) from err
    if ca_notes and rev.require_ocsp:
        raise _fail(Reason.ocspUnavailable,
                    "requireOcsp: " + "; ".join(ca_notes), path[0],
                    problem=ocsp_errors.Problem.crlUnusable.value)
    if extra:
        found = dataclasses.replace(found, notes=(*found.notes, *extra))
    return VerifiedPath(verified.path, verified.anchor, verified.not_after,
                        verified.sct_count, found)


def verify_chain(leaf: ParsedCertificate,
                 intermediates: Sequence[ParsedCertificate],
                 anchors: Sequence[ParsedCertificate],
                 purpose: str, at: dt.datetime, hostname: str,
                 policy: VerificationPolicy,
                 crls: Sequence[bytes] = (), *,
                 staple: bytes | None = None,
                 fetched: bytes | None = None) -> VerifiedPath:
    """:func:`build_path`, then :func:`decide_revocation` on it.

    :param crls: DER CRLs to check the built path against (from a
        ``CrlStore``).
    :param staple: the stapled OCSP response, if the handshake had one.
    :param fetched: an OCSP response fetched for the leaf.
    """
    built = build_path(leaf, intermediates, anchors, purpose, at,
                       hostname, policy)
    return decide_revocation(built, at, policy, staple=staple,
                             fetched=fetched, crls=crls)


def build_path(leaf: ParsedCertificate,
               intermediates: Sequence[ParsedCertificate],
               anchors: Sequence[ParsedCertificate],
               purpose: str, at: dt.datetime, hostname: str,
               policy: VerificationPolicy) -> VerifiedPath:
    """Verify ``leaf`` up to one of ``anchors`` at time ``at``, all but
    revocation (whose evidence may depend on the path built).

    :param purpose: a schema CertPurpose name (``ctLog`` is not a chain
        purpose and fails ``policyViolation``).
    :param at: aware UTC validation time.
    :param hostname: for ``tlsServerAuth`` the reference identity (DNS
        name, U- or A-label, or IP address); for the other purposes
        optional comma-separated identities the leaf must name.
    :returns: the verified path, ``revocation`` not yet decided.
    :raises VerificationError: with a FailureReason of :class:`Reason`.
    """
    if at.tzinfo is None:
        raise ValueError("validation time must be timezone-aware")
    # A leaf with malformed extensions is refused before any other
    # fault is named; its key is decoded by the algorithm check, the
    # last of the leaf's own (building the key object is the dearest
    # read, and a leaf that fails on its names needs no key), and the
    # other certificates when a check first reads them.
    _ = leaf.extensions
    # X.509 times have whole seconds (RFC 5280 section 4.1.2.5).
    if at.microsecond:
        at = at.replace(microsecond=0)
    if purpose not in PURPOSE_EKU:
        raise _fail(Reason.policyViolation,
                    f"purpose {purpose} is not verified as a chain")
    if not anchors:
        raise _fail(Reason.unknownAnchor, "trust store empty")
    window = _window(at, _skew(policy.clock_skew_seconds))
    subject = reference_subject(purpose, hostname)

    # The leaf's own faults first: they hold on every path.
    _check_validity(leaf, window)
    _check_profile(leaf, "leaf")
    _check_leaf_eku(leaf, purpose)
    if subject is not None:
        _check_reference_named(leaf, subject)
        _check_common_names(leaf)
        if isinstance(subject, x509.DNSName):
            _check_wildcards(leaf, subject.value)
    elif hostname:
        _check_identities(leaf, hostname)
    _check_algorithms(leaf, policy, "leaf")

    pool = candidate_pool(leaf, intermediates, anchors, policy)
    usable_anchors = [a for a in anchors
                      if _algorithm_allowed(a, policy, "anchor")
                      and not _negative_serial(a)]
    when = _validation_instant([leaf, *pool.certs, *usable_anchors], leaf,
                               window)
    self_issued = len([c for c in pool.certs if c.is_self_issued])
    depth = min(max(policy.max_chain_length - 2, 0) + self_issued, 255)
    ca_policy, ee_policy = _extension_policies(purpose)
    builder = (pv.PolicyBuilder()
               .store(pv.Store([a.cert for a in usable_anchors]
                               or [_placeholder_anchor()]))
               .time(when).max_chain_depth(depth)
               .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy))
    inter = [c.cert for c in pool.certs]
    try:
        if subject is not None:
            try:
                verifier = builder.build_server_verifier(subject)
            except ValueError as err:
                raise _fail(Reason.nameMismatch,
                            f"reference {hostname!r} is not a DNS name"
                            ) from err
            chain = verifier.verify(leaf.cert, inter)
        else:
            chain = builder.build_client_verifier().verify(
                leaf.cert, inter).chain
    except pv.VerificationError as err:
        raise _diagnose(err, leaf, pool, anchors, purpose, window,
                        policy) from err
    except (ValueError, TypeError) as err:  # input pyca cannot decode
        raise _fail(Reason.policyViolation,
                    f"certificate refused by the path builder: "
                    f"{str(err)[:120]}") from err

    # pyca hands back the certificate objects it was given; by identity
    # first (hashing one hashes its DER), by DER for any other.
    by_id = {id(c.cert): c for c in (leaf, *pool.certs, *anchors)}
    path = tuple([by_id.get(id(c)) or _by_der(c, pool.certs, anchors)
                  for c in chain])
    # The leaf passed its checks above, under the same time and policy.
    _check_path(path, purpose, window, policy, first=1)
    anchor = path[-1]
    sct_count = len(leaf.scts)
    if sct_count < policy.min_scts:
        raise _fail(Reason.insufficientScts,
                    f"{sct_count} SCTs, policy needs {policy.min_scts}")
    return VerifiedPath(path=path, anchor=anchor,
                        not_after=min([c.not_after for c in path]),
                        sct_count=sct_count)
