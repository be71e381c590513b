"""``Certificate`` server: every method of the schema interface.

Also holds the writers from :mod:`services.x509.model` values into schema
builders (names, general names), which the other ``*_impl`` modules
reuse, and :func:`read_name`, the one reader of a schema
``DistinguishedName``.
"""

from __future__ import annotations

from typing import Any

from services._runtime.clock import epoch_seconds
from services._runtime.schema import pki
from services.x509.boundary import capability_error
from services.x509.errors import Reason
from services.x509.model import (
    EKU_NAMES,
    DistinguishedNameValue,
    GeneralNameValue,
    ParsedCertificate,
)
from services.x509.publickey_impl import PublicKeyImpl

_SCT_HASH = {"sha1": "sha1", "sha256": "sha256", "sha384": "sha384",
             "sha512": "sha512"}
_SCT_SIG = {"ECDSA": "ecdsaP256Sha256", "RSA": "rsaPkcs1Sha256"}


def write_name(builder: Any, name: DistinguishedNameValue) -> None:
    """Fill a schema DistinguishedName builder."""
    rdns = builder.init("rdns", len(name.rdns))
    for i, rdn in enumerate(name.rdns):
        attrs = rdns[i].init("attributes", len(rdn))
        for j, (oid, value) in enumerate(rdn):
            attrs[j].oid = oid
            attrs[j].value = value
    builder.der = name.der
    builder.rfc4514 = name.rfc4514


def write_general_name(builder: Any, gn: GeneralNameValue) -> None:
    """Fill a schema GeneralName builder."""
    if gn.kind == "directoryName":
        assert isinstance(gn.value, DistinguishedNameValue)
        write_name(builder.init("directoryName"), gn.value)
    elif gn.kind == "otherName":
        assert isinstance(gn.value, tuple)
        other = builder.init("otherName")
        other.typeId, other.value = gn.value
    else:
        setattr(builder, gn.kind, gn.value)


def read_name_der(reader: Any) -> bytes:
    """The DER of a schema DistinguishedName (the field callers compare)."""
    return bytes(reader.der)


class CertificateImpl(pki().Certificate.Server):  # type: ignore[misc]
    """One parsed certificate served as a capability."""

    def __init__(self, cert: ParsedCertificate) -> None:
        self.parsed = cert

    async def der(self, _context: Any, **kwargs: Any) -> bytes:
        return self.parsed.der

    async def subject(self, _context: Any, **kwargs: Any) -> None:
        write_name(_context.results.init("name"), self.parsed.subject)

    async def issuer(self, _context: Any, **kwargs: Any) -> None:
        write_name(_context.results.init("name"), self.parsed.issuer)

    async def serial(self, _context: Any, **kwargs: Any) -> bytes:
        return self.parsed.serial

    async def notBefore(self, _context: Any, **kwargs: Any) -> int:
        return epoch_seconds(self.parsed.not_before)

    async def notAfter(self, _context: Any, **kwargs: Any) -> int:
        return epoch_seconds(self.parsed.not_after)

    async def subjectAltNames(self, _context: Any, **kwargs: Any) -> None:
        names = _context.results.init("names", len(self.parsed.sans))
        for i, gn in enumerate(self.parsed.sans):
            write_general_name(names[i], gn)

    async def publicKey(self, _context: Any, **kwargs: Any) -> None:
        _context.results.pk = PublicKeyImpl(self.parsed.cert.public_key(),
                                            self.parsed.spki_der)

    async def keyUsage(self, _context: Any, **kwargs: Any) -> None:
        usage = _context.results.init("usage")
        flags = self.parsed.key_usage or (False,) * 9
        for field, value in zip(pki().KeyUsageFlags.schema.fieldnames,
                                flags, strict=False):
            setattr(usage, field, value)

    async def extendedKeyUsage(self, _context: Any, **kwargs: Any) -> None:
        ekus = _context.results.init("ekus", len(self.parsed.ekus))
        for i, oid in enumerate(self.parsed.ekus):
            ekus[i].oid = oid
            ekus[i].known = EKU_NAMES.get(oid, "other")

    async def basicConstraints(self, _context: Any, **kwargs: Any) -> None:
        _context.results.ca = self.parsed.is_ca
        _context.results.pathLenConstraint = self.parsed.path_len

    async def nameConstraints(self, _context: Any, **kwargs: Any) -> None:
        nc = _context.results.init("constraints")
        for field, names in (("permitted", self.parsed.permitted),
                             ("excluded", self.parsed.excluded)):
            subtrees = nc.init(field, len(names))
            for i, gn in enumerate(names):
                write_general_name(subtrees[i].init("base"), gn)

    async def embeddedScts(self, _context: Any, **kwargs: Any) -> None:
        scts = _context.results.init("scts", len(self.parsed.scts))
        for i, sct in enumerate(self.parsed.scts):
            out = scts[i]
            out.logId = sct.log_id
            out.timestamp = sct.timestamp_ms
            out.extensions = sct.extensions
            out.signature = sct.signature
            out.hashAlgorithm = _SCT_HASH.get(sct.hash_algorithm, "sha256")
            out.signatureAlgorithm = _SCT_SIG.get(
                sct.signature_algorithm.split(".")[-1], "ecdsaP256Sha256")
            out.origin = "embedded"

    async def mustStaple(self, _context: Any, **kwargs: Any) -> bool:
        return self.parsed.has_must_staple

    async def fingerprint(self, hash: Any, _context: Any,
                          **kwargs: Any) -> bytes:
        return self.parsed.fingerprint(str(hash))

    async def info(self, _context: Any, **kwargs: Any) -> None:
        if not self.parsed.algorithm:
            raise capability_error(Reason.weakAlgorithm,
                                   "key algorithm outside the schema")
        _context.results.kind = self.parsed.kind
        _context.results.algorithm = self.parsed.algorithm
