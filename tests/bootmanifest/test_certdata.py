"""certdata.txt parsing against the derived metadata."""

from __future__ import annotations

import calendar
import dataclasses

import pytest

from bootmanifest import build, certdata
from bootmanifest.errors import ManifestError

ROOTS = build.DATA_DIR / "roots"


@pytest.fixture(scope="module")
def metadata() -> dict:
    return certdata.load_metadata(
        (ROOTS / "mozilla_roots_metadata.json").read_bytes()
    )


@pytest.fixture(scope="module")
def bundle(metadata: dict) -> certdata.RootBundleData:
    return certdata.parse(
        (ROOTS / "certdata.txt").read_text(encoding="utf-8"),
        nss_version="2.90",
        name_constraints=certdata.imposed_name_constraints(metadata),
    )


def by_label(bundle: certdata.RootBundleData, label: str) -> certdata.Root:
    (root,) = [r for r in bundle.roots if r.label == label]
    return root


def test_counts(bundle: certdata.RootBundleData) -> None:
    assert len(bundle.roots) == 172
    assert len(bundle.tls_anchors) == 121
    assert len(bundle.email_anchors) == 91
    assert not any(r.trust_code_signing for r in bundle.roots)
    assert bundle.certdata_sha256.hex() == (
        "81b7f2576333a2e360e673f912d7b0b7a765d836c731003e348a46cac5d37198"
    )


def test_cross_check_agrees_with_the_metadata_and_catches_a_change(
        bundle, metadata) -> None:
    import copy

    from bootmanifest.errors import ManifestError

    certdata.cross_check(bundle, metadata)  # the real pair agrees
    assert metadata["counts"]["roots"] == len(bundle.roots) == 172
    changed = copy.deepcopy(metadata)
    changed["counts"]["tls_anchors"] += 1
    with pytest.raises(ManifestError) as info:
        certdata.cross_check(bundle, changed)
    assert info.value.reason == "rootsMismatch"
    assert "tls_anchors" in info.value.detail


def test_izenpe_distrust_after_from_trust_object(bundle) -> None:
    root = by_label(bundle, "Izenpe.com")
    assert root.trust_server_auth
    assert root.server_distrust_after == calendar.timegm(
        (2026, 4, 15, 23, 59, 59)
    )
    assert root.server_distrust_source == "trust"


def test_entrust_distrust_after_from_certificate_object(bundle) -> None:
    root = by_label(bundle, "Entrust Root Certification Authority - G2")
    assert root.server_distrust_after == calendar.timegm(
        (2024, 11, 30, 23, 59, 59)
    )
    assert root.server_distrust_source == "certificate"
    assert sum(1 for r in bundle.roots if r.server_distrust_after) == 4
    assert not any(r.email_distrust_after for r in bundle.roots)


def test_tubitak_name_constraints(bundle) -> None:
    root = by_label(bundle, "TUBITAK Kamu SM SSL Kok Sertifikasi - Surum 1")
    assert root.name_constraints_der.hex() == "3009a007300582032e7472"


def test_cross_check_catches_lost_date(bundle, metadata) -> None:
    # A certificate-only parser (certifi's) would lose Izenpe's date.
    roots = tuple(
        dataclasses.replace(r, server_distrust_after=0)
        if r.label == "Izenpe.com" else r
        for r in bundle.roots
    )
    with pytest.raises(ManifestError) as info:
        certdata.cross_check(dataclasses.replace(bundle, roots=roots),
                             metadata)
    assert info.value.reason == "rootsMismatch"
    assert info.value.context["label"] == "Izenpe.com"


def test_no_begindata_is_malformed() -> None:
    with pytest.raises(ManifestError) as info:
        certdata.parse("# nothing here\n")
    assert info.value.reason == "rootsMalformed"
