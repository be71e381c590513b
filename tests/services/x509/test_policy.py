"""The pure core: presets, de-duplication, and Reason against the schema."""

from __future__ import annotations

import dataclasses

import pytest

from services._runtime.schema import pki
from services.x509.errors import Reason, VerificationError
from services.x509.model import parse_certificate
from services.x509.policy import (
    MAX_INTERMEDIATES,
    PRESETS,
    PRIVATE_MTLS,
    VerificationPolicy,
    dedupe,
    verify_chain,
)
from tests.services.x509 import pkifactory as f


def test_reason_is_subset_of_failure_reason_by_name() -> None:
    schema = set(pki().FailureReason.schema.enumerants)
    assert {r.name for r in Reason} <= schema
    assert all(r.name == r.value for r in Reason)


def test_presets_match_proposal() -> None:
    assert PRESETS["webPkiStrict"].min_scts == 2
    # DESIGN section 6, not the proposal: see the NOTE in policy.py.
    assert not PRESETS["webPkiStrict"].require_ocsp
    assert PRESETS["webPkiLenient"].min_scts == 0
    assert not PRESETS["webPkiLenient"].require_ocsp
    assert (PRIVATE_MTLS.require_ocsp, PRIVATE_MTLS.max_chain_length) == (
        True, 3)
    assert "rsa2048" not in PRESETS["codeSigning"].allowed_algorithms


def test_presets_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRIVATE_MTLS.min_scts = 0  # type: ignore[misc]


def test_bad_policy_values_are_programmer_errors() -> None:
    with pytest.raises(ValueError):
        VerificationPolicy(max_chain_length=0)


def test_dedupe_keeps_order_and_caps() -> None:
    h = f.hierarchy()
    inter = parse_certificate(h.inter.der)
    root = parse_certificate(h.root.der)
    assert dedupe([inter, root, inter]) == [inter, root]
    many = [parse_certificate(f.ca(f"Spam {i}", serial=100 + i).der)
            for i in range(MAX_INTERMEDIATES + 3)]
    assert len(dedupe(many)) == MAX_INTERMEDIATES


def test_duplicated_intermediates_still_verify() -> None:
    h = f.hierarchy()
    inter = parse_certificate(h.inter.der)
    path = verify_chain(parse_certificate(h.leaf.der), [inter] * 50,
                        [parse_certificate(h.root.der)], "tlsServerAuth",
                        f.T0, f.HOST, PRESETS["webPkiLenient"])
    assert [c.der for c in path.path] == [h.leaf.der, h.inter.der,
                                          h.root.der]


def test_private_mtls_needs_revocation_evidence() -> None:
    h = f.hierarchy()
    with pytest.raises(VerificationError) as info:
        verify_chain(parse_certificate(h.leaf.der),
                     [parse_certificate(h.inter.der)],
                     [parse_certificate(h.root.der)], "tlsClientAuth",
                     f.T0, "", PRIVATE_MTLS)
    assert info.value.reason is Reason.ocspUnavailable


def test_private_mtls_short_lived_leaf_passes() -> None:
    h = f.hierarchy()
    short = f.leaf(h.inter, not_after=f.T0 + 5 * f.DAY, serial=77)
    path = verify_chain(parse_certificate(short.der),
                        [parse_certificate(h.inter.der)],
                        [parse_certificate(h.root.der)], "tlsClientAuth",
                        f.T0, "", PRIVATE_MTLS)
    assert path.anchor.der == h.root.der


@pytest.mark.parametrize("offset,reason", [
    (-f.DAY - f.DAY / 24, Reason.notYetValid),
    (90 * f.DAY + f.DAY / 24, Reason.expired),
], ids=["before-notBefore-beyond-skew", "after-notAfter-beyond-skew"])
def test_validity_boundaries(offset: object, reason: Reason) -> None:
    h = f.hierarchy()
    with pytest.raises(VerificationError) as info:
        verify_chain(parse_certificate(h.leaf.der),
                     [parse_certificate(h.inter.der)],
                     [parse_certificate(h.root.der)], "tlsServerAuth",
                     f.T0 + offset, f.HOST,  # type: ignore[operator]
                     PRESETS["webPkiLenient"])
    assert info.value.reason is reason
    assert "serial" in info.value.context


def test_within_skew_passes() -> None:
    h = f.hierarchy()
    at = f.T0 + 90 * f.DAY + f.DAY / (24 * 60 * 2)  # 30 s past notAfter
    path = verify_chain(parse_certificate(h.leaf.der),
                        [parse_certificate(h.inter.der)],
                        [parse_certificate(h.root.der)], "tlsServerAuth",
                        at, f.HOST, PRESETS["webPkiLenient"])
    assert path.anchor.der == h.root.der
