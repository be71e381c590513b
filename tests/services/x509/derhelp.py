"""Re-sign certificates and CRLs after patching their TBS bytes.

cryptography refuses to build negative serials and SHA-1 signatures
(field reports 5 and 6), so tests build with SHA-256 and a positive
serial, then patch the to-be-signed DER here and sign it again with the
raw key. A minimal DER reader/writer (X.690 definite lengths) is enough
for the outer ``SEQUENCE { tbs, algorithm, BIT STRING }`` shape that
certificates and CRLs share (RFC 5280 sections 4.1 and 5.1).
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")
SHA1_RSA = bytes.fromhex("06092a864886f70d010105")
SHA256_ECDSA = bytes.fromhex("06082a8648ce3d040302")


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _length(len(body)) + body


def read_tlv(data: bytes, at: int = 0) -> tuple[int, bytes, int]:
    """(tag, body, end offset) of the TLV starting at ``at``."""
    tag = data[at]
    first = data[at + 1]
    if first < 0x80:
        length, start = first, at + 2
    else:
        count = first & 0x7F
        length = int.from_bytes(data[at + 2:at + 2 + count], "big")
        start = at + 2 + count
    return tag, data[start:start + length], start + length


def children(body: bytes) -> list[bytes]:
    """The complete TLVs inside a constructed value's body."""
    out, at = [], 0
    while at < len(body):
        _tag, _inner, end = read_tlv(body, at)
        out.append(body[at:end])
        at = end
    return out


def integer(value: int) -> bytes:
    size = max(1, (value.bit_length() + 8) // 8)
    return tlv(0x02, value.to_bytes(size, "big", signed=True))


Signer = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def resign(der: bytes, key: Signer,
           patch_tbs: Callable[[bytes], bytes] = lambda t: t,
           algorithm: bytes | None = None,
           hash_alg: hashes.HashAlgorithm | None = None) -> bytes:
    """Patch the TBS of a certificate or CRL and sign it again.

    :param patch_tbs: maps the TBS TLV to the new TBS TLV.
    :param algorithm: replace the signature AlgorithmIdentifier's OID
        TLV (in the TBS and outside it) with this one.
    """
    _tag, body, _end = read_tlv(der)
    tbs, alg, _sig = children(body)
    if algorithm is not None:
        old_oid = children(read_tlv(alg)[1])[0]
        tbs = tbs.replace(old_oid, algorithm, 1)
        alg = alg.replace(old_oid, algorithm, 1)
    tbs = patch_tbs(tbs)
    digest = hash_alg or hashes.SHA256()
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(tbs, padding.PKCS1v15(), digest)
    else:
        signature = key.sign(tbs, ec.ECDSA(digest))
    return tlv(0x30, tbs + alg + tlv(0x03, b"\x00" + signature))


def with_serial(value: int) -> Callable[[bytes], bytes]:
    """A TBS patch that replaces a certificate's serial INTEGER."""

    def patch(tbs: bytes) -> bytes:
        _tag, body, _end = read_tlv(tbs)
        parts = children(body)
        index = 1 if parts[0][0] == 0xA0 else 0  # after [0] version
        parts[index] = integer(value)
        return tlv(0x30, b"".join(parts))

    return patch
