"""Assembling the BootManifest and its deterministic encoding.

Owns the translation from verified build inputs (root bundle, CT log
list, presets, service graph, extra anchors) into the Cap'n Proto
``BootManifest`` of ``schema/manifest.capnp`` (DESIGN.md section 3).

Encoding (decided here, relied on by :mod:`bootmanifest.sign`): the
manifest is built once, then deep-copied into a fresh message whose first
segment is large enough to hold it, and the bytes are that single segment,
unpacked, without the stream framing header. The copy lays objects out in
pre-order, drops anything orphaned while building, and depends only on
the values, so equal inputs give equal bytes. The verifier re-encodes
what it read the same way and refuses a manifest whose bytes differ
(``malformed``), so exactly one byte string stands for each manifest.
This is close to, but not exactly, Cap'n Proto's canonical form (struct
data sections are not truncated); pycapnp exposes no canonicalizer.

:func:`read_inputs` is the only function here that touches files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from bootmanifest import certdata, ctlist, graph
from bootmanifest.canonical import encode
from bootmanifest.errors import ManifestError, Reason
from services._runtime import schema

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"
SERVICES_FILE = PACKAGE_DIR / "services.json"
PRESETS_FILE = PACKAGE_DIR / "presets.json"
ROOT_SOURCE = "Mozilla NSS builtins (certdata.txt)"
_ANCHOR_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_PRESET_FIELDS = {
    "name": str,
    "minScts": int,
    "requireOcsp": bool,
    "maxChainLength": int,
    "permitNameConstraints": bool,
    "clockSkewSeconds": int,
    "staplingRequired": bool,
    "allowedAlgorithms": list,
    "allowedSignatureSchemes": list,
    "cabfRootProfile": bool,
}


@dataclass(frozen=True)
class ExtraAnchor:
    """An anchor outside the root program, granted by name."""

    name: str
    der: bytes


@dataclass(frozen=True)
class BuildInputs:
    """Everything a manifest is made from, already verified and parsed."""

    roots: certdata.RootBundleData
    roots_date: str
    ct_logs: ctlist.CtLogListData
    presets: tuple[dict[str, Any], ...]
    services: tuple[graph.Service, ...]
    extra_anchors: tuple[ExtraAnchor, ...] = ()


@dataclass(frozen=True)
class BuildParams:
    """The per-build choices."""

    version: int
    issued_at: int
    expires_at: int
    ct_enforce: bool = True
    threshold: int = 1
    signers: tuple[bytes, ...] = field(default_factory=tuple)


def extra_anchor_from_pem(name: str, pem: bytes) -> ExtraAnchor:
    """Parse ``--extra-anchor NAME=PEMFILE`` contents.

    :raises ManifestError: ``badInput`` on a bad name or certificate.
    """
    if not _ANCHOR_NAME.match(name):
        raise ManifestError(
            Reason.BAD_INPUT, f"extra anchor name {name!r}: use [a-z0-9-]"
        )
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as err:
        raise ManifestError(
            Reason.BAD_INPUT, f"extra anchor {name!r}: not a PEM certificate"
        ) from err
    return ExtraAnchor(name=name, der=cert.public_bytes(Encoding.DER))


def parse_presets(data: bytes) -> tuple[dict[str, Any], ...]:
    """Read ``presets.json`` and check each preset's fields and types."""
    doc = json.loads(data)
    presets = tuple(doc["presets"])
    names: set[str] = set()
    for preset in presets:
        name = preset.get("name", "?")
        if name in names:
            raise ManifestError(Reason.BAD_INPUT, f"preset {name!r} twice")
        names.add(name)
        for key, kind in _PRESET_FIELDS.items():
            value = preset.get(key)
            if not isinstance(value, kind) or (
                kind is int and isinstance(value, bool)
            ):
                raise ManifestError(
                    Reason.BAD_INPUT, f"preset {name!r}: field {key!r}"
                )
        extra = set(preset) - set(_PRESET_FIELDS)
        if extra:
            raise ManifestError(
                Reason.BAD_INPUT, f"preset {name!r}: unknown {sorted(extra)}"
            )
    return presets


