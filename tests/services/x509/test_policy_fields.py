"""VerificationPolicy honoured field by field, and every CertPurpose.

allowedAlgorithms, allowedSignatureSchemes, maxChainLength (certificates
on the built path, leaf and anchor included), clockSkewSeconds on each
validity edge of every certificate, permitNameConstraints, the EKU
rules per purpose, and the immutability of the four presets.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from services._runtime.audit import MemoryAuditSink
from services._runtime.clock import FakeClock
from services._runtime.schema import pki
from services.x509.errors import VerificationError
from services.x509.model import parse_certificate
from services.x509.policy import (
    PRESETS,
    WEB_PKI_LENIENT,
    VerificationPolicy,
    verify_chain,
)
from services.x509.verifier_impl import CertVerifierImpl
from tests.services.x509 import pkifactory as f
from tests.services.x509.rpc import run, serve

EKU = ExtendedKeyUsageOID
P = parse_certificate
BASE = dataclasses.replace(WEB_PKI_LENIENT, clock_skew_seconds=0)
S = dt.timedelta(seconds=1)
MAX = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)


def check(chain: list[bytes], anchors: list[bytes], *,
          policy: VerificationPolicy = BASE, purpose: str = "tlsServerAuth",
          host: str = f.HOST, at: dt.datetime = f.T0) -> str:
    """"valid", or the failure reason's name."""
    certs = [P(d) for d in chain]
    try:
        verify_chain(certs[0], certs[1:], [P(a) for a in anchors], purpose,
                     at, host, policy)
    except VerificationError as err:
        return err.reason.name
    return "valid"


def policy(**changes: object) -> VerificationPolicy:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


# --- allowedAlgorithms ----------------------------------------------------

def test_allowed_algorithms_gates_leaf_intermediate_and_anchor() -> None:
    h = f.hierarchy()
    assert check(h.chain, [h.root.der]) == "valid"
    assert check(h.chain, [h.root.der],
                 policy=policy(allowed_algorithms=("ecdsaP384",))
                 ) == "weakAlgorithm"
    rsa_root = f.ca("RSA Root", key=rsa.generate_private_key(65537, 2048))
    inter = f.ca("EC Inter", rsa_root, serial=9)
    chain = [f.leaf(inter).der, inter.der]
    assert check(chain, [rsa_root.der]) == "valid"
    # Only the anchor's key is RSA: the anchor is gated too.
    assert check(chain, [rsa_root.der], policy=policy(
        allowed_algorithms=("ecdsaP256",))) == "weakAlgorithm"


def test_refused_intermediate_off_the_path_does_not_matter() -> None:
    h = f.hierarchy()
    weak = f.ca("Weak Side CA", h.root, serial=11,
                key=rsa.generate_private_key(65537, 1024))
    assert check([*h.chain, weak.der], [h.root.der]) == "valid"


# --- allowedSignatureSchemes ---------------------------------------------

def test_allowed_schemes_gate_every_signature_relied_on() -> None:
    h = f.hierarchy()
    only384 = policy(allowed_signature_schemes=("ecdsaP384Sha384",))
    assert check(h.chain, [h.root.der], policy=only384) == "weakAlgorithm"
    lf = f.leaf(h.inter, hash_alg=hashes.SHA384(), serial=41)
    # The leaf is SHA-384 now but the intermediate is still SHA-256.
    assert check([lf.der, h.inter.der], [h.root.der],
                 policy=only384) == "weakAlgorithm"


def test_anchor_self_signature_is_not_gated() -> None:
    root = f.ca("SHA512 Root", hash_alg=hashes.SHA512())
    inter = f.ca("Plain Inter", root, serial=12)
    only256 = policy(allowed_signature_schemes=("ecdsaP256Sha256",))
    assert check([f.leaf(inter).der, inter.der], [root.der],
                 policy=only256) == "valid"


# --- maxChainLength ------------------------------------------------------

def test_max_chain_length_counts_the_built_path() -> None:
    h = f.hierarchy()
    junk = [f.ca(f"Junk {i}", serial=200 + i).der for i in range(4)]
    # Six certificates presented, three on the built path.
    assert check([*h.chain, *junk], [h.root.der],
                 policy=policy(max_chain_length=3)) == "valid"
    assert check(h.chain, [h.root.der],
                 policy=policy(max_chain_length=2)) == "chainTooLong"


def test_max_chain_length_counts_certificates_not_intermediates() -> None:
    root = f.ca("Len Root")
    i1 = f.ca("Len I1", root, serial=3)
    i2 = f.ca("Len I2", i1, serial=4)
    chain = [f.leaf(i2).der, i2.der, i1.der]  # path of 4 certificates
    assert check(chain, [root.der], policy=policy(max_chain_length=4)) == (
        "valid")
    assert check(chain, [root.der], policy=policy(max_chain_length=3)) == (
        "chainTooLong")


