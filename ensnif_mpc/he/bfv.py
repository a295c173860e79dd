"""BFV under the outsourcing owner's own key: parameters, keys, and flooding before decryption.

Why BFV: every value an outsourced dataset contributes to a job is converted into secret
shares by a decryption at its owner (``ensnif_mpc/he/outsource.py``). BFV decrypts to an
exact integer modulo the plain modulus ``t``, so a masked value + mask is exact; CKKS
decrypts to an approximation whose error carries the evaluator's noise, a decryption
oracle its authors warn against.

Parameters (one set, 128-bit security): ring degree N = 8192, ciphertext modulus
q = 60 + 60 + 60 + 38 = 218 bits (the HomomorphicEncryption.org standard's bound for
N = 8192 at 128-bit classical security; the 38-bit prime is SEAL's special key-switching
prime, so a ciphertext lives under the first three, q_data ≈ 2^180), and a 58-bit batching
prime ``t`` ≡ 1 mod 2N (58, not 60 bits: SEAL's 60-bit coefficient primes are the largest
ones ≡ 1 mod 2N, the same a 60-bit batching prime would be). N slots per ciphertext, one
integer per slot, held modulo ``t``; a value must stay below t/2 in magnitude.

Noise flooding: the owner's secret key would let it read the noise of any ciphertext it
decrypts, and that noise is a function of what the helper computed (the mask it added,
which ciphertexts it summed). Before it hands a ciphertext over, the helper adds to its
first polynomial a fresh polynomial with coefficients uniform in ±2^FLOOD_BITS
(:func:`flood`). The decryption is unchanged (2^FLOOD_BITS ≪ Δ = q_data/t ≈ 2^122) and the
noise the owner sees is within statistical distance N·2^(e−FLOOD_BITS) of the flooding
alone, for computation noise below 2^e (a sum of a few thousand fresh ciphertexts stays
below 2^30: 2^-57 here).

TenSEAL is imported here, so only a job's worker and the owner's client import this
module, never a server.
"""

from __future__ import annotations

import secrets
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi

from ensnif_mpc.errors import FailedPrecondition, InvalidArgument
from ensnif_mpc.he import keys

POLY_DEGREE = 8192
COEFF_BITS = (60, 60, 60, 38)
PLAIN_BITS = 58
SECURITY_BITS = 128
FLOOD_BITS = 100
# TenSEAL's thread pool has crashed other projects: one thread, always, set explicitly.
N_THREADS = 1
PARAMS = f"bfv-{POLY_DEGREE}-t{PLAIN_BITS}"
SCHEME = "bfv"


def plain_modulus() -> int:
    """The 58-bit batching prime t (deterministic: SEAL's largest such prime ≡ 1 mod 2N)."""
    return int(sealapi.PlainModulus.Batching(POLY_DEGREE, PLAIN_BITS).value())


T = plain_modulus()
HALF_T = T // 2


def new_secret_context() -> ts.Context:
    """BFV with a public key: the helper never encrypts, but the public key is what makes
    the public context (and so the context hash that binds every ciphertext) differ from
    one owner's key to another's; parameters alone are the same for everyone."""
    return ts.context(
        ts.SCHEME_TYPE.BFV,
        poly_modulus_degree=POLY_DEGREE,
        plain_modulus=T,
        coeff_mod_bit_sizes=list(COEFF_BITS),
        encryption_type=ts.ENCRYPTION_TYPE.ASYMMETRIC,
        n_threads=N_THREADS,
    )


def public_bytes(ctx: ts.Context) -> bytes:
    """Parameters and the public key: the helper only adds ciphertexts and plaintext masks,
    so no relinearization or Galois key travels (and never the secret key)."""
    return bytes(
        ctx.serialize(
            save_public_key=True,
            save_secret_key=False,
            save_galois_keys=False,
            save_relin_keys=False,
        )
    )


def secret_bytes(ctx: ts.Context) -> bytes:
    return bytes(
        ctx.serialize(
            save_public_key=True,
            save_secret_key=True,
            save_galois_keys=False,
            save_relin_keys=False,
        )
    )


def keygen(directory: Path) -> keys.KeyDir:
    """A fresh BFV key in a new key directory (``ensnif_mpc/he/keys.py``)."""
    return keys.create(directory, SCHEME, PARAMS, new_secret_context, public_bytes, secret_bytes)


def load_key(directory: Path) -> keys.KeyDir:
    key = keys.load(directory, N_THREADS)
    if key.scheme != SCHEME or key.params != PARAMS:
        raise FailedPrecondition(
            f"{directory} holds a {key.scheme} key for {key.params}, not {PARAMS}",
            reason="he_key_invalid",
        )
    return key


