"""Command line for building, inspecting and verifying boot manifests.

Exit codes, for every subcommand: 0 success (``verify``: the manifest is
valid), 1 failure (``verify``: invalid, with the reason; ``build``: an
input was refused), 2 usage error (bad arguments, unreadable file or
key, malformed input file, out-of-range number; ``verify`` and
``inspect``: a manifest that does not parse, ``malformed``), printed as
one line ``python -m bootmanifest <command>: error: <reason>`` (``verify
--json`` also prints its result object first). Output piped into
a reader that goes away (``| head``) ends the command quietly. The real
clock is read only here, through ``SystemClock``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import capnp
from cryptography.hazmat.primitives import serialization

from bootmanifest import build, sign
from bootmanifest.errors import ManifestError, Reason
from services._runtime.clock import SystemClock, epoch_seconds

PROG = "python -m bootmanifest"
EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
EXIT_PIPE = 141  # 128 + SIGPIPE, as a shell reports it
#: Ranges of the schema fields the numbers land in (manifest.capnp).
UINT64_MAX = 2**64 - 1
INT64_MAX = 2**63 - 1
EXIT_HELP = """\
exit codes:
  0  success (verify: manifest valid)
  1  refused (verify: invalid, reason printed; build: an input file's
     contents refused, e.g. a graph error or a bad extra anchor)
  2  usage error (bad arguments, unreadable or malformed file or key,
     out-of-range number; inspect and verify: a file that does not
     parse as a signed manifest, reason malformed)
"""


class UsageError(Exception):
    """Bad arguments or unreadable files: exit 2."""


def _int_in(low: int, high: int) -> Any:
    """An argparse ``type``: an integer in ``low..high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{value} is out of range {low}..{high}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    top = argparse.ArgumentParser(
        prog=PROG,
        description="Build, sign, inspect and verify capOS boot manifests.",
        epilog=EXIT_HELP,
        formatter_class=fmt,
    )
    sub = top.add_subparsers(dest="command", required=True)

    b = sub.add_parser(
        "build",
        help="build and sign a manifest",
        description="Build a BootManifest from bootmanifest/data, "
        "services.json and presets.json, and sign it. Issue time is "
        "SOURCE_DATE_EPOCH if set, else now.",
        epilog=EXIT_HELP,
        formatter_class=fmt,
    )
    b.add_argument("--out", type=Path, default=Path("build/manifest.bin"),
                   help="output file, in an existing directory (default: "
                   "build/manifest.bin)")
    b.add_argument("--key", type=Path, action="append",
                   help="Ed25519 PKCS#8 PEM signing key, which must exist; "
                   "repeat for several signers (default: "
                   f"{sign.DEFAULT_KEY}, created if absent)")
    b.add_argument("--version", type=_int_in(0, UINT64_MAX),
                   dest="manifest_version",
                   help="manifest version (default: the issue time in "
                   "epoch seconds, so later builds are higher)")
    b.add_argument("--valid-days", type=_int_in(1, INT64_MAX // 86400),
                   default=90,
                   help="days until expiry (default: 90)")
    b.add_argument("--threshold", type=_int_in(1, 255), default=1,
                   help="signatures a successor needs (default: 1)")
    b.add_argument("--extra-anchor", action="append", default=[],
                   metavar="NAME=PEMFILE",
                   help="extra anchor granted to services whose inputs "
                   "name anchor:NAME (e.g. acme-test-root=pebble.minica.pem)")
    b.add_argument("--ct-mode", choices=("enforce", "report-only"),
                   default="enforce", help="CT enforcement (default: enforce)")
    b.add_argument("--services", type=Path, default=build.SERVICES_FILE,
                   help="service graph JSON (default: %(default)s)")
    b.add_argument("--presets", type=Path, default=build.PRESETS_FILE,
                   help="policy presets JSON (default: %(default)s)")
    b.add_argument("--data-dir", type=Path, default=build.DATA_DIR,
                   help="roots/ and ct/ inputs (default: %(default)s)")

    i = sub.add_parser("inspect", help="summarize a signed manifest",
                       description="Show a signed manifest's contents "
                       "without verifying it.", epilog=EXIT_HELP,
                       formatter_class=fmt)
    i.add_argument("file", type=Path)
    i.add_argument("--json", action="store_true", help="JSON output")

    v = sub.add_parser("verify", help="verify a signed manifest",
                       description="Verify signature, threshold, version "
                       "and expiry at the current time.", epilog=EXIT_HELP,
                       formatter_class=fmt)
    v.add_argument("file", type=Path)
    v.add_argument("--pubkey", type=Path, action="append", required=True,
                   help="trusted public key file (PEM, or 64 hex chars); "
                   "repeatable")
    v.add_argument("--threshold", type=_int_in(1, 255), default=1,
                   help="trusted signatures required (default: 1)")
    v.add_argument("--installed-version", type=_int_in(0, UINT64_MAX),
                   default=0,
                   help="version installed now; lower is rollback")
    v.add_argument("--json", action="store_true", help="JSON output")

    p = sub.add_parser("pubkey", help="print the verifying public key",
                       description="Export the public half of the signing "
                       "key.", epilog=EXIT_HELP, formatter_class=fmt)
    p.add_argument("--key", type=Path,
                   help=f"signing key (default: {sign.DEFAULT_KEY})")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--pem", action="store_true",
                      help="PEM SubjectPublicKeyInfo instead of raw hex")
    form.add_argument("--key-id", action="store_true",
                      help="the key id instead (SHA-256 of the raw key, "
                      "hex): what inspect's 'signed by' and 'threshold' "
                      "lines name")
    return top


