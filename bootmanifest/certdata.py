"""Parsing Mozilla NSS ``certdata.txt`` into root-store anchors.

Owns the reading of the NSS builtins format (``lib/ckfw/builtins/
certdata.txt``): ``CKO_CERTIFICATE`` objects give the DER
(``CKA_VALUE``); ``CKO_NSS_TRUST`` objects, matched to certificates on
issuer and serial number (and checked on SHA-1), give the trust bits.

Distrust-after dates (``CKA_NSS_SERVER_DISTRUST_AFTER``,
``CKA_NSS_EMAIL_DISTRUST_AFTER``) are read from *both* objects and the
earlier date wins. NOTE: NSS's builtins README puts these attributes on the
certificate object, but Bug 2017322 put Izenpe.com's server date on the
trust object only; a certificate-only parser (mkcert/certifi) misses it.

Name constraints that NSS imposes from its hard-coded table
(``lib/certdb/genname.c``) are not in ``certdata.txt``; they come from
``mozilla_roots_metadata.json``, matched on the subject DER.

:func:`cross_check` compares a parse with ``mozilla_roots_metadata.json``
(counts and per-root SHA-256, trust bits and dates) and refuses any
difference. Pure: functions take text or bytes, not paths.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from bootmanifest.errors import ManifestError, Reason

TRUSTED_DELEGATOR = "CKT_NSS_TRUSTED_DELEGATOR"
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Root:
    """One root of the bundle, with its trust metadata."""

    label: str
    der: bytes
    sha256: bytes
    subject_der: bytes
    trust_server_auth: bool
    trust_email: bool
    trust_code_signing: bool
    server_distrust_after: int  # epoch seconds, 0 = none
    email_distrust_after: int
    server_distrust_source: str  # "", "certificate", "trust" or "both"
    name_constraints_der: bytes = b""


@dataclass(frozen=True)
class RootBundleData:
    """The parsed bundle and where it came from."""

    nss_version: str
    certdata_sha256: bytes
    roots: tuple[Root, ...]

    @property
    def tls_anchors(self) -> tuple[Root, ...]:
        return tuple(r for r in self.roots if r.trust_server_auth)

    @property
    def email_anchors(self) -> tuple[Root, ...]:
        return tuple(r for r in self.roots if r.trust_email)


def _objects(text: str) -> list[dict[str, tuple[str, Any]]]:
    """Split the BEGINDATA section into attribute dictionaries."""
    start = text.find("\nBEGINDATA\n")
    if start < 0:
        raise ManifestError(Reason.ROOTS_MALFORMED, "no BEGINDATA line")
    lines = text[start + len("\nBEGINDATA\n") :].splitlines()
    objects: list[dict[str, tuple[str, Any]]] = []
    current: dict[str, tuple[str, Any]] | None = None
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 2:
            raise ManifestError(
                Reason.ROOTS_MALFORMED, f"bad line {line!r}", line=line
            )
        name, kind = parts[0], parts[1]
        if kind == "MULTILINE_OCTAL":
            chunks: list[str] = []
            while i < len(lines) and lines[i].strip() != "END":
                chunks.append(lines[i].strip())
                i += 1
            i += 1  # the END line
            value: Any = bytes(
                int(o, 8) for o in _OCTAL.findall("".join(chunks))
            )
        else:
            value = parts[2] if len(parts) > 2 else ""
            if kind == "UTF8":
                value = value.strip('"')
        if name == "CKA_CLASS":
            current = {}
            objects.append(current)
        if current is None:
            raise ManifestError(
                Reason.ROOTS_MALFORMED, f"{name} before CKA_CLASS"
            )
        current[name] = (kind, value)
    return objects


def _date(attr: tuple[str, Any] | None) -> int:
    """A distrust-after attribute as epoch seconds (0 for CK_FALSE/none)."""
    if attr is None:
        # NOTE: Entrust Root Certification Authority - G4 lacks the
        # email attribute altogether; NSS treats absence as CK_FALSE.
        return 0
    kind, value = attr
    if kind == "CK_BBOOL":
        if value != "CK_FALSE":
            raise ManifestError(
                Reason.ROOTS_MALFORMED, f"distrust-after {value!r}"
            )
        return 0
    text = value.decode("ascii")  # UTCTime, YYMMDDhhmmssZ
    parsed = time.strptime(text, "%y%m%d%H%M%SZ")
    return calendar.timegm(parsed)


def _earliest(*dates: int) -> int:
    real = [d for d in dates if d]
    return min(real) if real else 0


def _source(cert_date: int, trust_date: int) -> str:
    if cert_date and trust_date:
        return "both"
    return "certificate" if cert_date else ("trust" if trust_date else "")


def parse(
    text: str,
    *,
    nss_version: str = "",
    name_constraints: dict[bytes, bytes] | None = None,
) -> RootBundleData:
    """Parse ``certdata.txt``.

    :param text: the file's contents.
    :param nss_version: the builtins version, which the file itself does
        not state (it is in ``nssckbi.h``); taken from the metadata.
    :param name_constraints: subject DER to NameConstraints DER, the
        root program's imposed constraints (see :func:`load_metadata`).
    :raises ManifestError: ``rootsMalformed`` on an unparseable file or a
        certificate without exactly one matching trust object.
    """
    constraints = name_constraints or {}
    objects = _objects(text)
    certs = [o for o in objects if o["CKA_CLASS"][1] == "CKO_CERTIFICATE"]
    trusts: dict[tuple[bytes, bytes], dict[str, tuple[str, Any]]] = {}
    for obj in objects:
        if obj["CKA_CLASS"][1] != "CKO_NSS_TRUST":
            continue
        key = (obj["CKA_ISSUER"][1], obj["CKA_SERIAL_NUMBER"][1])
        if key in trusts:
            raise ManifestError(
                Reason.ROOTS_MALFORMED,
                f"two trust objects for {obj['CKA_LABEL'][1]}",
            )
        trusts[key] = obj
    roots: list[Root] = []
    for cert in certs:
        label = cert["CKA_LABEL"][1]
        der = cert["CKA_VALUE"][1]
        key = (cert["CKA_ISSUER"][1], cert["CKA_SERIAL_NUMBER"][1])
        trust = trusts.pop(key, None)
        if trust is None:
            raise ManifestError(
                Reason.ROOTS_MALFORMED,
                f"no trust object for {label}",
                label=label,
            )
        sha1 = trust.get("CKA_CERT_SHA1_HASH", ("", b""))[1]
        if sha1 != hashlib.sha1(der).digest():
            raise ManifestError(
                Reason.ROOTS_MALFORMED,
                f"trust object SHA-1 does not match {label}",
                label=label,
            )
        server_cert = _date(cert.get("CKA_NSS_SERVER_DISTRUST_AFTER"))
        server_trust = _date(trust.get("CKA_NSS_SERVER_DISTRUST_AFTER"))
        email_cert = _date(cert.get("CKA_NSS_EMAIL_DISTRUST_AFTER"))
        email_trust = _date(trust.get("CKA_NSS_EMAIL_DISTRUST_AFTER"))
        subject = cert["CKA_SUBJECT"][1]
        roots.append(
            Root(
                label=label,
                der=der,
                sha256=hashlib.sha256(der).digest(),
                subject_der=subject,
                trust_server_auth=_trusted(trust, "CKA_TRUST_SERVER_AUTH"),
                trust_email=_trusted(trust, "CKA_TRUST_EMAIL_PROTECTION"),
                trust_code_signing=_trusted(trust, "CKA_TRUST_CODE_SIGNING"),
                server_distrust_after=_earliest(server_cert, server_trust),
                email_distrust_after=_earliest(email_cert, email_trust),
                server_distrust_source=_source(server_cert, server_trust),
                name_constraints_der=constraints.get(subject, b""),
            )
        )
    if trusts:
        labels = sorted(t["CKA_LABEL"][1] for t in trusts.values())
        raise ManifestError(
            Reason.ROOTS_MALFORMED,
            f"trust objects without a certificate: {labels}",
        )
    return RootBundleData(
        nss_version=nss_version,
        certdata_sha256=hashlib.sha256(text.encode("utf-8")).digest(),
        roots=tuple(roots),
    )


def _trusted(trust: dict[str, tuple[str, Any]], attr: str) -> bool:
    return bool(trust[attr][1] == TRUSTED_DELEGATOR)


def load_metadata(raw: bytes) -> dict[str, Any]:
    """Parse ``mozilla_roots_metadata.json``."""
    data: dict[str, Any] = json.loads(raw)
    return data


def imposed_name_constraints(metadata: dict[str, Any]) -> dict[bytes, bytes]:
    """NSS's hard-coded name constraints, subject DER to extension DER."""
    return {
        bytes.fromhex(e["subject_der_hex"]): bytes.fromhex(
            e["name_constraints_der_hex"]
        )
        for e in metadata.get("nss_imposed_name_constraints", [])
    }


