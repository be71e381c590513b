"""The gateway's keys in its own state directory.

Each key is kept as unencrypted PKCS#8 PEM (mode 0600, in a 0700
directory that only the gateway's uid can open), written to a temporary
file, ``fsync``\\ed, renamed over the old one and the directory
``fsync``\\ed, so a power cut leaves the old key or the new one:

- ``tls-key.pem``, the TLS key: keeping it lets the gateway serve its
  stored chain after a reboot without a new issuance;
- ``acme-account-key.pem``, the ACME account key: keeping it lets the
  gateway go on with the same account after a reboot instead of
  registering a new one each boot (RFC 8555 section 7.3.1: a
  ``newAccount`` with a key that already has an account returns that
  account), which is what ACME servers' new-account rate limits expect.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEY_FILE = "tls-key.pem"
ACCOUNT_KEY_FILE = "acme-account-key.pem"


def _write(directory: Path, key: ec.EllipticCurvePrivateKey,
           name: str) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = directory / f".{name}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(pem)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, directory / name)
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load_or_create(directory: Path | None, name: str = KEY_FILE,
                   ) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """The key kept as ``name``, or a new P-256 key (kept when there is a
    directory).

    :returns: the key and what happened: ``loaded``, ``created``,
        ``ephemeral`` (no directory) or ``replaced: <why>`` (the file
        was unreadable).
    """
    if directory is None:
        return ec.generate_private_key(ec.SECP256R1()), "ephemeral"
    path = directory / name
    how = "created"
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), None)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key, "loaded"
        how = "replaced: kept key is not an EC key"
    except FileNotFoundError:
        pass
    except (ValueError, TypeError) as err:
        how = f"replaced: kept key does not load: {err}"
    key = ec.generate_private_key(ec.SECP256R1())
    _write(directory, key, name)
    return key, how


def replace(directory: Path | None, name: str,
            ) -> ec.EllipticCurvePrivateKey:
    """A new P-256 key kept as ``name`` over the old one (the same
    write-then-rename), for a key that must not be used again."""
    key = ec.generate_private_key(ec.SECP256R1())
    if directory is not None:
        _write(directory, key, name)
    return key
