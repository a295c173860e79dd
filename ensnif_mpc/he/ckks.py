"""CKKS parameter sets, contexts and ciphertext framing (TenSEAL).

Why fixed parameter sets: the security level depends on the ring dimension N and the
total bit size of the coefficient modulus Q. The HE standard (homomorphicencryption.org,
2018, table 1, uniform ternary secret, classical 128-bit) allows at most
``MAX_COEFF_BITS[N]`` bits of Q; SEAL refuses larger Q when it builds or loads a context
at its default ``sec_level`` (tc128). A set is chosen by what the evaluation needs
(its multiplicative depth), never by the data.

Contexts are symmetric (secret-key encryption): only the key's owner encrypts, so no
public encryption key is made or sent; what travels is the public context (parameters
and, where the evaluation multiplies ciphertexts, relinearization keys), never the
secret key. Galois keys are never generated for scoring (the slot layout needs no
rotation, docs/homomorphic.md "Packing").

A ciphertext travels framed: ``MAGIC || sha256(public context) || bytes``, where the
analyst's ciphertexts carry TenSEAL's serialization (``MAGIC``) and the evaluator's results
SEAL's own (``RESULT_MAGIC``: the evaluation runs on SEAL's API, ensnif_mpc/he/scoring.py).
The evaluator refuses a frame whose hash is not the context it was given (a ciphertext made
under another key or context), before SEAL parses anything.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import tenseal as ts
import tenseal.sealapi as sealapi

from ensnif_mpc.errors import InvalidArgument

MAGIC = b"ENHE1"
RESULT_MAGIC = b"ENHR1"
HASH_BYTES = 32

#: Largest log2(Q) for 128-bit classical security per ring dimension (HE standard, table 1).
MAX_COEFF_BITS: dict[int, int] = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}

#: TenSEAL's thread pool size when the caller says nothing: one thread, so a server's
#: gRPC worker threads never share or oversubscribe TenSEAL's pool.
DEFAULT_THREADS = 1


@dataclass(frozen=True)
class ParamSet:
    """One CKKS parameter set: ring dimension, modulus chain, scale, usable depth."""

    name: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    scale_bits: int
    depth: int  # rescalings available between a fresh ciphertext and decryption
    relin_keys: bool

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree // 2

    @property
    def coeff_bits(self) -> int:
        return sum(self.coeff_mod_bit_sizes)

    @property
    def max_magnitude(self) -> float:
        """The largest |value| a decrypted slot may hold: the last prime carries value·scale."""
        return float(2 ** (self.coeff_mod_bit_sizes[0] - self.scale_bits - 1))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "poly_modulus_degree": self.poly_modulus_degree,
            "coeff_mod_bit_sizes": list(self.coeff_mod_bit_sizes),
            "coeff_modulus_bits": self.coeff_bits,
            "max_coeff_bits_128": MAX_COEFF_BITS[self.poly_modulus_degree],
            "scale_bits": self.scale_bits,
            "depth": self.depth,
            "slots": self.slots,
            "security_bits": 128,
        }


#: A linear model: one plaintext-scalar multiplication per feature, one rescale.
LINEAR = ParamSet("ckks-linear", 8192, (60, 40, 60), 40, 1, False)
#: A logistic model: the linear step and an odd cubic sigmoid, three rescales
#: (ensnif_mpc/he/scoring.py); 170 of the 218 bits N = 8192 allows.
LOGISTIC = ParamSet("ckks-logistic", 8192, (40, 30, 30, 30, 40), 30, 3, True)

PARAM_SETS: dict[str, ParamSet] = {p.name: p for p in (LINEAR, LOGISTIC)}

for _p in PARAM_SETS.values():  # a set that would not be 128-bit is a programming error
    assert _p.coeff_bits <= MAX_COEFF_BITS[_p.poly_modulus_degree], _p


def param_set(name: str) -> ParamSet:
    try:
        return PARAM_SETS[name]
    except KeyError:
        raise InvalidArgument(
            f"unknown CKKS parameter set {name!r}; known: {', '.join(PARAM_SETS)}",
            reason="he_context_invalid",
        ) from None


def new_context(params: ParamSet, n_threads: int = DEFAULT_THREADS) -> ts.Context:
    """A fresh secret context (symmetric CKKS) with the keys ``params`` needs."""
    ctx = ts.context(
        ts.SCHEME_TYPE.CKKS,
        params.poly_modulus_degree,
        coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes),
        encryption_type=ts.ENCRYPTION_TYPE.SYMMETRIC,
        n_threads=check_threads(n_threads),
    )
    ctx.global_scale = float(2**params.scale_bits)
    if params.relin_keys:
        ctx.generate_relin_keys()
    return ctx


def check_threads(n_threads: int) -> int:
    if not isinstance(n_threads, int) or isinstance(n_threads, bool) or n_threads < 1:
        raise InvalidArgument(f"TenSEAL n_threads must be an integer >= 1, not {n_threads!r}")
    return n_threads


def public_bytes(ctx: ts.Context) -> bytes:
    """The context without its secret key (parameters and relinearization keys)."""
    data: bytes = ctx.serialize(
        save_public_key=False,
        save_secret_key=False,
        save_galois_keys=False,
        save_relin_keys=True,
    )
    return data


def secret_bytes(ctx: ts.Context) -> bytes:
    data: bytes = ctx.serialize(
        save_public_key=False, save_secret_key=True, save_galois_keys=False, save_relin_keys=True
    )
    return data


def context_hash(public: bytes) -> bytes:
    return hashlib.sha256(public).digest()


def load_public(
    public: bytes, n_threads: int = DEFAULT_THREADS, params: ParamSet | None = None
) -> ts.Context:
    """An evaluator's context from the bytes a key owner sent; refused if it holds a
    secret key (a client bug that would hand the evaluator the power to decrypt), if SEAL
    does not accept it (malformed, or parameters below 128-bit security), or, given
    ``params``, if its ring or modulus chain is not that set's (the evaluation's levels and
    scales are planned for the set, never for what a request brings)."""
    try:
        ctx = ts.context_from(public, n_threads=check_threads(n_threads))
    except (ValueError, RuntimeError, TypeError):
        raise InvalidArgument(
            "the public CKKS context does not load (malformed or not 128-bit)",
            reason="he_context_invalid",
        ) from None
    if ctx.has_secret_key():
        raise InvalidArgument(
            "the context sent for evaluation holds a secret key; send the public context only",
            reason="he_context_invalid",
        )
    if params is not None and not _is_set(ctx, params):
        raise InvalidArgument(
            f"the public context is not the {params.name} parameter set",
            reason="he_context_invalid",
        )
    return ctx


def data_moduli(ctx: ts.Context) -> list[int]:
    """The data primes q_0 … q_L of the context's first level (the special prime excluded),
    in SEAL's order: a rescaling divides by the last one and drops it."""
    parms = ctx.seal_context().data.first_context_data().parms()
    return [int(m.value()) for m in parms.coeff_modulus()]


