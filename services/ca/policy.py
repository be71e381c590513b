"""The private CA's pure decisions: narrowing a policy, admitting a
request.

Rules kept here:

- A policy is only ever narrowed (RFC 5280 section 4.2.1.10 semantics
  for the subtrees): each permitted subtree of the narrower policy lies
  inside one of the wider policy's; excluded subtrees accumulate, so
  none can be dropped; the maximum lifetime never grows; key types are
  a subset; must-staple, once on, stays on. Zero or empty in the
  request keeps the wider value.
- A request is admitted only if the CSR's self-signature verifies
  (proof of possession, RFC 2986 section 3), its key type is listed,
  every SAN is a ``dNSName`` or ``iPAddress`` inside the permitted
  subtrees and touching no excluded one, and the lifetime fits.
- A wildcard SAN ``*.example.com`` is refused when it could match a
  name in an excluded subtree (field report 1's lesson); a subtree match
  is label-wise, never a bare string suffix.
- No holder may issue an OCSP-signing, CT-log or WebAuthn certificate:
  a delegated OCSP signer speaks for the whole CA (RFC 6960 section
  4.2.2.2), so only the CA itself mints one.
"""

from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from services.ca.errors import PolicyRejectedError, Reason
from services.ca.model import (
    Admitted,
    IssuancePolicy,
    Narrowing,
    ParsedRequest,
    SubjectName,
    name_text,
)

#: CertPurpose names a holder may ask for, and the EKU each becomes.
PURPOSE_EKU: dict[str, x509.ObjectIdentifier] = {
    "tlsServerAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "tlsClientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "clientIdentity": ExtendedKeyUsageOID.CLIENT_AUTH,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailSmime": ExtendedKeyUsageOID.EMAIL_PROTECTION,
}


def _refuse(dimension: str, detail: str,
            reason: Reason = Reason.policyViolation) -> PolicyRejectedError:
    return PolicyRejectedError(reason, f"{dimension}: {detail}",
                               dimension=dimension)


def _labels(name: str) -> list[str]:
    return name.lower().strip(".").split(".")


def dns_within(name: str, base: str) -> bool:
    """``name`` is ``base`` or a name below it, label-wise."""
    n, b = _labels(name), _labels(base)
    return len(n) >= len(b) and n[len(n) - len(b):] == b


def _ip(gn: x509.IPAddress) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    value = gn.value
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return value
    return ipaddress.ip_network(value)


def name_within(name: SubjectName, base: SubjectName) -> bool:
    """A SAN (or a subtree) lies entirely inside subtree ``base``."""
    if isinstance(name, x509.DNSName) and isinstance(base, x509.DNSName):
        return dns_within(name.value, base.value)
    if isinstance(name, x509.IPAddress) and isinstance(base, x509.IPAddress):
        a, b = _ip(name), _ip(base)
        return a.version == b.version and a.subnet_of(b)  # type: ignore
    return False


def name_touches(name: SubjectName, base: SubjectName) -> bool:
    """A SAN (or subtree) shares at least one name with subtree ``base``.

    A wildcard ``*.X`` touches ``base`` when ``base`` lies below ``X``,
    and any subtree touches a base that lies inside it.
    """
    if name_within(name, base) or name_within(base, name):
        return True
    if isinstance(name, x509.DNSName) and isinstance(base, x509.DNSName):
        if name.value.startswith("*."):
            parent = name.value[2:]
            return dns_within(base.value, parent) and (
                base.value.lower().strip(".") != parent.lower())
    return False


def _same_kind(a: SubjectName, b: SubjectName) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, x509.IPAddress) and isinstance(b, x509.IPAddress):
        return _ip(a).version == _ip(b).version
    return True


def _within_permitted(name: SubjectName, policy: IssuancePolicy) -> bool:
    same = [p for p in policy.permitted if _same_kind(p, name)]
    if policy.permitted and not same:
        # NOTE: RFC 5280 4.2.1.10 constrains only the name forms
        # listed. A CA policy that lists subtrees is read as "only
        # these": a form with no permitted subtree is refused.
        return False
    return not same or any(name_within(name, p) for p in same)


