"""Field reports 1, 3, 5, 6, 7, 8 and 9 (docs/field-reports.md).

Every sub-case is built here with T0 = 2026-01-15T12:00:00Z injected and
checked against the pure verifier core. The reports' suggested reason
names map onto the schema FailureReason as follows:

- UnknownIssuer, PathBuildingLimit -> unknownAnchor (the latter with a
  detail starting "path-building budget exhausted");
- Expired -> expired; NotValidYet -> notYetValid;
- NotValidForName, an invalid reference identity -> nameMismatch;
- MalformedCertificate (non-positive serial) -> policyViolation;
- UnsupportedSignatureAlgorithm -> weakAlgorithm;
- InvalidPurpose -> badEku; ChainTooLong -> chainTooLong.

Not here, because they belong to other parts of the system: 6(d) OCSP
CertIDs (the OCSP code), 8(f) the encoding of certificates the project
issues itself (the CA), and 6(c)'s ``ocsp_crl_allow_sha1`` switch,
which does not exist: SHA-1-signed CRLs are always followed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.x509.errors import Reason, VerificationError
from services.x509.model import ParsedCertificate, parse_certificate
from services.x509.policy import (
    CODE_SIGNING,
    MAX_INTERMEDIATES,
    WEB_PKI_LENIENT,
    VerificationPolicy,
    VerifiedPath,
    candidate_pool,
    verify_chain,
)
from tests.services.x509 import derhelp
from tests.services.x509 import pkifactory as f

T0 = f.T0
assert T0 == dt.datetime(2026, 1, 15, 12, 0, 0, tzinfo=dt.UTC)
YEAR = 365 * f.DAY
SEC = dt.timedelta(seconds=1)
EKU = ExtendedKeyUsageOID
POLICY = dataclasses.replace(WEB_PKI_LENIENT, clock_skew_seconds=0)


def P(der: bytes) -> ParsedCertificate:
    return parse_certificate(der)


def verify(chain: list[bytes], anchors: list[bytes], *,
           host: str = "www.example.com", purpose: str = "tlsServerAuth",
           policy: VerificationPolicy = POLICY,
           crls: tuple[bytes, ...] = ()) -> VerifiedPath:
    certs = [P(d) for d in chain]
    return verify_chain(certs[0], certs[1:], [P(a) for a in anchors],
                        purpose, T0, host, policy, crls)


def refused(chain: list[bytes], anchors: list[bytes],
            **kwargs: object) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        verify(chain, anchors, **kwargs)  # type: ignore[arg-type]
    return info.value


_RSA: dict[str, rsa.RSAPrivateKey] = {}


def rsa_key(label: str) -> rsa.RSAPrivateKey:
    if label not in _RSA:
        _RSA[label] = rsa.generate_private_key(65537, 2048)
    return _RSA[label]


# --- 1. Path building around an expired cross-signing root ---------------

@dataclasses.dataclass(frozen=True)
class Cross:
    legacy: f.Issued
    root_x: f.Issued
    cross: f.Issued
    issuing: f.Issued
    leaf: f.Issued


def cross_pki() -> Cross:
    legacy = f.ca("Legacy Root", not_before=T0 - 20 * YEAR,
                  not_after=T0 - 30 * f.DAY)
    key_x = f.ec_key("Root X")
    root_x = f.ca("Root X", key=key_x, not_before=T0 - 10 * YEAR,
                  not_after=T0 + 10 * YEAR)
    cross = f.ca("Root X", legacy, key=key_x, serial=2,
                 not_before=T0 - 3 * YEAR, not_after=T0 + YEAR)
    issuing = f.ca("Issuing R", root_x, serial=3, path_length=0)
    leaf = f.leaf(issuing, host="www.example.com")
    return Cross(legacy, root_x, cross, issuing, leaf)


def test_1a_built_path_skips_the_cross_certificate() -> None:
    c = cross_pki()
    path = verify([c.leaf.der, c.issuing.der, c.cross.der],
                  [c.root_x.der, c.legacy.der])
    assert [p.der for p in path.path] == [c.leaf.der, c.issuing.der,
                                          c.root_x.der]


def test_1b_root_x_alone() -> None:
    c = cross_pki()
    path = verify([c.leaf.der, c.issuing.der, c.cross.der], [c.root_x.der])
    assert path.anchor.der == c.root_x.der


def test_1c_only_the_expired_legacy_root_is_expired_naming_it() -> None:
    c = cross_pki()
    err = refused([c.leaf.der, c.issuing.der, c.cross.der], [c.legacy.der])
    assert err.reason is Reason.expired
    assert "Legacy Root" in err.detail


def test_1d_cross_first_order_same_result() -> None:
    c = cross_pki()
    path = verify([c.leaf.der, c.cross.der, c.issuing.der],
                  [c.root_x.der, c.legacy.der])
    assert [p.der for p in path.path] == [c.leaf.der, c.issuing.der,
                                          c.root_x.der]


def test_1e_one_intermediate_policy_counts_the_built_path() -> None:
    c = cross_pki()
    one = dataclasses.replace(POLICY, max_chain_length=3)  # 1 intermediate
    path = verify([c.leaf.der, c.issuing.der, c.cross.der],
                  [c.root_x.der, c.legacy.der], policy=one)
    assert len(path.path) == 3


# --- 3. Wildcards and IDNA A-labels ---------------------------------------

def idn_leaves() -> tuple[f.Hierarchy, f.Issued, f.Issued]:
    h = f.hierarchy()
    a = f.leaf(h.inter, host="*.xn--bcher-kva.example", serial=301)
    b = f.leaf(h.inter, host="x*.example.org", serial=302)
    return h, a, b


def test_3a_wildcard_a_label() -> None:
    h, a, _b = idn_leaves()
    assert verify([a.der, h.inter.der], [h.root.der],
                  host="www.xn--bcher-kva.example").anchor.der == h.root.der


def test_3b_u_label_reference_is_converted() -> None:
    h, a, _b = idn_leaves()
    assert verify([a.der, h.inter.der], [h.root.der],
                  host="www.bücher.example").anchor.der == h.root.der


def test_3c_wildcard_covers_one_label() -> None:
    h, a, _b = idn_leaves()
    err = refused([a.der, h.inter.der], [h.root.der],
                  host="a.b.xn--bcher-kva.example")
    assert err.reason is Reason.nameMismatch


def test_3d_partial_wildcard_not_honoured() -> None:
    h, _a, b = idn_leaves()
    err = refused([b.der, h.inter.der], [h.root.der],
                  host="xn--tst-bma.example.org")
    assert err.reason is Reason.nameMismatch


@pytest.mark.parametrize("ref", ["*.xn--bcher-kva.example", "w*w.example",
                                 "www.b\u00fccher..example"])
def test_3e_invalid_reference_identity(ref: str) -> None:
    h, a, _b = idn_leaves()
    err = refused([a.der, h.inter.der], [h.root.der], host=ref)
    assert err.reason is Reason.nameMismatch


# --- 5. Negative and zero serial numbers ---------------------------------

ODD_SERIAL = -int("11D4" + "A5" * 14, 16)


def to_pem(der: bytes) -> bytes:
    import base64
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines)
            + "\n-----END CERTIFICATE-----\n").encode()


def pem_blocks(bundle: bytes) -> list[bytes]:
    """DER of each CERTIFICATE block, without cryptography's loader."""
    import base64
    out, body = [], []
    for line in bundle.decode().splitlines():
        if line.startswith("-----BEGIN"):
            body = []
        elif line.startswith("-----END"):
            out.append(base64.b64decode("".join(body)))
        else:
            body.append(line)
    return out


