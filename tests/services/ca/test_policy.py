"""The CA's pure policy: label-wise subtrees, IP subtrees, wildcards
against excluded subtrees, and narrowing rules."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509

from services.ca import policy
from services.ca.errors import PolicyRejectedError, Reason
from services.ca.model import (
    IssuancePolicy,
    Narrowing,
    ip_subtree,
    parse_request,
)
from tests.services.ca import helpers as h

DNS = x509.DNSName


def ip(text: str) -> x509.IPAddress:
    return x509.IPAddress(ipaddress.ip_address(text))


@pytest.mark.parametrize(("name", "base", "inside"), [
    ("example.com", "example.com", True),
    ("a.b.example.com", "example.com", True),
    ("WWW.Example.COM", "example.com", True),
    ("badexample.com", "example.com", False),
    ("example.com", "www.example.com", False),
    ("*.example.com", "example.com", True),
], ids=["equal", "deep", "case", "suffix-not-label", "parent", "wildcard"])
def test_dns_within_is_label_wise(name: str, base: str,
                                  inside: bool) -> None:
    assert policy.name_within(DNS(name), DNS(base)) is inside


@pytest.mark.parametrize(("name", "allowed"), [
    ("192.0.2.7", True),
    ("192.0.3.7", False),
    ("2001:db8::1", True),
    ("2001:db9::1", False),
    ("www.example.com", True),
    ("www.example.net", False),
], ids=["v4-in", "v4-out", "v6-in", "v6-out", "dns-in", "dns-out"])
def test_ip_and_dns_subtrees(name: str, allowed: bool) -> None:
    p = IssuancePolicy(permitted=(ip_subtree("192.0.2.0/24"),
                                  ip_subtree("2001:db8::/32"),
                                  DNS("example.com")))
    gn = ip(name) if name[0].isdigit() else DNS(name)
    assert policy.name_allowed(gn, p) is allowed


def test_a_listed_policy_refuses_unlisted_name_forms() -> None:
    p = IssuancePolicy(permitted=(DNS("example.com"),))
    assert not policy.name_allowed(ip("192.0.2.1"), p)


@pytest.mark.parametrize(("name", "allowed"), [
    ("*.example.com", False),      # would match secret.example.com
    ("*.pub.example.com", True),
    ("*.secret.example.com", False),
    ("x.secret.example.com", False),
    ("secretive.example.com", True),
], ids=["wildcard-over-excluded", "wildcard-elsewhere",
        "wildcard-inside-excluded", "name-inside-excluded",
        "label-not-suffix"])
def test_excluded_subtrees_and_wildcards(name: str, allowed: bool) -> None:
    p = IssuancePolicy(permitted=(DNS("example.com"),),
                       excluded=(DNS("secret.example.com"),))
    assert policy.name_allowed(DNS(name), p) is allowed


def test_narrowing_accumulates_exclusions_and_inherits() -> None:
    wide = IssuancePolicy(permitted=(DNS("example.com"),),
                          excluded=(DNS("a.example.com"),),
                          max_lifetime_seconds=3600,
                          key_types=("ecdsaP256", "rsa2048"))
    narrow = policy.narrow(wide, Narrowing(excluded=(DNS("b.example.com"),)))
    assert narrow.permitted == (DNS("example.com"),)
    assert narrow.excluded == (DNS("a.example.com"), DNS("b.example.com"))
    assert narrow.key_types == ("ecdsaP256", "rsa2048")
    # Narrowing twice never widens: the second step may not ask for
    # the first step's exclusions back, since they accumulate.
    again = policy.narrow(narrow, Narrowing(
        permitted=(DNS("c.example.com"),), max_lifetime_seconds=60))
    assert again.excluded == narrow.excluded
    assert again.max_lifetime_seconds == 60
    with pytest.raises(PolicyRejectedError) as err:
        policy.narrow(again, Narrowing(permitted=(DNS("example.com"),)))
    assert err.value.dimension == "nameSubtrees"


def test_ip_subtree_narrowing() -> None:
    wide = IssuancePolicy(permitted=(ip_subtree("192.0.2.0/24"),))
    ok = policy.narrow(wide, Narrowing(
        permitted=(ip_subtree("192.0.2.128/25"),)))
    assert ok.permitted == (ip_subtree("192.0.2.128/25"),)
    with pytest.raises(PolicyRejectedError) as err:
        policy.narrow(wide, Narrowing(
            permitted=(ip_subtree("192.0.0.0/16"),)))
    assert err.value.dimension == "nameSubtrees"


def test_admit_checks_proof_of_possession() -> None:
    der = bytearray(h.csr(["www.example.com"]))
    der[-3] ^= 0x01        # break the CSR's self-signature
    parsed = parse_request(bytes(der), (), 0, ())
    with pytest.raises(PolicyRejectedError) as err:
        policy.admit(IssuancePolicy(), parsed)
    assert (err.value.reason, err.value.dimension) == (
        Reason.signatureMismatch, "csr")


def test_admit_refuses_unsupported_name_forms() -> None:
    parsed = parse_request(h.csr(["www.example.com"]),
                           (x509.RFC822Name("a@example.com"),), 0, ())
    with pytest.raises(PolicyRejectedError) as err:
        policy.admit(IssuancePolicy(), parsed)
    assert err.value.dimension == "nameSubtrees"
    assert "RFC822Name" in err.value.detail