def _issue_time() -> int:
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env is not None:
        if not env.isdigit() or int(env) > INT64_MAX:
            raise UsageError("SOURCE_DATE_EPOCH must be an integer "
                             f"0..{INT64_MAX}")
        return int(env)
    return epoch_seconds(SystemClock().now())


def _load_key(path: Path | None, create: bool = False) -> Any:
    """The signing key at ``path`` (``--key``), or the default one.

    Only the default key is made on first use, and only when ``create``
    (``build``): a ``--key`` that does not exist is a usage error, never
    a new key (and directories) made where a mistyped path points.
    """
    where = (path or sign.DEFAULT_KEY).expanduser()
    if path is not None and not where.exists():
        raise UsageError(
            f"key {where}: no such key (only the default key, "
            f"{sign.DEFAULT_KEY}, is made on first use, by `build` "
            "without --key)")
    if not create and not where.exists():
        raise UsageError(f"key {where}: no such key (`build` makes one "
                         "on first use)")
    try:
        return sign.load_or_create_key(path)
    except OSError as err:
        raise UsageError(
            f"key {path or sign.DEFAULT_KEY}: {err.strerror}") from err
    except ValueError as err:
        raise UsageError(f"key {path or sign.DEFAULT_KEY}: {err}") from err


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from err


def _check_json(path: Path, flag: str, key: str) -> None:
    """Refuse an input file that is not ``{key: [{...}, ...]}`` JSON.

    ``build.read_inputs`` parses it again and checks the contents; this
    only makes a broken file a usage error that names the flag.
    """
    try:
        doc = json.loads(_read(path))
    except ValueError as err:
        raise UsageError(f"{flag} {path}: not JSON: {err}") from err
    items = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(items, list) or not all(
            isinstance(item, dict) for item in items):
        raise UsageError(
            f'{flag} {path}: expected {{"{key}": [{{...}}, ...]}}')


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise UsageError(f"--out {out}: is a directory")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: directory {out.parent} does not "
                         "exist")


def _read_inputs(args: argparse.Namespace,
                 extras: tuple[build.ExtraAnchor, ...]) -> build.BuildInputs:
    """``build.read_inputs``, with unreadable or malformed files as usage
    errors and a missing extra anchor named by the flag that gives it."""
    if not args.data_dir.is_dir():
        raise UsageError(f"--data-dir {args.data_dir}: not a directory")
    _check_json(args.services, "--services", "services")
    _check_json(args.presets, "--presets", "presets")
    try:
        return build.read_inputs(
            args.data_dir, args.services, args.presets, extras)
    except OSError as err:
        raise UsageError(
            f"cannot read {err.filename}: {err.strerror}") from err
    except json.JSONDecodeError as err:
        raise UsageError(
            f"--data-dir {args.data_dir}: malformed JSON: {err}") from err
    except ManifestError as err:
        section = str(err.context.get("input", ""))
        if err.reason == Reason.GRAPH and section.startswith("anchor:"):
            name = section.removeprefix("anchor:")
            raise ManifestError(
                err.reason,
                f"{err.detail} (give --extra-anchor {name}=PEMFILE)",
                **err.context) from err
        raise