def odd_root() -> tuple[bytes, f.Issued]:
    base = f.ca("Odd Root")
    return derhelp.resign(base.der, base.key,
                          derhelp.with_serial(ODD_SERIAL)), base


def test_5a_bundle_with_an_odd_root_loads_and_stays_usable() -> None:
    odd_der, odd = odd_root()
    normal1, normal2 = f.ca("Normal Root 1"), f.ca("Normal Root 2")
    bundle = b"".join(to_pem(d) for d in (normal1.der, odd_der, normal2.der))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = [parse_certificate(der) for der in pem_blocks(bundle)]
    assert len(loaded) == 3
    odd_parsed = loaded[1]
    assert odd_parsed.serial_positive is False  # the recorded warning
    assert int.from_bytes(odd_parsed.serial, "big", signed=True) == (
        ODD_SERIAL)
    anchors = [c.der for c in loaded]
    inter = f.ca("Under Normal 1", normal1, serial=501)
    assert verify([f.leaf(inter, host="www.example.com").der, inter.der],
                  anchors).anchor.der == normal1.der
    # The odd root itself is skipped with its reason; the store lives on.
    under_odd = f.ca("Under Odd", odd, serial=502)
    err = refused([f.leaf(under_odd, host="www.example.com").der,
                   under_odd.der], anchors)
    assert err.reason is Reason.policyViolation
    assert "negative serial is skipped" in err.detail
    assert "Odd Root" in err.detail


