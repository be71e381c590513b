"""``CertificateAuthority`` server: issue, revoke, listIssued, policy,
narrow.

Each capability holds one :class:`IssuancePolicy`, fixed when minted;
``narrow`` mints a new capability over the same :class:`PrivateCA` with
a narrower policy and leaves this one unchanged. A holder may revoke
only certificates whose names its own policy admits. Every decision is
audited; refusals reach the caller as ``<reason>: <dimension>: ...``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from cryptography import x509

from services._runtime.audit import AuditEvent, AuditSink
from services._runtime.boundary import CapabilityError
from services._runtime.clock import Clock, epoch_seconds
from services._runtime.schema import pki
from services.ca import policy as ca_policy
from services.ca.core import PrivateCA
from services.ca.errors import PolicyRejectedError, Reason
from services.ca.model import (
    IssuancePolicy,
    Narrowing,
    SubjectName,
    name_text,
    parse_request,
)
from services.x509.chain_impl import CertificateChainImpl
from services.x509.model import REVOCATION_REASONS, parse_certificate


def _refuse_name(detail: str) -> PolicyRejectedError:
    return PolicyRejectedError(Reason.policyViolation,
                               f"nameSubtrees: {detail}",
                               dimension="nameSubtrees")


def read_name(reader: Any) -> x509.GeneralName:
    """A schema GeneralName as cryptography's; dnsName and ipAddress
    (4/16 octets for a SAN; 8/32, address then contiguous mask, for a
    subtree, RFC 5280 4.2.1.10).

    :raises PolicyRejectedError: another name form, or a malformed one.
    """
    kind = reader.which()
    try:
        if kind == "dnsName":
            return x509.DNSName(str(reader.dnsName))
        if kind != "ipAddress":
            raise _refuse_name(f"unsupported name form {kind}")
        raw = bytes(reader.ipAddress)
        if len(raw) in (4, 16):
            return x509.IPAddress(ipaddress.ip_address(raw))
        if len(raw) not in (8, 32):
            raise _refuse_name(f"ipAddress of {len(raw)} octets")
        half = len(raw) // 2
        mask = int.from_bytes(raw[half:], "big")
        prefix = bin(mask).count("1")
        bits = 8 * half
        if mask != ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1):
            raise _refuse_name("ipAddress mask is not contiguous")
        return x509.IPAddress(ipaddress.ip_network((raw[:half], prefix)))
    except ValueError as err:
        raise _refuse_name(f"malformed {kind}: {err}") from err


def _write_name(builder: Any, gn: SubjectName) -> None:
    if isinstance(gn, x509.DNSName):
        builder.dnsName = gn.value
        return
    value = gn.value
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        builder.ipAddress = (value.network_address.packed
                             + value.netmask.packed)
    else:
        builder.ipAddress = value.packed


def read_narrowing(reader: Any) -> Narrowing:
    """A schema IssuancePolicy, as asked of ``narrow`` (zero and empty
    keep the wider value)."""
    subs = reader.nameSubtrees

    def names(lst: Any) -> tuple[SubjectName, ...]:
        out = tuple(read_name(s.base) for s in lst)
        return out  # type: ignore[return-value]

    return Narrowing(
        permitted=names(subs.permitted), excluded=names(subs.excluded),
        max_lifetime_seconds=int(reader.maxLifetimeSeconds),
        key_types=tuple(str(k) for k in reader.keyTypes),
        must_staple=bool(reader.mustStaple))


def write_policy(builder: Any, p: IssuancePolicy) -> None:
    subs = builder.init("nameSubtrees")
    for field, names in (("permitted", p.permitted),
                         ("excluded", p.excluded)):
        out = subs.init(field, len(names))
        for i, gn in enumerate(names):
            _write_name(out[i].init("base"), gn)
    builder.maxLifetimeSeconds = p.max_lifetime_seconds
    keys = builder.init("keyTypes", len(p.key_types))
    for i, k in enumerate(p.key_types):
        keys[i] = k
    builder.mustStaple = p.must_staple


_Server: Any = pki().CertificateAuthority.Server


class CertificateAuthorityImpl(_Server):  # type: ignore[misc]
    """One holder's view of a private CA."""

    def __init__(self, ca: PrivateCA, issuance: IssuancePolicy, *,
                 audit: AuditSink, clock: Clock, service: str = "ca",
                 label: str = "ca") -> None:
        self.ca = ca
        self.issuance = issuance
        self._audit = audit
        self._clock = clock
        self._service = service
        self._label = label

    def _emit(self, operation: str, outcome: str, reason: str = "",
              subject: tuple[str, ...] = (), detail: str = "") -> None:
        self._audit.emit(AuditEvent(
            at=self._clock.now(), service=self._service,
            capability=self._label, operation=operation, outcome=outcome,
            reason=reason, subject=subject, detail=detail))

    def _refused(self, operation: str, err: PolicyRejectedError,
                 subject: tuple[str, ...] = ()) -> CapabilityError:
        self._emit(operation, "refused", err.reason.value, subject,
                   err.detail)
        return CapabilityError(err.reason.value, err.detail)

    async def issue(self, request: Any, _context: Any,
                    **kwargs: Any) -> None:
        try:
            sans = tuple(read_name(n) for n in request.subjectAltNames)
        except PolicyRejectedError as err:
            raise self._refused("issue", err) from err
        try:
            parsed = parse_request(
                bytes(request.csr), sans, int(request.lifetimeSeconds),
                tuple(str(p) for p in request.purposes))
        except ValueError as err:
            self._emit("issue", "refused", "policyViolation",
                       detail=f"csr: {err}")
            raise CapabilityError("policyViolation",
                                  f"csr: not a DER PKCS#10 request: {err}"
                                  ) from err
        try:
            admitted = ca_policy.admit(self.issuance, parsed)
        except PolicyRejectedError as err:
            raise self._refused("issue", err) from err
        record = self.ca.issue(admitted)
        self._emit("issue", "ok", subject=(
            f"serial={record.serial:x}", f"sha256={record.sha256.hex()}",
            *record.sans), detail=f"notAfter={record.not_after.isoformat()}")
        _context.results.chain = CertificateChainImpl([
            parse_certificate(record.der), parse_certificate(self.ca.cert_der)
        ])

    async def revoke(self, serial: bytes, reason: Any, _context: Any,
                     **kwargs: Any) -> None:
        number = int.from_bytes(bytes(serial), "big", signed=True)
        subject = (f"serial={number:x}",)
        name = str(reason)
        # RFC 5280 5.3.1: removeFromCRL belongs to delta CRLs only, and
        # value 7 is unused; neither can be the reason for a revocation.
        if name not in REVOCATION_REASONS or name == "removeFromCrl":
            err = PolicyRejectedError(Reason.policyViolation,
                                      f"reason {name} cannot be used")
            raise self._refused("revoke", err, subject)
        record = self.ca.lookup(number)
        if record is None:
            err = PolicyRejectedError(Reason.policyViolation,
                                      "serial was not issued by this CA")
            raise self._refused("revoke", err, subject)
        if not ca_policy.may_revoke(self.issuance, _sans(record.der)):
            err = PolicyRejectedError(
                Reason.policyViolation,
                "nameSubtrees: certificate names lie outside this "
                "capability's policy", dimension="nameSubtrees")
            raise self._refused("revoke", err, subject)
        changed = self.ca.revoke(number, name)
        self._emit("revoke", "ok", subject=subject,
                   detail=name if changed else f"{name} (already revoked)")

    async def listIssued(self, _context: Any, **kwargs: Any) -> None:
        # A holder sees what it could have issued, no more.
        records = [r for r in self.ca.store.records()
                   if ca_policy.may_revoke(self.issuance, _sans(r.der))]
        out = _context.results.init("records", len(records))
        for i, r in enumerate(records):
            out[i].serial = r.serial_bytes
            out[i].fingerprint = r.sha256
            out[i].notAfter = epoch_seconds(r.not_after)
            out[i].revoked = r.is_revoked
            out[i].revocationReason = r.reason
            if r.revoked_at is not None:
                out[i].revokedAt = epoch_seconds(r.revoked_at)

    async def policy(self, _context: Any, **kwargs: Any) -> None:
        write_policy(_context.results.init("policy"), self.issuance)

    async def narrow(self, policy: Any, _context: Any,
                     **kwargs: Any) -> None:
        try:
            asked = read_narrowing(policy)
            narrowed = ca_policy.narrow(self.issuance, asked)
        except PolicyRejectedError as err:
            raise self._refused("narrow", err) from err
        self._emit("narrow", "ok", detail=_describe(narrowed))
        _context.results.ca = CertificateAuthorityImpl(
            self.ca, narrowed, audit=self._audit, clock=self._clock,
            service=self._service, label=f"{self._label}/narrowed")


def _sans(der: bytes) -> tuple[SubjectName, ...]:
    cert = x509.load_der_x509_certificate(der)
    try:
        names = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(g for g in names
                 if isinstance(g, (x509.DNSName, x509.IPAddress)))


def _describe(p: IssuancePolicy) -> str:
    return (f"permitted={[name_text(g) for g in p.permitted]} "
            f"excluded={[name_text(g) for g in p.excluded]} "
            f"maxLifetime={p.max_lifetime_seconds} keys={list(p.key_types)} "
            f"mustStaple={p.must_staple}")
