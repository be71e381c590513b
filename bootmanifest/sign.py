"""Signing and verifying boot manifests (Ed25519, threshold, TUF-style).

Owns the build keys and the ``SignedManifest`` envelope of
``schema/manifest.capnp`` (DESIGN.md section 3). A key id is SHA-256 of
the raw 32-byte Ed25519 public key. Signatures cover exactly the
manifest bytes produced by :func:`bootmanifest.canonical.encode`.

:func:`verify` keeps these rules, in this order:

1. the envelope parses (else ``malformed``);
2. every signature by a trusted key verifies (else ``badSignature``:
   one bad signature from a trusted key fails closed, even if others
   would reach the threshold); signatures by unknown keys are ignored;
3. distinct trusted signers reach the threshold (``unknownSigner`` when
   none is trusted, ``belowThreshold`` otherwise);
4. the manifest parses and is in the one deterministic encoding
   (``malformed``);
5. ``version`` is not below the installed one (``rollback``, as TUF's
   rollback protection);
6. ``now`` is before ``expiresAt`` (``expired``: a freeze attack) and not
   before ``issuedAt`` minus the allowed skew (``notYetValid``).

The on-disk file is the ``SignedManifest`` in the standard Cap'n Proto
stream framing (unpacked). The build key lives outside the repository,
by default at ``~/.cache/capos/keys/manifest-signing.key`` (PKCS#8 PEM,
mode 0600), and is generated on first use.
"""

from __future__ import annotations

import datetime as dt
import faulthandler
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import capnp
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from bootmanifest.canonical import encode
from bootmanifest.errors import ManifestError, Reason
from services._runtime import schema
from services._runtime.clock import epoch_seconds

DEFAULT_KEY = (
    Path.home() / ".cache" / "capos" / "keys" / "manifest-signing.key"
)
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SKEW_SECONDS = 300
#: Reading limit: the manifest is about 0.25 MB; allow 64 MB.
_TRAVERSAL_WORDS = 8 * 1024 * 1024