def _is_set(ctx: ts.Context, params: ParamSet) -> bool:
    key = ctx.seal_context().data.key_context_data().parms()
    bits = tuple(int(m.bit_count()) for m in key.coeff_modulus())
    return (
        int(key.poly_modulus_degree()) == params.poly_modulus_degree
        and bits == params.coeff_mod_bit_sizes
        and (not params.relin_keys or ctx.has_relin_keys())
    )


# -- SEAL's own serialization (the evaluator's results) -------------------------------------
# TenSEAL's Python binding of SEAL saves and loads ciphertexts through a file path only; an
# anonymous in-memory file (memfd) keeps them off any disk.


@contextmanager
def _scratch_path() -> Iterator[tuple[str, int]]:
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("ensnif-ckks")
        try:
            yield f"/proc/self/fd/{fd}", fd
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory() as tmp:  # pragma: no cover (not Linux)
        path = os.path.join(tmp, "ct")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            yield path, fd
        finally:
            os.close(fd)


def seal_save(ct: sealapi.Ciphertext) -> bytes:
    with _scratch_path() as (path, fd):
        ct.save(path)
        return os.pread(fd, os.fstat(fd).st_size, 0)


def seal_load(ctx: ts.Context, raw: bytes) -> sealapi.Ciphertext:
    seal_ctx = ctx.seal_context().data
    ct = sealapi.Ciphertext(seal_ctx)
    with _scratch_path() as (path, fd):
        os.pwrite(fd, raw, 0)
        try:
            ct.load(seal_ctx, path)
        except (ValueError, RuntimeError, TypeError):
            raise InvalidArgument(
                "a result does not load under this context", reason="he_ciphertext_invalid"
            ) from None
    return ct


def frame(ctx_hash: bytes, seal_bytes: bytes, magic: bytes = MAGIC) -> bytes:
    return magic + ctx_hash + seal_bytes


def unframe(expected_hash: bytes, blob: bytes, magic: bytes = MAGIC) -> bytes:
    """The bytes of a framed ciphertext, if it was made under ``expected_hash``."""
    head = len(magic) + HASH_BYTES
    if len(blob) < head or not blob.startswith(magic):
        raise InvalidArgument(
            "a ciphertext is not an Ensnif CKKS frame", reason="he_ciphertext_invalid"
        )
    if blob[len(magic) : head] != expected_hash:
        raise InvalidArgument(
            "a ciphertext was made under another CKKS context than the one sent",
            reason="he_context_mismatch",
        )
    return blob[head:]


def encrypt_columns(
    ctx: ts.Context, ctx_hash: bytes, columns: npt.NDArray[np.float64]
) -> list[bytes]:
    """One framed ciphertext per feature (a column of ``columns``, shape (features, rows)),
    the rows in the slots (rows <= slots)."""
    return [frame(ctx_hash, ts.ckks_vector(ctx, col).serialize()) for col in columns]


def load_vector(ctx: ts.Context, ctx_hash: bytes, blob: bytes) -> ts.CKKSVector:
    raw = unframe(ctx_hash, blob)
    try:
        return ts.ckks_vector_from(ctx, raw)
    except (ValueError, RuntimeError, TypeError):
        raise InvalidArgument(
            "a ciphertext does not load under the context sent (tampered or from other parameters)",
            reason="he_ciphertext_invalid",
        ) from None


def decrypt(
    ctx: ts.Context, ctx_hash: bytes, blobs: Sequence[bytes]
) -> list[npt.NDArray[np.float64]]:
    """Each frame's values: an analyst's ciphertext (its rows) or an evaluator's result
    (every slot; the caller keeps the rows it sent)."""
    return [_decrypt_one(ctx, ctx_hash, b) for b in blobs]


def _decrypt_one(ctx: ts.Context, ctx_hash: bytes, blob: bytes) -> npt.NDArray[np.float64]:
    if not blob.startswith(RESULT_MAGIC):
        return np.asarray(load_vector(ctx, ctx_hash, blob).decrypt(), dtype=np.float64)
    ct = seal_load(ctx, unframe(ctx_hash, blob, RESULT_MAGIC))
    seal_ctx = ctx.seal_context().data
    plain = sealapi.Plaintext()
    sealapi.Decryptor(seal_ctx, ctx.secret_key().data).decrypt(ct, plain)
    return np.asarray(sealapi.CKKSEncoder(seal_ctx).decode_double(plain), dtype=np.float64)