def load_public(public: bytes) -> ts.Context:
    """The helper's context from the owner's public bytes; refused if it holds a secret
    key or is not this parameter set."""
    try:
        ctx = ts.context_from(public, n_threads=N_THREADS)
    except (ValueError, RuntimeError, TypeError):
        raise InvalidArgument(
            "the BFV public context does not load", reason="he_context_invalid"
        ) from None
    if ctx.has_secret_key():
        raise InvalidArgument(
            "the BFV context sent as public holds a secret key", reason="he_context_invalid"
        )
    parms = ctx.seal_context().data.key_context_data().parms()
    bits = tuple(m.value().bit_length() for m in parms.coeff_modulus())
    if (
        parms.poly_modulus_degree() != POLY_DEGREE
        or bits != COEFF_BITS
        or parms.plain_modulus().value() != T
    ):
        raise InvalidArgument(
            f"the BFV context is not the 128-bit set {PARAMS} (q bits {COEFF_BITS})",
            reason="he_context_invalid",
        )
    return ctx


# -- ciphertexts ---------------------------------------------------------------------------------


def encrypt(ctx: ts.Context, values: np.ndarray) -> bytes:
    """One ciphertext of up to N signed integers (|v| < t/2; the rest of the slots zero)."""
    if values.size > POLY_DEGREE:
        raise InvalidArgument(f"at most {POLY_DEGREE} values per ciphertext")
    padded = np.zeros(POLY_DEGREE, dtype=np.int64)
    padded[: values.size] = values
    return bytes(ts.bfv_vector(ctx, padded.tolist()).serialize())


def load_vector(ctx: ts.Context, blob: bytes) -> ts.BFVVector:
    try:
        return ts.bfv_vector_from(ctx, blob)
    except Exception as exc:
        raise InvalidArgument(
            "a ciphertext does not load under this context", reason="he_ciphertext_invalid"
        ) from exc


def uniform_mod_t(n: int) -> np.ndarray:
    """n values uniform in [0, t) from the OS's CSPRNG (rejection sampling of 58-bit draws)."""
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        raw = np.frombuffer(secrets.token_bytes(8 * 2 * n), dtype=np.uint64) >> np.uint64(6)
        out = np.concatenate([out, raw[raw < np.uint64(T)].astype(np.int64)])
    return out[:n]


def centered(values: np.ndarray) -> np.ndarray:
    """Residues mod t as signed integers in (−t/2, t/2], the form TenSEAL encodes."""
    v = np.mod(values.astype(np.int64), T)
    return np.where(v > HALF_T, v - T, v)


def _data_moduli(ctx: ts.Context) -> list[int]:
    parms = ctx.seal_context().data.first_context_data().parms()
    return [int(m.value()) for m in parms.coeff_modulus()]


# SEAL 4 serialization (checked against what SEAL itself writes and reads): a 16-byte header
# (magic 0xA15E, header size 16, version, compression mode, reserved, total size), then the
# ciphertext's members: parms_id (4 × u64), is_ntt_form (u8), size, N, RNS primes (3 × u64),
# scale (f64), correction factor (u64); then its coefficient array as a nested serialized
# object (header, u64 count, count × u64: c0's residues prime by prime, then c1's).
_HEADER = struct.Struct("<HBBBBHQ")
_MEMBERS = struct.Struct("<4QB3QdQ")
_MAGIC = 0xA15E
_COMPR_NONE, _COMPR_ZSTD = 0, 2


def _seal_save(ct: sealapi.Ciphertext) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/ct"
        ct.save(path)
        with open(path, "rb") as f:
            return f.read()


def _seal_load(ctx: ts.Context, blob: bytes) -> sealapi.Ciphertext:
    ct = sealapi.Ciphertext(ctx.seal_context().data)
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/ct"
        with open(path, "wb") as f:
            f.write(blob)
        try:
            ct.load(ctx.seal_context().data, path)
        except (ValueError, RuntimeError, TypeError):
            raise InvalidArgument(
                "a masked ciphertext does not load under the owner's context "
                "(another context, or altered)",
                reason="he_ciphertext_invalid",
            ) from None
    return ct