def raw_public(key: Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key."""
    return key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def key_id(key: Ed25519PublicKey) -> bytes:
    """SHA-256 of the raw public key."""
    return hashlib.sha256(raw_public(key)).digest()


def load_or_create_key(path: Path | None = None) -> Ed25519PrivateKey:
    """Load the signing key, generating it (0600) if it does not exist.

    :raises ValueError: if asked to create a key inside the repository,
        or the file is not an Ed25519 private key.
    """
    path = (path or DEFAULT_KEY).expanduser().resolve()
    if not path.exists():
        if path.is_relative_to(REPO_ROOT):
            raise ValueError(
                f"refusing to create a key inside the repo: {path}"
            )
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        return key
    loaded = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return loaded


def load_public(data: bytes) -> Ed25519PublicKey:
    """A public key from PEM, or from 64 hex characters (raw key).

    :raises ValueError: if neither.
    """
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        key = serialization.load_pem_public_key(text)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    try:
        raw = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ValueError("public key is neither PEM nor hex") from err
    if len(raw) != 32:
        raise ValueError("raw Ed25519 public key must be 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def sign(manifest: bytes, keys: Iterable[Ed25519PrivateKey]) -> bytes:
    """Wrap manifest bytes in a ``SignedManifest`` file, one per key."""
    signers = list(keys)
    envelope = schema.manifest().SignedManifest.new_message()
    envelope.manifest = manifest
    sigs = envelope.init("signatures", len(signers))
    for out, key in zip(sigs, signers, strict=True):
        out.keyId = key_id(key.public_key())
        out.signature = key.sign(manifest)
    single = encode(envelope.as_reader())
    return bytes(
        schema.manifest().SignedManifest.from_segments([single]).as_builder()
        .to_bytes()
    )


def read_envelope(
    signed: bytes,
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Parse a ``SignedManifest`` file. :raises ManifestError: malformed."""
    try:
        with schema.manifest().SignedManifest.from_bytes(
            signed, traversal_limit_in_words=_TRAVERSAL_WORDS
        ) as envelope:
            # Copy out inside the block: the reader dies with it.
            manifest = bytes(envelope.manifest)
            sigs = [
                (bytes(s.keyId), bytes(s.signature))
                for s in envelope.signatures
            ]
    except (capnp.KjException, ValueError, TypeError) as err:
        raise ManifestError(Reason.MALFORMED, "not a SignedManifest") from err
    return manifest, sigs


def check_untrusted(manifest: bytes) -> None:
    """Refuse manifest bytes whose pointers would abort the process.

    capnp's C++ raises on an out-of-bounds pointer, but the calls that
    walk every pointer of a message (``total_size``, copying it into a
    builder) cannot hand that to Python, and the process aborts. Bytes
    no signature vouches for yet (``inspect``, a cached build output)
    are walked first in a forked child: if it dies, they are malformed.
    :func:`verify` needs none of this: the signature is checked first.

    :raises ManifestError: ``malformed``.
    """
    pid = os.fork()
    if pid == 0:  # the child: walk, and say how it went by exit status
        status = 1
        try:
            # capnp's abort message is the parent's to put in words (and
            # a faulthandler the parent enabled would add a traceback).
            faulthandler.disable()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            read_manifest(manifest)
            status = 0
        except BaseException:
            pass
        os._exit(status)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise ManifestError(
            Reason.MALFORMED,
            "not a BootManifest (a pointer out of bounds: capnp aborted "
            f"on it, signal {os.WTERMSIG(status)})")


def read_manifest(manifest: bytes) -> Any:
    """Parse manifest bytes and insist on the deterministic encoding.

    :raises ManifestError: ``malformed``.
    """
    try:
        reader = schema.manifest().BootManifest.from_segments(
            [manifest], traversal_limit_in_words=_TRAVERSAL_WORDS
        )
        canonical = encode(reader)
    except (capnp.KjException, ValueError, TypeError) as err:
        raise ManifestError(Reason.MALFORMED, "not a BootManifest") from err
    if canonical != manifest:
        raise ManifestError(
            Reason.MALFORMED, "manifest is not in the deterministic encoding"
        )
    return reader


def verify(
    signed: bytes,
    trusted_pubkeys: Iterable[Ed25519PublicKey],
    threshold: int,
    installed_version: int,
    now: dt.datetime,
    skew_seconds: int = DEFAULT_SKEW_SECONDS,
) -> Any:
    """Check a signed manifest; return the ``BootManifest`` reader.

    :param trusted_pubkeys: the keys baked into the image.
    :param threshold: distinct trusted signatures required (>= 1).
    :param installed_version: the version installed now (0 if none).
    :param now: aware UTC time of the check.
    :raises ManifestError: ``malformed``, ``badSignature``,
        ``unknownSigner``, ``belowThreshold``, ``rollback``, ``expired``
        or ``notYetValid``.
    :raises ValueError: threshold < 1 or a naive ``now``.
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    at = epoch_seconds(now)
    trusted = {key_id(k): k for k in trusted_pubkeys}
    manifest, sigs = read_envelope(signed)
    good: set[bytes] = set()
    for kid, signature in sigs:
        key = trusted.get(kid)
        if key is None:
            continue
        try:
            key.verify(signature, manifest)
        except InvalidSignature as err:
            raise ManifestError(
                Reason.BAD_SIGNATURE,
                f"signature by {kid.hex()[:16]} does not verify",
                key_id=kid.hex(),
            ) from err
        good.add(kid)
    if not good:
        raise ManifestError(
            Reason.UNKNOWN_SIGNER,
            "no signature by a trusted key",
            key_ids=[kid.hex() for kid, _ in sigs],
        )
    if len(good) < threshold:
        raise ManifestError(
            Reason.BELOW_THRESHOLD,
            f"{len(good)} trusted signature(s), {threshold} required",
            have=len(good),
            need=threshold,
        )
    reader = read_manifest(manifest)
    if reader.version < installed_version:
        raise ManifestError(
            Reason.ROLLBACK,
            f"version {reader.version} below installed {installed_version}",
            version=reader.version,
            installed=installed_version,
        )
    if at >= reader.expiresAt:
        raise ManifestError(
            Reason.EXPIRED,
            f"expired at {reader.expiresAt}, now {at}",
            expires_at=reader.expiresAt,
            now=at,
        )
    if reader.issuedAt > at + skew_seconds:
        raise ManifestError(
            Reason.NOT_YET_VALID,
            f"issued at {reader.issuedAt}, now {at}",
            issued_at=reader.issuedAt,
            now=at,
        )
    return reader