@pytest.mark.parametrize("serial", [-5, 0])
def test_5b_non_positive_leaf_serial_is_malformed(serial: int) -> None:
    h = f.hierarchy()
    base = f.leaf(h.inter, host="www.example.com", serial=503)
    der = derhelp.resign(base.der, h.inter.key, derhelp.with_serial(serial))
    err = refused([der, h.inter.der], [h.root.der])
    assert err.reason is Reason.policyViolation
    assert "non-positive serial" in err.detail


def test_5c_deprecation_warning_never_escapes() -> None:
    odd_der, _odd = odd_root()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_certificate(odd_der).serial_positive is False


# --- 6. Scope of SHA-1 rejection -----------------------------------------

@dataclasses.dataclass(frozen=True)
class Sha1:
    s1_sha1: bytes
    inter: f.Issued
    leaf: f.Issued
    r2: f.Issued
    i_sha1: bytes
    leaf2: f.Issued


def sha1_pki() -> Sha1:
    s1 = f.ca("Root S1", key=rsa_key("s1"))
    s1_sha1 = derhelp.resign(s1.der, s1.key, algorithm=derhelp.SHA1_RSA,
                             hash_alg=hashes.SHA1())
    inter = f.ca("I", s1, serial=601, key=rsa_key("i"))
    leaf = f.leaf(inter, host="www.example.com", serial=602)
    r2 = f.ca("R2", key=rsa_key("r2"))
    i_sha1_base = f.ca("I-sha1", r2, serial=603, key=rsa_key("isha1"))
    i_sha1 = derhelp.resign(i_sha1_base.der, r2.key,
                            algorithm=derhelp.SHA1_RSA,
                            hash_alg=hashes.SHA1())
    leaf2 = f.leaf(i_sha1_base, host="www.example.com", serial=604)
    return Sha1(s1_sha1, inter, leaf, r2, i_sha1, leaf2)


def test_6a_anchor_self_signature_is_never_relied_on() -> None:
    s = sha1_pki()
    assert x509.load_der_x509_certificate(
        s.s1_sha1).signature_hash_algorithm.name == "sha1"  # type: ignore
    path = verify([s.leaf.der, s.inter.der], [s.s1_sha1])
    assert path.anchor.der == s.s1_sha1


def test_6b_sha1_intermediate_is_unsupported_algorithm() -> None:
    s = sha1_pki()
    err = refused([s.leaf2.der, s.i_sha1], [s.r2.der])
    assert err.reason is Reason.weakAlgorithm
    assert "I-sha1" in err.detail


def _sha1_crl(issuer: f.Issued, revoked: tuple[int, ...]) -> bytes:
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(issuer.cert.subject)
               .last_update(T0 - 3600 * SEC)
               .next_update(T0 + 7 * f.DAY)
               .add_extension(x509.CRLNumber(7), critical=False))
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial)
            .revocation_date(T0 - f.DAY).build())
    crl = builder.sign(issuer.key, hashes.SHA256())  # type: ignore
    return derhelp.resign(crl.public_bytes(Encoding.DER), issuer.key,
                          algorithm=derhelp.SHA1_RSA, hash_alg=hashes.SHA1())