def read_inputs(
    data_dir: Path = DATA_DIR,
    services_file: Path = SERVICES_FILE,
    presets_file: Path = PRESETS_FILE,
    extra_anchors: tuple[ExtraAnchor, ...] = (),
) -> BuildInputs:
    """Read, verify and cross-check every input file.

    :raises ManifestError: ``ctListSignature``, ``ctListMalformed``,
        ``rootsMismatch``, ``rootsMalformed``, ``graph`` or ``badInput``.
    """
    roots_dir = data_dir / "roots"
    ct_dir = data_dir / "ct"
    metadata = certdata.load_metadata(
        (roots_dir / "mozilla_roots_metadata.json").read_bytes()
    )
    source = metadata["source"]
    roots = certdata.parse(
        (roots_dir / "certdata.txt").read_text(encoding="utf-8"),
        nss_version=source["nss_builtins_version"],
        name_constraints=certdata.imposed_name_constraints(metadata),
    )
    certdata.cross_check(roots, metadata)
    if roots.certdata_sha256.hex() != source["certdata_sha256"]:
        raise ManifestError(
            Reason.ROOTS_MISMATCH, "certdata.txt SHA-256 differs from metadata"
        )
    logs = ctlist.load(
        (ct_dir / "log_list.json").read_bytes(),
        (ct_dir / "log_list.sig").read_bytes(),
        (ct_dir / "log_list_pubkey.pem").read_bytes(),
    )
    names = [a.name for a in extra_anchors]
    if len(set(names)) != len(names):
        raise ManifestError(Reason.BAD_INPUT, "extra anchor named twice")
    services = graph.validate(
        graph.parse(services_file.read_bytes()), anchor_names=names
    )
    return BuildInputs(
        roots=roots,
        roots_date=source["certdata_last_change_date"],
        ct_logs=logs,
        presets=parse_presets(presets_file.read_bytes()),
        services=services,
        extra_anchors=extra_anchors,
    )




def _fill_roots(msg: Any, inputs: BuildInputs) -> None:
    bundle = msg.init("rootBundle")
    bundle.source = ROOT_SOURCE
    bundle.nssVersion = inputs.roots.nss_version
    bundle.date = inputs.roots_date
    bundle.certdataSha256 = inputs.roots.certdata_sha256
    anchors = bundle.init("anchors", len(inputs.roots.roots))
    for out, root in zip(anchors, inputs.roots.roots, strict=True):
        out.der = root.der
        out.label = root.label
        out.sha256 = root.sha256
        out.trustServerAuth = root.trust_server_auth
        out.trustEmail = root.trust_email
        out.trustCodeSigning = root.trust_code_signing
        out.serverDistrustAfter = root.server_distrust_after
        out.emailDistrustAfter = root.email_distrust_after
        out.nameConstraintsDer = root.name_constraints_der


def _fill_ct(msg: Any, inputs: BuildInputs) -> None:
    ct = msg.init("ctLogList")
    ct.version = inputs.ct_logs.version
    ct.timestamp = inputs.ct_logs.timestamp
    ct.sha256 = inputs.ct_logs.sha256
    logs = ct.init("logs", len(inputs.ct_logs.logs))
    for out, log in zip(logs, inputs.ct_logs.logs, strict=True):
        out.logId = log.log_id
        out.key = log.key_der
        out.url = log.url
        out.mmd = log.mmd
        out.state = log.state
        out.stateSince = log.state_since
        out.temporalStart = log.temporal_start
        out.temporalEnd = log.temporal_end
        out.operator = log.operator
        out.description = log.description
        out.tiled = log.is_tiled


def _fill_services(msg: Any, inputs: BuildInputs) -> None:
    entries = msg.init("services", len(inputs.services))
    for out, svc in zip(entries, inputs.services, strict=True):
        out.name = svc.name
        out.module = svc.module
        out.exports = list(svc.exports)
        grants = out.init("grants", len(svc.grants))
        for g_out, grant in zip(grants, svc.grants, strict=True):
            g_out.name = grant.name
            g_out.provider = grant.provider
            g_out.cap = grant.cap
        out.inputs = list(svc.inputs)
        out.network = svc.has_network
        out.listen = list(svc.listen)
        out.state = svc.state
        out.devices = list(svc.devices)


def assemble(inputs: BuildInputs, params: BuildParams) -> bytes:
    """Build the manifest and return its deterministic bytes.

    Services are stored in start order (providers first).

    :raises ValueError: on parameters out of range (programmer misuse).
    """
    if params.expires_at <= params.issued_at:
        raise ValueError("expiresAt must be after issuedAt")
    if not 1 <= params.threshold <= max(1, len(params.signers)):
        raise ValueError("threshold must be 1..len(signers)")
    msg = schema.manifest().BootManifest.new_message()
    msg.version = params.version
    msg.issuedAt = params.issued_at
    msg.expiresAt = params.expires_at
    _fill_roots(msg, inputs)
    _fill_ct(msg, inputs)
    msg.ctEnforcement = "enforce" if params.ct_enforce else "reportOnly"
    presets = msg.init("presets", len(inputs.presets))
    for out, preset in zip(presets, inputs.presets, strict=True):
        for key in _PRESET_FIELDS:
            setattr(out, key, preset[key])
    _fill_services(msg, inputs)
    extras = msg.init("extraAnchors", len(inputs.extra_anchors))
    for out, anchor in zip(extras, inputs.extra_anchors, strict=True):
        out.name = anchor.name
        out.der = anchor.der
    msg.threshold = params.threshold
    msg.signers = list(params.signers)
    return encode(msg.as_reader())
