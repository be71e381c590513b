"""The pure decision core of chain verification.

Values in, a :class:`VerifiedPath` out, or a :class:`VerificationError`
whose reason is a schema ``FailureReason`` name. Path building and
signature checks are pyca's ``cryptography.x509.verification`` (the
CA/B Forum and RFC 5280 profile of rustls-webpki); this module adds what
the capOS policy asks for around it: EKU per purpose (RFC 5280 section
4.2.1.12), algorithm gating, chain-length caps, and fail-closed handling
of the checks this phase does not yet implement (SCTs, OCSP).

Limitations: SCT signature verification and OCSP are not implemented
here; a policy with ``min_scts > 0`` fails ``insufficientScts`` and one
with ``require_ocsp`` fails ``ocspUnavailable`` unless the leaf is
short-lived (DESIGN.md section 6), never silently passes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification as pv

from services.x509.errors import Reason, VerificationError
from services.x509.model import ParsedCertificate

#: Cap on intermediates handed to the path builder, after de-duplication,
#: so a hostile peer cannot make path building quadratic.
MAX_INTERMEDIATES = 20

#: A leaf valid for this long or less passes revocation without OCSP
#: (DESIGN.md section 6; CA/B Forum BR 4.9.10 short-lived certificates).
SHORT_LIVED = dt.timedelta(days=10)

MODERN_ALGORITHMS = ("rsa2048", "rsa3072", "rsa4096", "ecdsaP256",
                     "ecdsaP384", "ecdsaP521", "ed25519")
MODERN_SCHEMES = ("rsaPkcs1Sha256", "rsaPkcs1Sha384", "rsaPkcs1Sha512",
                  "rsaPssSha256", "rsaPssSha384", "rsaPssSha512",
                  "ecdsaP256Sha256", "ecdsaP384Sha384", "ecdsaP521Sha512",
                  "ed25519")

#: The EKU each purpose requires of the leaf (anyExtendedKeyUsage is not
#: accepted, as in the CA/B Forum BRs section 7.1.2.7.10).
PURPOSE_EKU = {
    "tlsServerAuth": "1.3.6.1.5.5.7.3.1",
    "tlsClientAuth": "1.3.6.1.5.5.7.3.2",
    "clientIdentity": "1.3.6.1.5.5.7.3.2",
    "codeSigning": "1.3.6.1.5.5.7.3.3",
    "emailSmime": "1.3.6.1.5.5.7.3.4",
    "ocspSigning": "1.3.6.1.5.5.7.3.9",
}


@dataclasses.dataclass(frozen=True)
class VerificationPolicy:
    """Mirror of the schema struct; fixed when a verifier is minted."""

    min_scts: int = 0
    allowed_algorithms: tuple[str, ...] = MODERN_ALGORITHMS
    allowed_signature_schemes: tuple[str, ...] = MODERN_SCHEMES
    require_ocsp: bool = False
    max_chain_length: int = 5
    permit_name_constraints: bool = True
    clock_skew_seconds: int = 60
    stapling_required: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.max_chain_length <= 255:
            raise ValueError("max_chain_length must be 1..255")
        if not 0 <= self.min_scts <= 255:
            raise ValueError("min_scts must be 0..255")


WEB_PKI_STRICT = VerificationPolicy(min_scts=2, require_ocsp=True)
WEB_PKI_LENIENT = VerificationPolicy()
PRIVATE_MTLS = VerificationPolicy(require_ocsp=True, max_chain_length=3)
CODE_SIGNING = VerificationPolicy(
    max_chain_length=4, clock_skew_seconds=300,
    allowed_algorithms=("rsa3072", "rsa4096", "ecdsaP256", "ecdsaP384",
                        "ecdsaP521", "ed25519"))

PRESETS = {
    "webPkiStrict": WEB_PKI_STRICT,
    "webPkiLenient": WEB_PKI_LENIENT,
    "privateMtls": PRIVATE_MTLS,
    "codeSigning": CODE_SIGNING,
}


@dataclasses.dataclass(frozen=True)
class VerifiedPath:
    """A chain that passed: leaf first, anchor last."""

    path: tuple[ParsedCertificate, ...]
    anchor: ParsedCertificate
    not_after: dt.datetime
    sct_count: int


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


def _check_algorithms(cert: ParsedCertificate,
                      policy: VerificationPolicy, role: str) -> None:
    if cert.algorithm not in policy.allowed_algorithms:
        raise VerificationError(
            Reason.weakAlgorithm,
            f"{role} key {cert.key_label} not allowed",
            serial=cert.serial.hex())
    if role != "anchor" and (
            cert.signature_scheme not in policy.allowed_signature_schemes):
        raise VerificationError(
            Reason.weakAlgorithm,
            f"{role} signature {cert.signature_scheme or 'unsupported'}"
            " not allowed", serial=cert.serial.hex())


def _check_validity(cert: ParsedCertificate, at: dt.datetime,
                    skew: dt.timedelta) -> None:
    if at + skew < cert.not_before:
        raise VerificationError(
            Reason.notYetValid, "certificate not yet valid",
            serial=cert.serial.hex(), not_before=cert.not_before, at=at)
    if at - skew > cert.not_after:
        raise VerificationError(
            Reason.expired, "certificate expired",
            serial=cert.serial.hex(), not_after=cert.not_after, at=at)


def _check_eku(leaf: ParsedCertificate, purpose: str) -> None:
    wanted = PURPOSE_EKU.get(purpose)
    if wanted is None:
        raise VerificationError(
            Reason.policyViolation,
            f"purpose {purpose} is not verified as a chain")
    if leaf.ekus and wanted not in leaf.ekus:
        raise VerificationError(
            Reason.badEku, f"leaf EKU lacks {purpose}",
            serial=leaf.serial.hex())
    if not leaf.ekus and purpose not in ("tlsServerAuth", "tlsClientAuth",
                                         "clientIdentity"):
        # Narrow purposes need an explicit EKU; an absent extension
        # would mean "any purpose" under RFC 5280 section 4.2.1.12.
        raise VerificationError(Reason.badEku,
                                f"leaf has no EKU for {purpose}")


def _map_pyca(err: pv.VerificationError) -> VerificationError:
    text = str(err)
    low = text.lower()
    table = (
        ("maximum depth", Reason.chainTooLong),
        ("chain construction exceeds", Reason.chainTooLong),
        ("signature", Reason.signatureMismatch),
        ("leaf certificate has no matching subjectaltname",
         Reason.nameMismatch),
        ("subjectaltname", Reason.nameMismatch),
        ("name constraint", Reason.nameConstraintViolation),
        ("extendedkeyusage", Reason.badEku),
        ("expired", Reason.expired),
        ("not yet valid", Reason.notYetValid),
        ("validity", Reason.expired),
        ("public key", Reason.weakAlgorithm),
        ("candidates exhausted", Reason.unknownAnchor),
    )
    for needle, reason in table:
        if needle in low:
            return VerificationError(reason, text[:200])
    return VerificationError(Reason.policyViolation, text[:200])


def _subject(hostname: str) -> x509.verification.Subject:
    try:
        return pv.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        pass
    try:
        return pv.DNSName(hostname)
    except ValueError as err:
        raise VerificationError(Reason.nameMismatch,
                                "hostname is not a DNS name") from err


def verify_chain(leaf: ParsedCertificate,
                 intermediates: Sequence[ParsedCertificate],
                 anchors: Sequence[ParsedCertificate],
                 purpose: str, at: dt.datetime, hostname: str,
                 policy: VerificationPolicy) -> VerifiedPath:
    """Verify ``leaf`` up to one of ``anchors`` at time ``at``.

    :param purpose: a schema CertPurpose name.
    :param at: aware UTC validation time.
    :param hostname: required for ``tlsServerAuth``; else may be empty.
    :returns: the verified path.
    :raises VerificationError: with any FailureReason of :class:`Reason`.
    """
    if at.tzinfo is None:
        raise ValueError("validation time must be timezone-aware")
    if not anchors:
        raise VerificationError(Reason.unknownAnchor, "trust store empty")
    skew = dt.timedelta(seconds=policy.clock_skew_seconds)
    inter = dedupe(intermediates)
    _check_algorithms(leaf, policy, "leaf")
    for cert in inter:
        _check_algorithms(cert, policy, "intermediate")
    _check_validity(leaf, at, skew)
    _check_eku(leaf, purpose)
    if purpose == "tlsServerAuth" and not hostname:
        raise VerificationError(Reason.nameMismatch, "hostname required")

    # pyca does not take a skew; validate at the instant nearest to
    # ``at`` that the leaf admits, already checked above.
    when = min(max(at, leaf.not_before), leaf.not_after)
    builder = (pv.PolicyBuilder()
               .store(pv.Store([a.cert for a in anchors]))
               .time(when)
               .max_chain_depth(max(policy.max_chain_length - 2, 0)))
    try:
        if purpose == "tlsServerAuth":
            chain = builder.build_server_verifier(
                _subject(hostname)).verify(
                    leaf.cert, [c.cert for c in inter])
        elif purpose in ("tlsClientAuth", "clientIdentity"):
            chain = builder.build_client_verifier().verify(
                leaf.cert, [c.cert for c in inter]).chain
        else:
            # EKU was checked above for the narrow purposes; let the
            # client profile pass any EKU on the leaf.
            ee = pv.ExtensionPolicy.webpki_defaults_ee().may_be_present(
                x509.ExtendedKeyUsage, pv.Criticality.AGNOSTIC, None)
            chain = (builder.extension_policies(
                ca_policy=pv.ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=ee).build_client_verifier().verify(
                    leaf.cert, [c.cert for c in inter]).chain)
    except pv.VerificationError as err:
        raise _map_pyca(err) from err

    by_der = {c.der: c for c in [leaf, *inter, *anchors]}
    path = tuple(by_der[c.public_bytes(Encoding.DER)] for c in chain)
    if len(path) > policy.max_chain_length:
        raise VerificationError(Reason.chainTooLong,
                                f"path of {len(path)} certificates")
    anchor = path[-1]
    _check_algorithms(anchor, policy, "anchor")
    for cert in path[1:-1]:
        _check_validity(cert, at, skew)
    sct_count = len(leaf.scts)
    if sct_count < policy.min_scts:
        raise VerificationError(
            Reason.insufficientScts,
            f"{sct_count} SCTs, policy needs {policy.min_scts}")
    if leaf.has_must_staple or policy.stapling_required:
        raise VerificationError(Reason.mustStapleMissing,
                                "no stapled OCSP response")
    if policy.require_ocsp and (
            leaf.not_after - leaf.not_before > SHORT_LIVED):
        raise VerificationError(Reason.ocspUnavailable,
                                "no OCSP responder available")
    return VerifiedPath(path=path, anchor=anchor,
                        not_after=min(c.not_after for c in path),
                        sct_count=sct_count)