def test_6c_sha1_crl_follows_its_own_rule_not_certificate_gating() -> None:
    s = sha1_pki()
    chain, anchors = [s.leaf.der, s.inter.der], [s.s1_sha1]
    good = _sha1_crl(s.inter, ())
    assert x509.load_der_x509_crl(good).signature_hash_algorithm.name == (
        "sha1")  # type: ignore[union-attr]
    assert verify(chain, anchors, crls=(good,)).anchor.der == s.s1_sha1
    listed = _sha1_crl(s.inter, (602,))
    assert refused(chain, anchors, crls=(listed,)).reason is Reason.revoked


# --- 7. EKU on leaves and intermediates ----------------------------------

def eku_chain(inter_ekus: tuple[x509.ObjectIdentifier, ...] | None,
              leaf_ekus: tuple[x509.ObjectIdentifier, ...] | None,
              tag: str) -> tuple[list[bytes], list[bytes]]:
    root = f.ca(f"EKU Root {tag}")
    inter = f.ca(f"EKU Inter {tag}", root, serial=701, ekus=inter_ekus)
    leaf = f.leaf(inter, host="www.example.com", ekus=leaf_ekus, serial=702)
    return [leaf.der, inter.der], [root.der]


def test_7a_no_eku_anywhere_client_succeeds() -> None:
    chain, anchors = eku_chain(None, None, "a")
    assert verify(chain, anchors, purpose="tlsClientAuth", host="")


def test_7b_client_leaf_for_server_is_invalid_purpose() -> None:
    chain, anchors = eku_chain(None, (EKU.CLIENT_AUTH,), "b")
    assert refused(chain, anchors).reason is Reason.badEku


def test_7c_eku_is_chained_through_cas() -> None:
    chain, anchors = eku_chain((EKU.CLIENT_AUTH,), (EKU.SERVER_AUTH,), "c")
    err = refused(chain, anchors)
    assert err.reason is Reason.badEku
    assert "EKU Inter c" in err.detail


def test_7d_server_leaf_under_unrestricted_ca() -> None:
    chain, anchors = eku_chain(None, (EKU.SERVER_AUTH,), "d")
    assert verify(chain, anchors)


def test_7e_any_eku_ca_permits_server() -> None:
    chain, anchors = eku_chain((EKU.ANY_EXTENDED_KEY_USAGE,),
                               (EKU.SERVER_AUTH,), "e")
    assert verify(chain, anchors)


def test_7f_code_signing_only_under_its_policy() -> None:
    chain, anchors = eku_chain((EKU.CODE_SIGNING,), (EKU.CODE_SIGNING,), "f")
    assert verify(chain, anchors, purpose="codeSigning", host="",
                  policy=CODE_SIGNING)
    assert refused(chain, anchors).reason is Reason.badEku


# --- 8. Clock-skew tolerance at both edges, and the 9999 sentinel --------

def skew_leaf(not_before: dt.datetime, not_after: dt.datetime
              ) -> tuple[list[bytes], list[bytes]]:
    h = f.hierarchy()
    leaf = f.leaf(h.inter, host="www.example.com", serial=801,
                  not_before=not_before, not_after=not_after)
    return [leaf.der, h.inter.der], [h.root.der]


S300 = dataclasses.replace(POLICY, clock_skew_seconds=300)
S0 = dataclasses.replace(POLICY, clock_skew_seconds=0)


@pytest.mark.parametrize("case,nb,na,with_300,with_0", [
    ("a", T0 + 30 * SEC, T0 + 90 * f.DAY, "valid", "notYetValid"),
    ("b", T0 + 400 * SEC, T0 + 90 * f.DAY, "notYetValid", "notYetValid"),
    ("c", T0 - f.DAY, T0 - 60 * SEC, "valid", "expired"),
    ("c'", T0 - f.DAY, T0 - 400 * SEC, "expired", "expired"),
    ("d", T0 + 30 * SEC, T0 + 100 * SEC, "valid", "notYetValid"),
], ids=["a", "b", "c", "c-prime", "d"])
def test_8_skew_at_each_edge(case: str, nb: dt.datetime, na: dt.datetime,
                             with_300: str, with_0: str) -> None:
    chain, anchors = skew_leaf(nb, na)
    for policy, expected in ((S300, with_300), (S0, with_0)):
        try:
            verify(chain, anchors, policy=policy)
            got = "valid"
        except VerificationError as err:
            got = err.reason.name
        assert got == expected, (case, policy.clock_skew_seconds)


