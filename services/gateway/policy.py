"""Pure decisions of the TLS gateway: may a stored chain be served again?

After a reboot the gateway finds its last chain in the certificate store
and its TLS key in its state directory. It serves that chain again,
without asking the ACME server, only if the chain is for this very key,
names the name the gateway serves, and has not expired. No I/O, no clock
reads: ``now`` is an argument.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def reuse_refusal(ders: list[bytes] | None, key: PublicKeyTypes, name: str,
                  now: dt.datetime) -> str | None:
    """Why the stored chain ``ders`` (leaf first) may not be served
    again, or ``None`` when it may."""
    if not ders:
        return "no stored chain"
    try:
        leaf = x509.load_der_x509_certificate(ders[0])
    except ValueError as err:
        return f"stored leaf does not parse: {err}"
    if _spki(leaf.public_key()) != _spki(key):
        return "stored chain is for another key"
    try:
        sans = leaf.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(
                x509.DNSName)
    except x509.ExtensionNotFound:
        sans = []
    if name not in sans:
        return f"stored chain does not name {name}"
    if now >= leaf.not_valid_after_utc:
        return f"stored chain expired at {leaf.not_valid_after_utc:%FT%TZ}"
    return None