def _members(blob: bytes) -> tuple[bytes, tuple[int, int]]:
    """The members of a serialized ciphertext (decompressed) and SEAL's version."""
    import pyarrow as pa  # Arrow ships zstd; SEAL compresses its output with it

    magic, hsize, major, minor, mode, _res, total = _HEADER.unpack_from(blob)
    if magic != _MAGIC or hsize != _HEADER.size or total != len(blob):
        raise InvalidArgument("not a SEAL ciphertext", reason="he_ciphertext_invalid")
    body = blob[_HEADER.size :]
    if mode == _COMPR_NONE:
        return body, (major, minor)
    if mode != _COMPR_ZSTD:
        raise InvalidArgument("unexpected SEAL compression", reason="he_ciphertext_invalid")
    count = 2 * len(COEFF_BITS[:-1]) * POLY_DEGREE
    size = _MEMBERS.size + _HEADER.size + 8 + 8 * count
    members = pa.decompress(body, decompressed_size=size, codec="zstd", asbytes=True)
    return bytes(members), (major, minor)


_LOW_BITS = FLOOD_BITS - 64  # E = high·2^_LOW_BITS + low, high a 64-bit draw


@dataclass(frozen=True)
class _Flood:
    """One integer polynomial E, uniform in ±2^FLOOD_BITS coefficient-wise, from the OS CSPRNG."""

    high: np.ndarray  # uint64
    low: np.ndarray  # uint64 < 2^_LOW_BITS
    negative: np.ndarray  # bool

    @classmethod
    def draw(cls, n: int) -> _Flood:
        raw = np.frombuffer(secrets.token_bytes(n * 16), dtype=np.uint64).reshape(n, 2)
        sign = np.frombuffer(secrets.token_bytes(n), dtype=np.uint8) & 1
        return cls(raw[:, 0].copy(), raw[:, 1] >> np.uint64(64 - _LOW_BITS), sign.astype(bool))

    def mod(self, q: int) -> np.ndarray:
        """E mod q in uint64 arithmetic: q < 2^60, so x·16 < 2^64 and the shift by
        _LOW_BITS runs four bits at a time."""
        qq = np.uint64(q)
        x: np.ndarray = self.high % qq
        for _ in range(_LOW_BITS // 4):
            x = (x << np.uint64(4)) % qq
        x = (x + self.low % qq) % qq
        return np.where(self.negative, (qq - x) % qq, x)


def flooded(ctx: ts.Context, vector: ts.BFVVector) -> bytes:
    """The ciphertext's SEAL bytes with a fresh polynomial uniform in ±2^FLOOD_BITS added
    to c0 (noise flooding, see the module docstring); the plaintext is unchanged.

    BFV ciphertexts in SEAL stay in coefficient form, RNS layout: for each data prime q_j,
    N residues. Adding E mod q_j to c0's residues adds E to the decryption noise.
    """
    (ct,) = vector.ciphertext()
    moduli = _data_moduli(ctx)
    if ct.is_ntt_form() or ct.size() != 2 or ct.coeff_modulus_size() != len(moduli):
        raise InvalidArgument(
            "flooding takes a size-2 BFV ciphertext at the first data level",
            reason="he_ciphertext_invalid",
        )
    plain_members, (major, minor) = _members(_seal_save(ct))
    members = bytearray(plain_members)
    offset = _MEMBERS.size + _HEADER.size + 8
    n, k = POLY_DEGREE, len(moduli)
    view = np.frombuffer(members, dtype=np.uint64, count=k * n, offset=offset)
    c0 = view.reshape(k, n)  # a writable view into ``members``
    noise = _Flood.draw(n)
    for j, q in enumerate(moduli):  # one vectorized pass per RNS prime (three)
        c0[j] = (c0[j] + noise.mod(q)) % np.uint64(q)
    header = _HEADER.pack(
        _MAGIC, _HEADER.size, major, minor, _COMPR_NONE, 0, _HEADER.size + len(members)
    )
    return header + bytes(members)


def decrypt_seal(ctx: ts.Context, blob: bytes) -> np.ndarray:
    """The owner's decryption of a masked, flooded ciphertext: N signed slot values."""
    seal_ctx = ctx.seal_context().data
    ct = _seal_load(ctx, blob)
    plain = sealapi.Plaintext()
    sealapi.Decryptor(seal_ctx, ctx.secret_key().data).decrypt(ct, plain)
    return np.asarray(sealapi.BatchEncoder(seal_ctx).decode_int64(plain), dtype=np.int64)


def noise_budget(ctx: ts.Context, blob: bytes) -> int:
    """The remaining invariant noise budget in bits of a ciphertext's SEAL bytes (owner side)."""
    decryptor = sealapi.Decryptor(ctx.seal_context().data, ctx.secret_key().data)
    return int(decryptor.invariant_noise_budget(_seal_load(ctx, blob)))


def seal_bytes(vector: ts.BFVVector) -> bytes:
    (ct,) = vector.ciphertext()
    return _seal_save(ct)