def _iso_epoch(text: str | None) -> int:
    if not text:
        return 0
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def cross_check(bundle: RootBundleData, metadata: dict[str, Any]) -> None:
    """Refuse a parse that disagrees with the derived metadata.

    Checks the counts (roots, TLS and email anchors) and, root by root in
    file order, SHA-256, trust bits, distrust dates and name constraints.

    :raises ManifestError: ``rootsMismatch`` naming the first difference.
    """
    counts = metadata["counts"]
    mine = {
        "roots": len(bundle.roots),
        "tls_anchors": len(bundle.tls_anchors),
        "email_anchors": len(bundle.email_anchors),
    }
    for name, value in mine.items():
        if counts[name] != value:
            raise ManifestError(
                Reason.ROOTS_MISMATCH,
                f"{name}: parsed {value}, metadata says {counts[name]}",
                field=name,
            )
    expected = metadata["roots"]
    if len(expected) != len(bundle.roots):
        raise ManifestError(Reason.ROOTS_MISMATCH, "root list length")
    for root, meta in zip(bundle.roots, expected, strict=True):
        nc_hex = meta.get("nss_imposed_name_constraints_der_hex") or ""
        checks = {
            "label": (root.label, meta["label"]),
            "sha256": (root.sha256.hex().upper(), meta["sha256"].upper()),
            "trust_server_auth": (root.trust_server_auth, meta["tls_anchor"]),
            "trust_email": (root.trust_email, meta["email_anchor"]),
            "server_distrust_after": (
                root.server_distrust_after,
                _iso_epoch(meta["server_distrust_after"]),
            ),
            "email_distrust_after": (
                root.email_distrust_after,
                _iso_epoch(meta["email_distrust_after"]),
            ),
            "name_constraints": (root.name_constraints_der.hex(), nc_hex),
        }
        for field, (got, want) in checks.items():
            if got != want:
                raise ManifestError(
                    Reason.ROOTS_MISMATCH,
                    f"{root.label}: {field} parsed {got!r}, "
                    f"metadata says {want!r}",
                    label=root.label,
                    field=field,
                )
