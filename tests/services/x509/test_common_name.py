"""The commonName check (BR 7.1.4.3) and its shortcut on the subject's
DER (``policy._common_name_settled``): a leaf whose DER settles the
check passes as the decoded subject would pass it, and one that does not
is decided on the decoded subject, with the reason named."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from services.x509 import policy
from services.x509.errors import Reason, VerificationError
from services.x509.model import parse_certificate
from services.x509.policy import WEB_PKI_LENIENT, verify_chain
from tests.services.x509 import pkifactory as f

HOST = f.HOST
CN, OU, ORG = NameOID.COMMON_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME, \
    NameOID.ORGANIZATION_NAME
UTF8, PRINTABLE = x509.name._ASN1Type.UTF8String, \
    x509.name._ASN1Type.PrintableString


def subject(*attributes: tuple[x509.ObjectIdentifier, str, object]
            ) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value, kind)  # type: ignore
                      for oid, value, kind in attributes])


def decoy(value: str) -> str:
    """An OU value holding the DER of a commonName ``value``."""
    return "\x06\x03\x55\x04\x03\x0c" + chr(len(value)) + value


def outcome(name: x509.Name, *, shortcut: bool = True) -> str:
    """"ok", or the reason and detail of the refusal."""
    h = f.hierarchy()
    leaf = f.leaf(h.inter, subject=name)
    certs = [parse_certificate(d) for d in (leaf.der, h.inter.der)]
    saved = policy._common_name_settled
    if not shortcut:
        policy._common_name_settled = lambda _leaf: False  # type: ignore
    try:
        verify_chain(certs[0], certs[1:], [parse_certificate(h.root.der)],
                     "tlsServerAuth", f.T0, HOST, WEB_PKI_LENIENT)
    except VerificationError as err:
        return f"{err.reason.value}: {err.detail}"
    finally:
        policy._common_name_settled = saved
    return "ok"


def settled(name: x509.Name) -> bool:
    h = f.hierarchy()
    leaf = parse_certificate(f.leaf(h.inter, subject=name).der)
    return policy._common_name_settled(leaf)


PASSING = {
    "cn is the san, UTF8String": subject((ORG, "capOS", UTF8),
                                         (CN, HOST, UTF8)),
    "cn is the san, PrintableString": subject((CN, HOST, PRINTABLE)),
    "no cn": subject((ORG, "capOS", UTF8)),
    "a decoy in an OU, no cn": subject((OU, decoy(HOST), UTF8)),
}

REFUSED = {
    "cn in other letter case": (
        subject((CN, HOST.upper(), UTF8)), "is not a copy of its SAN"),
    "two cns": (subject((CN, HOST, UTF8), (CN, HOST, UTF8)),
                "more than one commonName"),
    "a decoy in an OU beside a cn in other case": (
        subject((OU, decoy(HOST), UTF8), (CN, HOST.upper(), UTF8)),
        "is not a copy of its SAN"),
    "cn an IP address in non-canonical text": (
        subject((CN, "010.0.0.1", UTF8)), "non-canonical"),
}


@pytest.mark.parametrize("case", sorted(PASSING))
def test_the_der_settles_a_passing_subject(case: str) -> None:
    name = PASSING[case]
    assert settled(name)
    assert outcome(name) == outcome(name, shortcut=False) == "ok"


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_faulty_subject_is_left_to_the_decoded_name(case: str) -> None:
    name, detail = REFUSED[case]
    assert not settled(name)
    got = outcome(name)
    assert got.startswith(f"{Reason.policyViolation.value}: ")
    assert detail in got
    assert got == outcome(name, shortcut=False)


def test_a_cn_that_is_another_san_is_decided_on_the_decoded_name() -> None:
    # The CN copies a SAN other than the reference: the shortcut finds
    # it among the SANs, and the decoded subject agrees.
    h = f.hierarchy()
    name = subject((CN, "other.capos.test", UTF8))
    leaf = f.leaf(h.inter, subject=name, sans=[
        x509.DNSName(HOST), x509.DNSName("other.capos.test")])
    parsed = parse_certificate(leaf.der)
    assert policy._common_name_settled(parsed)
    assert parsed.common_names == ("other.capos.test",)
    assert "other.capos.test" in parsed.dns_sans


def test_a_cn_type_at_the_end_of_the_subject_is_no_shortcut() -> None:
    # The one occurrence of the commonName type ends an OU value: there
    # is no value after it to read, and the decoded subject decides.
    tail = subject((ORG, "capOS", UTF8), (OU, "\x06\x03\x55\x04\x03", UTF8))
    assert not settled(tail)
    assert outcome(tail) == outcome(tail, shortcut=False) == "ok"