def test_max_chain_length_bounds() -> None:
    for bad in (0, 1, 256):
        with pytest.raises(ValueError):
            VerificationPolicy(max_chain_length=bad)


# --- clockSkewSeconds ----------------------------------------------------

def _edge_chain(where: str, edge: str, offset: dt.timedelta
                ) -> tuple[list[bytes], list[bytes]]:
    """A chain whose ``where`` certificate has ``edge`` at T0+offset."""
    times = {"not_before": f.T0 + offset} if edge == "nb" else {
        "not_after": f.T0 + offset}
    tag = f"{where}-{edge}-{offset.total_seconds()}"
    root = f.ca(f"Skew Root {tag}", **(times if where == "anchor" else {}))
    inter = f.ca(f"Skew Inter {tag}", root, serial=13,
                 **(times if where == "intermediate" else {}))
    lf = f.leaf(inter, serial=14, **(times if where == "leaf" else {}))
    return [lf.der, inter.der], [root.der]


@pytest.mark.parametrize("where", ["leaf", "intermediate", "anchor"])
@pytest.mark.parametrize("edge,offset,reason", [
    ("nb", 30 * S, "notYetValid"),
    ("na", -30 * S, "expired"),
])
def test_skew_applies_to_each_edge_of_every_certificate(
        where: str, edge: str, offset: dt.timedelta, reason: str) -> None:
    chain, anchors = _edge_chain(where, edge, offset)
    assert check(chain, anchors, policy=policy(clock_skew_seconds=60)) == (
        "valid")
    assert check(chain, anchors, policy=policy(clock_skew_seconds=0)) == (
        reason)
    assert check(chain, anchors, policy=policy(clock_skew_seconds=29)) == (
        reason)


def test_9999_not_after_on_every_certificate_does_not_overflow() -> None:
    root = f.ca("Forever Root", not_after=MAX)
    inter = f.ca("Forever Inter", root, serial=15, not_after=MAX)
    lf = f.leaf(inter, not_after=MAX, serial=16)
    skew = policy(clock_skew_seconds=0xFFFFFFFF)
    assert check([lf.der, inter.der], [root.der], policy=skew) == "valid"
    assert check([lf.der, inter.der], [root.der], policy=skew,
                 at=MAX - dt.timedelta(days=1)) == "valid"


# --- permitNameConstraints -----------------------------------------------

def test_permit_name_constraints() -> None:
    root = f.ca("Permit Root")
    inter = f.ca("Permit Inter", root, serial=17,
                 permitted=[x509.DNSName("capos.test")])
    chain = [f.leaf(inter).der, inter.der]
    assert check(chain, [root.der]) == "valid"
    assert check(chain, [root.der],
                 policy=policy(permit_name_constraints=False)) == (
        "nameConstraintViolation")


# --- purposes and EKU ----------------------------------------------------

EKUS = {
    "tlsServerAuth": EKU.SERVER_AUTH,
    "tlsClientAuth": EKU.CLIENT_AUTH,
    "clientIdentity": EKU.CLIENT_AUTH,
    "codeSigning": EKU.CODE_SIGNING,
    "emailSmime": EKU.EMAIL_PROTECTION,
    "ocspSigning": EKU.OCSP_SIGNING,
}
NO_EKU_OK = {"tlsClientAuth", "clientIdentity", "webauthnRoot"}
PURPOSES = [*EKUS, "webauthnRoot"]


def _host(purpose: str) -> str:
    return f.HOST if purpose == "tlsServerAuth" else ""


@pytest.mark.parametrize("purpose", PURPOSES)
def test_each_purpose_with_its_eku(purpose: str) -> None:
    h = f.hierarchy()
    own = (EKUS[purpose],) if purpose in EKUS else (EKU.CLIENT_AUTH,)
    lf = f.leaf(h.inter, ekus=own, serial=50)
    assert check([lf.der, h.inter.der], [h.root.der], purpose=purpose,
                 host=_host(purpose)) == "valid"


@pytest.mark.parametrize("purpose", list(EKUS))
def test_each_purpose_refuses_a_foreign_eku(purpose: str) -> None:
    h = f.hierarchy()
    other = (EKU.TIME_STAMPING,)
    lf = f.leaf(h.inter, ekus=other, serial=51)
    assert check([lf.der, h.inter.der], [h.root.der], purpose=purpose,
                 host=_host(purpose)) == "badEku"


@pytest.mark.parametrize("purpose", PURPOSES)
def test_leaf_without_eku(purpose: str) -> None:
    h = f.hierarchy()
    lf = f.leaf(h.inter, ekus=None, serial=52)
    expected = "valid" if purpose in NO_EKU_OK else "badEku"
    assert check([lf.der, h.inter.der], [h.root.der], purpose=purpose,
                 host=_host(purpose)) == expected


