"""The key owner's directory: the secret TenSEAL context stays in it, the public one travels.

Layout of a key directory (mode 0700, files 0600 for the secret, 0644 for the rest)::

    secret.ctx    the context with its secret key (never read by anything but its owner)
    public.ctx    the same context without the secret key: what an evaluator receives
    key.json      {"scheme", "params", "context_sha256", "created_at"}

Why a directory and not memory only: the owner decrypts later (results of a stream,
outsourced datasets kept for months), and a test can then look for the secret key's
bytes everywhere else (a node's state, the coordinator's database, logs, job
directories) and find them only here. The module is scheme-agnostic: CKKS scoring and
the BFV outsourcing both build their context with a factory and keep it here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tenseal as ts

from ensnif_mpc.errors import FailedPrecondition
from ensnif_mpc.he import ckks
from ensnif_mpc.security.pki import write_atomic, write_private

SECRET = "secret.ctx"
PUBLIC = "public.ctx"
META = "key.json"


@dataclass(frozen=True)
class KeyDir:
    """A loaded key directory: the secret context (for encrypting and decrypting here),
    the public context's bytes and its hash (what an evaluator and the catalog see)."""

    path: Path
    scheme: str
    params: str
    context: ts.Context
    public: bytes
    context_hash: bytes

    @property
    def context_sha256(self) -> str:
        return self.context_hash.hex()


def create(
    path: Path,
    scheme: str,
    params: str,
    build: Callable[[], ts.Context],
    public_of: Callable[[ts.Context], bytes] = ckks.public_bytes,
    secret_of: Callable[[ts.Context], bytes] = ckks.secret_bytes,
) -> KeyDir:
    """Generate a context with ``build`` and write it to a new directory ``path``."""
    if (path / SECRET).exists():
        raise FailedPrecondition(
            f"{path} already holds a key; use it or choose another directory",
            reason="he_key_invalid",
        )
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    ctx = build()
    public = public_of(ctx)
    digest = ckks.context_hash(public)
    write_private(path / SECRET, secret_of(ctx))
    write_atomic(path / PUBLIC, public, 0o644)
    meta: dict[str, Any] = {
        "scheme": scheme,
        "params": params,
        "context_sha256": digest.hex(),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    write_atomic(path / META, (json.dumps(meta, indent=2) + "\n").encode(), 0o644)
    return KeyDir(path, scheme, params, ctx, public, digest)


def load(path: Path, n_threads: int = ckks.DEFAULT_THREADS) -> KeyDir:
    """The key directory at ``path``; refused if a file is missing, the secret file is
    readable by others, or the public context is not the one the secret belongs to."""
    try:
        meta = json.loads((path / META).read_text())
        secret = (path / SECRET).read_bytes()
        public = (path / PUBLIC).read_bytes()
    except (OSError, ValueError):
        raise FailedPrecondition(
            f"{path} is not a key directory (secret.ctx, public.ctx, key.json)",
            reason="he_key_invalid",
        ) from None
    if (path / SECRET).stat().st_mode & 0o077:
        raise FailedPrecondition(
            f"{path / SECRET} is readable by other users; chmod 600 it",
            reason="he_key_invalid",
        )
    digest = ckks.context_hash(public)
    if digest.hex() != meta.get("context_sha256"):
        raise FailedPrecondition(
            f"{path}: public.ctx is not the context key.json names", reason="he_key_invalid"
        )
    try:
        ctx = ts.context_from(secret, n_threads=ckks.check_threads(n_threads))
    except (ValueError, RuntimeError, TypeError):
        raise FailedPrecondition(
            f"{path / SECRET} does not load", reason="he_key_invalid"
        ) from None
    if not ctx.has_secret_key():
        raise FailedPrecondition(f"{path / SECRET} holds no secret key", reason="he_key_invalid")
    return KeyDir(path, str(meta["scheme"]), str(meta["params"]), ctx, public, digest)


def load_or_create_ckks(
    path: Path, params: ckks.ParamSet, n_threads: int = ckks.DEFAULT_THREADS
) -> KeyDir:
    """The analyst's CKKS key for ``params`` in ``path``, generated there on first use."""
    if (path / SECRET).exists():
        key = load(path, n_threads)
        if key.scheme != "ckks" or key.params != params.name:
            raise FailedPrecondition(
                f"{path} holds a {key.scheme} key for {key.params}, not {params.name}",
                reason="he_key_invalid",
            )
        return key
    return create(path, "ckks", params.name, lambda: ckks.new_context(params, n_threads))
