"""Verify a certificate chain on the host, as ``openssl verify`` does,
through the project's own ``CertVerifier`` capability and policies.

``python -m tools.verify CHAIN [--untrusted FILE]... [--anchor ROOT]...
[--mozilla] [--hostname NAME|IP] [--policy PRESET] [--purpose PURPOSE]
[--at ISO8601|@EPOCH] [--staple OCSP.der] [--json]``

CHAIN is PEM (leaf first, then intermediates) or DER (one certificate);
``--untrusted`` adds intermediates from more files, as in
``openssl verify -untrusted``. Trust is exactly the anchors given with
``--anchor`` (trusted for every purpose) and/or, with ``--mozilla``, the
roots of the Mozilla bundle shipped in ``bootmanifest/data``, each with
its trust bits and distrust-after dates. Nothing else is trusted: no
system store. The verdict names the FailureReason and its detail; with
``--json`` one object on stdout carries the same, plus the verified path.
``--staple`` hands the verifier a DER OCSP response (as ``openssl ocsp
-respout`` writes, or a server stapled) through ``verifyChainWithStaple``;
the host verifier has no responder capability, so without a staple or a
short-lived leaf revocation soft-fails (``ocspStatus
responderUnreachable``), or fails ``ocspUnavailable`` under a preset with
``requireOcsp``.

Exit status: 0 valid; 1 invalid (the reason is printed); 2 usage or
input error (bad arguments, unreadable or unparsable input, no anchors,
no ``--hostname`` for ``tlsServerAuth``), printed as one line
``python -m tools.verify: error: <detail>`` on stderr and, with
``--json``, as ``{"outcome": "error", "reason": ..., "detail": ...}`` on
stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from services._runtime import loop
from services._runtime.audit import MemoryAuditSink
from services._runtime.clock import SystemClock
from services._runtime.schema import pki
from services.x509.chain_impl import CertificateChainImpl
from services.x509.errors import CertificateParseError
from services.x509.model import parse_certificate
from services.x509.policy import PRESETS
from services.x509.trust import Anchor, TrustStoreCore, distrust
from services.x509.truststore_impl import TrustStoreImpl
from services.x509.verifier_impl import CertVerifierImpl, fetch_ders
from tools._cli import pipe_safe

EXIT_VALID, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
PURPOSES = [e for e in pki().CertPurpose.schema.enumerants]
#: A reference identifier (RFC 6125 section 6.4.1): LDH labels, no
#: wildcard, at most 253 octets.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"(?=.{{1,253}}\.?$){_LABEL}(?:\.{_LABEL})*\.?")


PROG = "python -m tools.verify"


class UsageError(Exception):
    """Bad arguments or input (exit 2); ``reason`` is the JSON name:
    ``usage``, ``unreadableInput``, ``malformedInput`` or ``noAnchors``.
    """

    def __init__(self, detail: str, reason: str = "usage") -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Parser(argparse.ArgumentParser):
    """Argument errors raise :class:`UsageError`, so ``--json`` can
    report them too."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(message)