def cmd_build(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    extras = []
    for spec in args.extra_anchor:
        name, sep, pem_file = spec.partition("=")
        if not sep:
            raise UsageError(f"--extra-anchor {spec!r}: expected NAME=PEMFILE")
        extras.append(build.extra_anchor_from_pem(name, _read(Path(pem_file))))
    _check_out(args.out)
    keys = [_load_key(k, create=True) for k in (args.key or [None])]
    ids = tuple(sign.key_id(k.public_key()) for k in keys)
    if len(set(ids)) != len(ids):
        raise UsageError("the same key given twice")
    if not 1 <= args.threshold <= len(keys):
        raise UsageError("--threshold must be 1..number of --key")
    inputs = _read_inputs(args, tuple(extras))
    issued = _issue_time()
    if issued + args.valid_days * 86400 > INT64_MAX:
        raise UsageError(f"--valid-days {args.valid_days}: the expiry "
                         "does not fit a 64-bit time")
    params = build.BuildParams(
        version=args.manifest_version
        if args.manifest_version is not None
        else issued,
        issued_at=issued,
        expires_at=issued + args.valid_days * 86400,
        ct_enforce=args.ct_mode == "enforce",
        threshold=args.threshold,
        signers=ids,
    )
    signed = sign.sign(build.assemble(inputs, params), keys)
    try:
        args.out.write_bytes(signed)
    except OSError as err:
        raise UsageError(f"cannot write {args.out}: {err.strerror}") from err
    elapsed = time.perf_counter() - started
    print(
        f"wrote {args.out} ({len(signed)} bytes, version {params.version}, "
        f"{len(inputs.roots.roots)} anchors, {len(inputs.ct_logs.logs)} CT "
        f"logs, {len(keys)} signature(s)) in {elapsed:.2f}s"
    )
    return EXIT_OK


def summary(signed: bytes) -> dict[str, Any]:
    """What ``inspect`` shows (without verifying anything)."""
    manifest, sigs = sign.read_envelope(signed)
    sign.check_untrusted(manifest)
    r = sign.read_manifest(manifest)
    try:
        return _summary(manifest, sigs, r)
    except (capnp.KjException, RuntimeError, ValueError, TypeError) as err:
        # A field's pointer out of bounds, or a text that is not UTF-8:
        # only a damaged or forged file gets here (a signed one is
        # checked on parse), and it is not a manifest.
        raise ManifestError(
            Reason.MALFORMED,
            f"not a BootManifest ({str(err).splitlines()[0][:120]})"
        ) from err


def _enumerant(value: Any) -> str:
    """An enum field's name, or ``unknown(<n>)`` for a number the
    schema does not name (a newer writer, or a damaged file)."""
    try:
        return str(value)
    except RuntimeError:  # pycapnp: "Member was null"
        return f"unknown({value.raw})"


def _summary(manifest: bytes, sigs: list[tuple[bytes, bytes]],
             r: Any) -> dict[str, Any]:
    anchors = r.rootBundle.anchors
    return {
        "version": r.version,
        "issuedAt": r.issuedAt,
        "expiresAt": r.expiresAt,
        "manifestSha256": hashlib.sha256(manifest).hexdigest(),
        "manifestBytes": len(manifest),
        "rootBundle": {
            "source": r.rootBundle.source,
            "nssVersion": r.rootBundle.nssVersion,
            "date": r.rootBundle.date,
            "anchors": len(anchors),
            "tlsAnchors": sum(a.trustServerAuth for a in anchors),
            "emailAnchors": sum(a.trustEmail for a in anchors),
        },
        "ctLogList": {
            "version": r.ctLogList.version,
            "timestamp": r.ctLogList.timestamp,
            "logs": len(r.ctLogList.logs),
            "tiled": sum(log.tiled for log in r.ctLogList.logs),
        },
        "ctEnforcement": _enumerant(r.ctEnforcement),
        "presets": [p.name for p in r.presets],
        "extraAnchors": [a.name for a in r.extraAnchors],
        "threshold": r.threshold,
        "trustedSigners": [bytes(s).hex() for s in r.signers],
        "signatures": [kid.hex() for kid, _ in sigs],
        "services": [
            {
                "name": s.name,
                "module": s.module,
                "exports": list(s.exports),
                "grants": [f"{g.name}={g.provider}.{g.cap}" for g in s.grants],
                "inputs": list(s.inputs),
                "network": s.network,
                "listen": list(s.listen),
            }
            for s in r.services
        ],
    }


def cmd_inspect(args: argparse.Namespace) -> int:
    try:
        info = summary(_read(args.file))
    except ManifestError as err:  # not a manifest at all: bad input
        raise UsageError(f"{args.file}: {err.reason}: {err.detail}") from err
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    rb, ct = info["rootBundle"], info["ctLogList"]
    print(f"version      {info['version']}")
    print(f"issuedAt     {info['issuedAt']}")
    print(f"expiresAt    {info['expiresAt']}")
    print(f"sha256       {info['manifestSha256']} ({info['manifestBytes']} B)")
    print(f"anchors      {rb['anchors']} ({rb['tlsAnchors']} TLS, "
          f"{rb['emailAnchors']} email), NSS {rb['nssVersion']}")
    print(f"CT logs      {ct['logs']} ({ct['tiled']} tiled), list "
          f"{ct['version']} of {ct['timestamp']}, {info['ctEnforcement']}")
    print(f"presets      {', '.join(info['presets'])}")
    print(f"extra        {', '.join(info['extraAnchors']) or '-'}")
    # Key ids (SHA-256 of the raw key; pubkey --key-id prints one).
    print(f"signed by    key id {', '.join(info['signatures'])}")
    print(f"threshold    {info['threshold']} of key id "
          f"{', '.join(info['trustedSigners'])}")
    for s in info["services"]:
        print(f"service      {s['name']} ({s['module']}) grants "
              f"{', '.join(s['grants']) or '-'}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        keys = [sign.load_public(_read(p)) for p in args.pubkey]
    except ValueError as err:
        raise UsageError(f"--pubkey: {err}") from err
    signed = _read(args.file)
    try:
        reader = sign.verify(
            signed, keys, args.threshold, args.installed_version,
            SystemClock().now(),
        )
    except ManifestError as err:
        if args.json:
            print(json.dumps({"valid": False, "reason": str(err.reason),
                              "detail": err.detail}))
        if err.reason == Reason.MALFORMED:
            # Not a manifest at all (or not one the deterministic
            # encoding makes): bad input, exit 2, as ``inspect``.
            raise UsageError(
                f"{args.file}: {err.reason}: {err.detail}") from err
        if not args.json:
            print(f"INVALID {err.reason}: {err.detail}")
        return EXIT_INVALID
    if args.json:
        print(json.dumps({"valid": True, "version": reader.version,
                          "expiresAt": reader.expiresAt}))
    else:
        print(f"VALID version {reader.version}, expires {reader.expiresAt}")
    return EXIT_OK


def cmd_pubkey(args: argparse.Namespace) -> int:
    public = _load_key(args.key).public_key()
    if args.pem:
        sys.stdout.write(public.public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        ).decode("ascii"))
    elif args.key_id:
        print(sign.key_id(public).hex())
    else:
        print(sign.raw_public(public).hex())
    return EXIT_OK


COMMANDS = {"build": cmd_build, "inspect": cmd_inspect,
            "verify": cmd_verify, "pubkey": cmd_pubkey}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:
        return int(done.code or 0)
    prog = f"{PROG} {args.command}"
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()
    except BrokenPipeError:
        # stdout's reader went away (``| head``): no traceback, and no
        # second failure when Python flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_PIPE
    except UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except ManifestError as err:
        print(f"{prog}: error: {err.reason}: {err.detail}", file=sys.stderr)
        return EXIT_INVALID
    return code
