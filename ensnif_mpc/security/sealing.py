"""Seal a result to an analyst's certificate key (ECIES: ECDH P-256, HKDF-SHA256, AES-GCM).

The coordinator stores and forwards sealed blobs it cannot open. The job id is
bound as associated data, so a blob cannot be replayed as another job's result.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ensnif_mpc.errors import CryptoError
from ensnif_mpc.security.pki import load_private_key, parse_cert

_VERSION = b"\x01"
_INFO = b"ensnif result seal v1"
_POINT_LEN = 65  # uncompressed P-256 point


def _kdf(shared: bytes, eph_point: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_point, info=_INFO).derive(shared)


def seal(recipient_cert_pem: str | bytes, plaintext: bytes, associated: bytes) -> bytes:
    public = parse_cert(recipient_cert_pem).public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise CryptoError("results can only be sealed to an EC certificate key")
    eph = ec.generate_private_key(public.curve)
    point = eph.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    key = _kdf(eph.exchange(ec.ECDH(), public), point)
    nonce = os.urandom(12)
    return _VERSION + point + nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def unseal(private_key_pem: bytes, blob: bytes, associated: bytes) -> bytes:
    if len(blob) < 1 + _POINT_LEN + 12 + 16 or blob[:1] != _VERSION:
        raise CryptoError("not a sealed Ensnif result")
    point, nonce, body = (
        blob[1 : 1 + _POINT_LEN],
        blob[1 + _POINT_LEN : 13 + _POINT_LEN],
        blob[13 + _POINT_LEN :],
    )
    key_obj = load_private_key(private_key_pem)
    try:
        eph_pub = ec.EllipticCurvePublicKey.from_encoded_point(key_obj.curve, point)
        key = _kdf(key_obj.exchange(ec.ECDH(), eph_pub), point)
        return AESGCM(key).decrypt(nonce, body, associated)
    except Exception as exc:  # InvalidTag, ValueError: wrong key or tampered blob
        raise CryptoError(
            "cannot open the result: it was sealed to another key or was altered"
        ) from exc