def test_8e_9999_sentinel_on_leaf_and_intermediate() -> None:
    end = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    root = f.ca("Sentinel Root")
    inter = f.ca("Sentinel Inter", root, serial=802, not_after=end)
    leaf = f.leaf(inter, host="www.example.com", serial=803, not_after=end)
    der = leaf.cert.public_bytes(Encoding.DER)
    assert b"\x18\x0f99991231235959Z" in der  # GeneralizedTime
    path = verify([leaf.der, inter.der], [root.der], policy=S300)
    assert path.not_after == root.cert.not_valid_after_utc


# --- 9. Path-building budget and maximum chain length --------------------

def test_9a_chain_length_both_sides_of_the_boundary() -> None:
    root = f.ca("Deep9 Root")
    i1 = f.ca("Deep9 I1", root, serial=901)
    i2 = f.ca("Deep9 I2", i1, serial=902)
    i3 = f.ca("Deep9 I3", i2, serial=903)
    chain = [f.leaf(i3, host="www.example.com").der, i3.der, i2.der, i1.der]
    # maxChainLength counts certificates: N intermediates = N + 2.
    two = dataclasses.replace(POLICY, max_chain_length=2 + 2)
    three = dataclasses.replace(POLICY, max_chain_length=3 + 2)
    assert refused(chain, [root.der], policy=two).reason is (
        Reason.chainTooLong)
    assert len(verify(chain, [root.der], policy=three).path) == 5


def _decoys() -> tuple[list[bytes], bytes, list[ec.EllipticCurvePrivateKey]]:
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(16)]
    a = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "A")])
    b = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "B")])
    decoys = []
    for i, key in enumerate(keys):
        signer = keys[(i + 1) % 16]
        cert = (x509.CertificateBuilder()
                .subject_name(a if i % 2 == 0 else b).issuer_name(b)
                .public_key(key.public_key()).serial_number(1000 + i)
                .not_valid_before(T0 - YEAR).not_valid_after(T0 + YEAR)
                .add_extension(x509.BasicConstraints(ca=True,
                                                     path_length=None),
                               critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=False, content_commitment=False,
                    key_encipherment=False, data_encipherment=False,
                    key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False),
                    critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                    key.public_key()), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(
                        signer.public_key()), critical=False)
                .sign(signer, hashes.SHA256()))
        decoys.append(cert.public_bytes(Encoding.DER))
    entry = x509.load_der_x509_certificate(decoys[0])
    leaf = f.leaf(f.Issued(entry, keys[0]), host="www.example.com")
    return decoys, leaf.der, keys


def test_9b_pathological_pool_fails_with_unknown_anchor() -> None:
    decoys, leaf, _keys = _decoys()
    unrelated = f.ca("Unrelated Root")
    err = refused([leaf, *(decoys * 4)], [unrelated.der])
    assert err.reason is Reason.unknownAnchor
    # The pool pyca sees is de-duplicated (16 distinct, under the cap).
    pool = candidate_pool(P(leaf), [P(d) for d in decoys * 4],
                          [P(unrelated.der)], POLICY)
    assert len(pool.certs) == 16 <= MAX_INTERMEDIATES
    assert len({c.der for c in pool.certs}) == 16


def test_9b_pool_over_the_cap_reports_the_budget() -> None:
    h = f.hierarchy()
    # 24 CAs named like the real intermediate, none with its key.
    fakes = [f.ca("Intermediate A", h.root, serial=950 + i,
                  key=ec.generate_private_key(ec.SECP256R1())).der
             for i in range(24)]
    err = refused([h.leaf.der, *fakes, h.inter.der], [h.root.der],
                  host=f.HOST)
    assert err.reason is Reason.unknownAnchor
    assert err.detail.startswith("path-building budget exhausted")


def test_9c_real_chain_among_19_unrelated_cas() -> None:
    h = f.hierarchy()
    unrelated = [f.ca(f"Unrelated CA {i}", serial=960 + i).der
                 for i in range(19)]
    path = verify([h.leaf.der, h.inter.der, *unrelated], [h.root.der],
                  host=f.HOST)
    assert [p.der for p in path.path] == [h.leaf.der, h.inter.der,
                                          h.root.der]