def read_certs(path: Path) -> list[bytes]:
    """DER of every certificate in a PEM or DER file."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}",
                         "unreadableInput") from err
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError as err:
        raise UsageError(f"{path}: not a certificate: {err}",
                         "malformedInput") from err
    return [c.public_bytes(serialization.Encoding.DER) for c in certs]


def mozilla_anchors() -> list[Anchor]:
    """The roots of the bundled Mozilla store, with their metadata."""
    from bootmanifest import build, certdata

    text = (build.DATA_DIR / "roots" / "certdata.txt").read_text()
    anchors = []
    for root in certdata.parse(text).roots:
        purposes = {p for p, bit in (
            ("tlsServerAuth", root.trust_server_auth),
            ("emailSmime", root.trust_email),
            ("codeSigning", root.trust_code_signing)) if bit}
        if not purposes:
            continue
        try:
            cert = parse_certificate(root.der)
        except CertificateParseError:
            continue
        anchors.append(Anchor(cert, root.label, frozenset(purposes),
                              distrust({
                                  "tlsServerAuth": _when(
                                      root.server_distrust_after),
                                  "emailSmime": _when(
                                      root.email_distrust_after),
                              })))
    return anchors


def _when(epoch: int) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(epoch, dt.UTC) if epoch else None


def parse_time(text: str) -> dt.datetime:
    """``@EPOCH`` or ISO 8601 (naive means UTC)."""
    if text.startswith("@"):
        try:
            at = dt.datetime.fromtimestamp(int(text[1:]), dt.UTC)
        except (ValueError, OverflowError, OSError) as err:
            raise UsageError(f"--at {text!r}: not epoch seconds") from err
    else:
        try:
            at = dt.datetime.fromisoformat(text)
        except ValueError as err:
            raise UsageError(f"--at {text!r}: not ISO 8601") from err
        at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    if int(at.timestamp()) == 0:
        # The CertVerifier reads atEpochSeconds = 0 as "now" (schema).
        raise UsageError(f"--at {text!r}: the epoch's first second means "
                         "'now' to the CertVerifier; leave --at out for "
                         "now, or give another instant")
    return at


def read_staple(path: Path) -> bytes:
    """A DER OCSP response file, else UsageError."""
    try:
        der = path.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}",
                         "unreadableInput") from err
    if not der:
        raise UsageError(f"{path}: empty OCSP response", "malformedInput")
    try:
        ocsp.load_der_ocsp_response(der)
    except ValueError as err:
        # A response that parses but does not hold for the chain is the
        # verifier's to judge (a revocation verdict); one that does not
        # parse is not a staple at all.
        raise UsageError(f"{path}: not a DER OCSP response "
                         f"({str(err)[:60]})",
                         "malformedInput") from err
    return der


def check_hostname(name: str) -> str:
    """``name`` if it is an IP address or a DNS name, else UsageError."""
    if not name:
        return name
    try:
        ipaddress.ip_address(name)
        return name
    except ValueError:
        pass
    if not _DNS_NAME.fullmatch(name):
        raise UsageError(
            f"--hostname {name!r}: not a DNS name or IP address")
    return name


async def verify(chain: list[bytes], anchors: list[Anchor],
                 policy: str, purpose: str, at: dt.datetime,
                 hostname: str, staple: bytes | None = None) -> dict[str, Any]:
    audit = MemoryAuditSink()
    verifier = pki().CertVerifier._new_client(CertVerifierImpl(
        PRESETS[policy], audit=audit, clock=SystemClock(), service="host",
        name="capos-verify", policy_name=policy))
    trust = pki().TrustStore._new_client(
        TrustStoreImpl(TrustStoreCore(tuple(anchors))))
    chain_cap = pki().CertificateChain._new_client(
        CertificateChainImpl([parse_certificate(d) for d in chain]))
    if staple is None:
        outcome = (await verifier.verifyChain(
            chain=chain_cap, trust=trust, purpose=purpose,
            atEpochSeconds=int(at.timestamp()), hostname=hostname,
        )).outcome
    else:
        outcome = (await verifier.verifyChainWithStaple(
            chain=chain_cap, trust=trust, purpose=purpose,
            atEpochSeconds=int(at.timestamp()), hostname=hostname,
            staple=staple,
        )).outcome
    leaf = parse_certificate(chain[0])
    result: dict[str, Any] = {
        "leaf": leaf.describe(),
        "policy": policy,
        "purpose": purpose,
        "at": at.isoformat(),
        "hostname": hostname,
    }
    if outcome.which() == "valid":
        anchor_der = bytes((await outcome.valid.anchor.der()).encoded)
        path = [parse_certificate(d).describe()
                for d in await fetch_ders(outcome.valid.path)]
        result.update(
            outcome="valid",
            anchor=parse_certificate(anchor_der).describe(),
            path=path,
            notAfter=dt.datetime.fromtimestamp(
                outcome.valid.notAfter, dt.UTC).isoformat(),
            ocspStatus=str(outcome.valid.ocspStatus),
            revocation=outcome.valid.revocation,
            sctCount=outcome.valid.sctCount,
        )
    else:
        result.update(outcome="invalid",
                      reason=str(outcome.invalid.reason),
                      detail=outcome.invalid.detail)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(
        prog=PROG,
        description="Verify a chain with the project's CertVerifier. "
        "Exit status: 0 valid, 1 invalid, 2 usage error.",
    )
    p.add_argument("chain", type=Path, help="PEM chain (leaf first) or DER")
    p.add_argument("--untrusted", type=Path, action="append", default=[],
                   help="more intermediates (PEM or DER); repeatable")
    p.add_argument("--anchor", type=Path, action="append", default=[],
                   help="trust anchor file (PEM or DER); repeatable")
    p.add_argument("--mozilla", action="store_true",
                   help="trust the Mozilla bundle's roots, with their "
                   "trust bits and distrust-after dates")
    p.add_argument("--hostname", default="",
                   help="DNS name or IP address the leaf must match "
                   "(required for tlsServerAuth)")
    p.add_argument("--policy", default="webPkiLenient",
                   choices=sorted(PRESETS), help="policy preset")
    p.add_argument("--purpose", default="tlsServerAuth",
                   choices=PURPOSES, help="certificate purpose")
    p.add_argument("--at", default=None,
                   help="verification time: ISO 8601 (UTC if no offset) "
                   "or @EPOCH (default: now)")
    p.add_argument("--staple", type=Path, default=None,
                   help="DER OCSP response for the leaf, as stapled")
    p.add_argument("--json", action="store_true",
                   help="one JSON object on stdout, also for a usage "
                   "error (outcome \"error\")")
    return p.parse_args(argv)


def _refuse(err: UsageError, as_json: bool) -> int:
    print(f"{PROG}: error: {err.detail}", file=sys.stderr)
    if as_json:
        print(json.dumps({"outcome": "error", "reason": err.reason,
                          "detail": err.detail}, indent=2, sort_keys=True))
    return EXIT_USAGE


@pipe_safe
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_VALID
    except UsageError as err:
        # argparse accepts any unambiguous prefix of --json.
        return _refuse(err, any(len(a) > 2 and "--json".startswith(a)
                                for a in argv))
    try:
        chain = read_certs(args.chain)
        for path in args.untrusted:
            chain += read_certs(path)
        anchors = [
            Anchor(parse_certificate(d), str(path))
            for path in args.anchor for d in read_certs(path)
        ]
        if args.mozilla:
            anchors += mozilla_anchors()
        if not anchors:
            raise UsageError("no trust anchors: give --anchor or --mozilla",
                             "noAnchors")
        for der in chain:
            parse_certificate(der)
        at = parse_time(args.at) if args.at else SystemClock().now()
        hostname = check_hostname(args.hostname)
        if not hostname and args.purpose == "tlsServerAuth":
            raise UsageError("--hostname is required for --purpose "
                             "tlsServerAuth (the default purpose): give "
                             "the name or IP address the leaf must match")
        staple = read_staple(args.staple) if args.staple else None
    except CertificateParseError as err:
        return _refuse(UsageError(str(err), "malformedInput"), args.json)
    except UsageError as err:
        return _refuse(err, args.json)
    result = loop.run(verify(
        chain, anchors, args.policy, args.purpose, at, hostname, staple))
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    elif result["outcome"] == "valid":
        print(f"OK: {result['leaf']}")
        print(f"  anchor: {result['anchor']}")
        print(f"  path: {len(result['path'])} certificates, valid until "
              f"{result['notAfter']}")
        print(f"  revocation: ocspStatus {result['ocspStatus']}, "
              f"{result['revocation']}")
        print(f"  policy {args.policy}, purpose {args.purpose}, "
              f"at {result['at']}")
    else:
        print(f"FAILED ({result['reason']}): {result['detail']}")
        print(f"  leaf: {result['leaf']}")
        print(f"  policy {args.policy}, purpose {args.purpose}, "
              f"at {result['at']}")
    return EXIT_VALID if result["outcome"] == "valid" else EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