@pytest.mark.parametrize("purpose", PURPOSES)
def test_any_eku_leaf_is_refused(purpose: str) -> None:
    h = f.hierarchy()
    lf = f.leaf(h.inter, ekus=(EKU.ANY_EXTENDED_KEY_USAGE,
                               EKUS.get(purpose, EKU.CLIENT_AUTH)),
                serial=53)
    assert check([lf.der, h.inter.der], [h.root.der], purpose=purpose,
                 host=_host(purpose)) == "badEku"


@pytest.mark.parametrize("purpose", list(EKUS))
def test_eku_is_chained_through_cas(purpose: str) -> None:
    root = f.ca("Chain Root")
    wrong = f.ca(f"TS Inter {purpose}", root, serial=18,
                 ekus=(EKU.TIME_STAMPING,))
    right = f.ca(f"OK Inter {purpose}", root, serial=19,
                 ekus=(EKUS[purpose],))
    anyk = f.ca(f"Any Inter {purpose}", root, serial=20,
                ekus=(EKU.ANY_EXTENDED_KEY_USAGE,))
    for inter, expected in ((wrong, "badEku"), (right, "valid"),
                            (anyk, "valid")):
        lf = f.leaf(inter, ekus=(EKUS[purpose],), serial=54)
        assert check([lf.der, inter.der], [root.der], purpose=purpose,
                     host=_host(purpose)) == expected, inter.cert.subject


def test_web_pki_root_with_eku_only_under_the_cabf_root_profile() -> None:
    root = f.ca("EKU Root", ekus=(EKU.SERVER_AUTH,))
    inter = f.ca("Under EKU Root", root, serial=21)
    chain = [f.leaf(inter).der, inter.der]
    assert check(chain, [root.der]) == "valid"
    assert check(chain, [root.der],
                 policy=policy(cabf_root_profile=True)) == "badEku"


def test_email_identity_for_smime() -> None:
    h = f.hierarchy()
    lf = f.leaf(h.inter, ekus=(EKU.EMAIL_PROTECTION,), serial=55,
                sans=[x509.RFC822Name("ops@capos.test")])
    chain = [lf.der, h.inter.der]
    assert check(chain, [h.root.der], purpose="emailSmime",
                 host="ops@CAPOS.test") == "valid"
    assert check(chain, [h.root.der], purpose="emailSmime",
                 host="dev@capos.test") == "nameMismatch"


def test_webauthn_attestation_root_shape() -> None:
    # A FIDO-style attestation chain: no SAN, no EKU on the leaf.
    root = f.ca("Attestation Root", key=ec.generate_private_key(
        ec.SECP256R1()))
    leaf = f.leaf(root, ekus=None, sans=[x509.DNSName("authenticator")],
                  serial=56)
    assert check([leaf.der], [root.der], purpose="webauthnRoot",
                 host="") == "valid"


# --- presets -------------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_immutable(name: str) -> None:
    preset = PRESETS[name]
    before = dataclasses.asdict(preset)
    for field in dataclasses.fields(preset):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(preset, field.name, getattr(preset, field.name))
    assert isinstance(preset.allowed_algorithms, tuple)
    assert isinstance(preset.allowed_signature_schemes, tuple)
    looser = dataclasses.replace(preset, max_chain_length=255)
    assert looser is not preset
    assert dataclasses.asdict(preset) == before


def test_lists_are_refused_so_presets_cannot_be_mutated_through_them(
        ) -> None:
    with pytest.raises(TypeError):
        VerificationPolicy(allowed_algorithms=["ecdsaP256"])  # type: ignore


def test_presets_match_the_boot_manifest() -> None:
    import json
    from pathlib import Path
    doc = json.loads((Path(__file__).resolve().parents[3]
                      / "bootmanifest/presets.json").read_text())
    from services.verifier.service import policy_from_preset

    assert {p["name"] for p in doc["presets"]} == set(PRESETS)
    for preset in doc["presets"]:
        # Every field, as the booted verifier service reads it.
        assert policy_from_preset(preset) == PRESETS[preset["name"]], (
            preset["name"])


@pytest.mark.parametrize("name", list(PRESETS))
def test_verifier_reports_its_preset_and_has_no_method_to_lower_it(
        name: str) -> None:
    preset = PRESETS[name]
    impl = CertVerifierImpl(preset, audit=MemoryAuditSink(),
                            clock=FakeClock(f.T0))
    methods = set(pki().CertVerifier.schema.method_names)
    # verifyChainWithStaple adds evidence; it takes no policy.
    assert methods == {"verifyChain", "verifySignature", "policy",
                       "verifyChainWithStaple"}

    async def main() -> object:
        async with serve(impl, pki().CertVerifier) as verifier:
            return (await verifier.policy()).policy.to_dict()

    got = run(main)
    assert got["maxChainLength"] == preset.max_chain_length
    assert got["clockSkewSeconds"] == preset.clock_skew_seconds
    assert got.get("minScts", 0) == preset.min_scts
    assert list(got["allowedAlgorithms"]) == list(preset.allowed_algorithms)