def name_allowed(name: SubjectName, policy: IssuancePolicy) -> bool:
    """Inside a permitted subtree of its kind (if any) and touching no
    excluded one."""
    return _within_permitted(name, policy) and not any(
        name_touches(name, e) for e in policy.excluded)


def narrow(wider: IssuancePolicy, asked: Narrowing) -> IssuancePolicy:
    """The policy ``wider`` narrowed by ``asked``.

    :raises PolicyRejectedError: ``policyViolation`` with ``dimension``
        naming what ``asked`` would widen.
    """
    permitted = asked.permitted or wider.permitted
    for sub in asked.permitted:
        if not _within_permitted(sub, wider) or any(
                name_within(sub, e) for e in wider.excluded):
            raise _refuse("nameSubtrees",
                          f"{name_text(sub)} is outside this CA's subtrees")
    excluded = tuple(dict.fromkeys((*wider.excluded, *asked.excluded)))
    lifetime = asked.max_lifetime_seconds or wider.max_lifetime_seconds
    if lifetime > wider.max_lifetime_seconds:
        raise _refuse("maxLifetimeSeconds",
                      f"{lifetime} s exceeds {wider.max_lifetime_seconds} s")
    keys = asked.key_types or wider.key_types
    extra = [k for k in keys if k not in wider.key_types]
    if extra:
        raise _refuse("keyTypes", f"{', '.join(extra)} not allowed here")
    if wider.must_staple and not asked.must_staple:
        raise _refuse("mustStaple", "must-staple cannot be dropped")
    return IssuancePolicy(permitted=permitted, excluded=excluded,
                          max_lifetime_seconds=lifetime, key_types=keys,
                          must_staple=asked.must_staple)


def admit(policy: IssuancePolicy, request: ParsedRequest) -> Admitted:
    """Decide one issuance request.

    :raises PolicyRejectedError: ``signatureMismatch`` (CSR
        self-signature), ``weakAlgorithm`` (key type),
        ``nameConstraintViolation`` (a SAN outside the subtrees) or
        ``policyViolation`` (lifetime, purposes, unsupported names).
    """
    if not request.signature_valid:
        raise _refuse("csr", "the CSR's self-signature does not verify",
                      Reason.signatureMismatch)
    if request.key_type not in policy.key_types:
        raise _refuse("keyTypes", f"key type {request.key_type} not allowed",
                      Reason.weakAlgorithm)
    if request.unsupported_names:
        raise _refuse("nameSubtrees", "unsupported name form "
                      f"{request.unsupported_names[0]}")
    if not request.sans:
        raise _refuse("nameSubtrees", "no subject alternative names")
    for gn in request.sans:
        if not name_allowed(gn, policy):
            raise _refuse("nameSubtrees",
                          f"{name_text(gn)} is not permitted",
                          Reason.nameConstraintViolation)
    lifetime = request.lifetime_seconds or policy.max_lifetime_seconds
    if lifetime > policy.max_lifetime_seconds:
        raise _refuse("maxLifetimeSeconds",
                      f"{lifetime} s exceeds {policy.max_lifetime_seconds} s")
    purposes = request.purposes or ("tlsServerAuth",)
    unknown = [p for p in purposes if p not in PURPOSE_EKU]
    if unknown:
        raise _refuse("purposes", f"purpose {unknown[0]} is not issuable")
    ekus = tuple(dict.fromkeys(PURPOSE_EKU[p] for p in purposes))
    return Admitted(public_key=request.csr.public_key(), sans=request.sans,
                    lifetime=dt.timedelta(seconds=lifetime), ekus=ekus,
                    must_staple=policy.must_staple)


def may_revoke(policy: IssuancePolicy, sans: tuple[SubjectName, ...]) -> bool:
    """A holder may revoke what it could have issued."""
    return bool(sans) and all(name_allowed(gn, policy) for gn in sans)
