"""schema/pki.capnp: every proposal type is present and faithful."""

from __future__ import annotations

import pytest

from services._runtime.schema import pki

NAMES = """
Certificate CertificateChain CertificateKind TrustStore TrustFilter
AnchorPin AnchorSelector CertPurpose CertVerifier VerificationPolicy
VerificationOutcome ValidChain VerificationFailure FailureReason
SignedCertificateTimestamp SctOrigin CtLog CtMonitor CtSubscription
SignedTreeHead LogEntry CtEntryType CtEvent CtObservation OcspResponder
OcspStapler CrlStore OcspResponse OcspStatus PinSet Pin PinMode AcmeClient
ChallengeSolver AcmeChallengeType AcmeIdentifier CertificateStore
CertSubscription CertRotationEvent TlsServerConfig TlsClientConfig
TlsVersion CipherPolicy GeneralName DistinguishedName KeyUsageFlags
ExtendedKeyUsage NameConstraints GeneralSubtree HashAlgorithm
SignatureScheme AsymmetricAlgorithm CtWatchError AcmeAccount AcmeChallenge
AcmeDirectoryMeta RevocationReason PrivateKey PublicKey AuditLog
AuditRecord CertificateAuthority IssuancePolicy
""".split()

PROPOSAL_FAILURE_REASONS = [
    "unknownAnchor", "expired", "notYetValid", "signatureMismatch",
    "nameMismatch", "insufficientScts", "revoked", "ocspUnavailable",
    "weakAlgorithm", "policyViolation", "badEku", "chainTooLong",
    "nameConstraintViolation", "mustStapleMissing", "pinMismatch",
]


@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_name_exists(name: str) -> None:
    assert hasattr(pki(), name)


def test_failure_reason_order() -> None:
    enumerants = pki().FailureReason.schema.enumerants
    ordered = sorted(enumerants, key=enumerants.__getitem__)
    assert ordered == PROPOSAL_FAILURE_REASONS
    assert list(range(len(ordered))) == sorted(enumerants.values())


def test_certificate_ordinals() -> None:
    methods = pki().Certificate.schema.method_names
    assert list(methods)[:3] == ["der", "subject", "issuer"]
    assert len(methods) == 16


def test_verification_outcome_round_trip() -> None:
    m = pki()
    out = m.VerificationOutcome.new_message()
    failure = out.init("invalid")
    failure.reason = "badEku"
    failure.detail = "leaf lacks serverAuth"
    back = m.VerificationOutcome.from_bytes(out.to_bytes())
    with back as reader:
        assert reader.which() == "invalid"
        assert reader.invalid.reason == "badEku"
        assert reader.invalid.detail == "leaf lacks serverAuth"


def test_general_name_round_trip() -> None:
    m = pki()
    name = m.GeneralName.new_message()
    name.ipAddress = b"\x7f\x00\x00\x01"
    with m.GeneralName.from_bytes(name.to_bytes()) as reader:
        assert reader.which() == "ipAddress"
        assert reader.ipAddress == b"\x7f\x00\x00\x01"
    other = m.GeneralName.new_message()
    other.init("otherName")
    other.otherName.typeId = "1.3.6.1.4.1.311.20.2.3"
    other.otherName.value = b"\x0c\x01a"
    with m.GeneralName.from_bytes(other.to_bytes()) as reader:
        assert reader.which() == "otherName"
        assert reader.otherName.typeId == "1.3.6.1.4.1.311.20.2.3"
