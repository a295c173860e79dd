"""The model owner's side of encrypted scoring: admit a request, evaluate its batches.

A request arrives as a stream through the coordinator (which relays opaque bytes): a
header signed by the analyst, the analyst's public CKKS context in chunks, then per
batch one ciphertext per feature and a seal (the analyst's signature over the batch's
digest). Every check before evaluation is on metadata only — the caller, the analyst's
certificate and signature, the model, the feature and row counts, the policy and the
row quota, the nonce — so whether a request is refused, and why, never depends on the
rows (they are encrypted anyway). The request is written to the node's audit chain
(analyst, model, rows, the context's hash; never a ciphertext).

Each result is signed with the node's consortium key over the request's nonce, the
batch and the result's digest, so the analyst knows it comes from the model's owner.
"""

from __future__ import annotations

import logging
import resource
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import tenseal as ts

from ensnif_mpc.errors import CryptoError, InvalidArgument
from ensnif_mpc.he import ckks, scoring
from ensnif_mpc.he.sigmoid import SigmoidPoly
from ensnif_mpc.security import pki
from ensnif_mpc.security.pki import Identity
from party_node.models import ModelRecord, ModelRegistry
from party_node.store import NodeStore

log = logging.getLogger(__name__)

MAX_CONTEXT_BYTES = 64 << 20  # a public context with relinearization keys is ~2 MB
CONTEXT_CACHE = 8  # loaded public contexts kept (about 3 MB each in memory)


class Contexts:
    """Loaded public contexts by the SHA-256 of their bytes, the most recent ``size``.

    Why: an analyst reuses its key directory, so its next request sends the same public
    context, and loading one (parsing and checking its relinearization keys) is about
    30 ms, the largest fixed cost of a request. The key is the digest of the exact bytes
    (checked against the analyst's signed header before any lookup), the thread count and
    the parameter set, so a hit is the context those bytes would load. A context is only
    read by the evaluation (each request has its own SEAL evaluator, ``scoring.Kernel``),
    so requests on the node's gRPC threads may share one.
    """

    def __init__(self, size: int = CONTEXT_CACHE) -> None:
        self.size = size
        self._held: OrderedDict[tuple[bytes, int, str], ts.Context] = OrderedDict()
        self._lock = threading.Lock()

    def load(
        self, digest: bytes, public: bytes, n_threads: int, params: ckks.ParamSet
    ) -> ts.Context:
        key = (digest, n_threads, params.name)
        with self._lock:
            if key in self._held:
                self._held.move_to_end(key)
                return self._held[key]
        ctx = ckks.load_public(public, n_threads, params)  # refused ones are not kept
        with self._lock:
            self._held[key] = ctx
            while len(self._held) > self.size:
                self._held.popitem(last=False)
        return ctx


@dataclass(frozen=True)
class Header:
    party: str
    model: str
    params: str
    context_sha256: bytes
    rows: int
    features: int
    nonce: str
    analyst_certificate_pem: str
    signature: bytes


@dataclass(frozen=True)
class Ciphertext:
    batch: int
    feature: int
    data: bytes


@dataclass(frozen=True)
class Seal:
    batch: int
    rows: int
    digest: bytes
    signature: bytes


@dataclass(frozen=True)
class Accepted:
    model: dict[str, object]
    rows_used: int


@dataclass(frozen=True)
class Result:
    batch: int
    rows: int
    ciphertext: bytes
    signature: bytes


Part = bytes | Ciphertext | Seal  # bytes: a chunk of the public context


@dataclass
class Session:
    header: Header
    record: ModelRecord
    poly: SigmoidPoly | None
    analyst: str
    request_id: str
    key_pem: bytes
    n_threads: int
    contexts: Contexts | None = None
    started: float = field(default_factory=time.perf_counter)
    _context_parts: list[bytes] = field(default_factory=list)
    _context: ts.Context | None = None
    _kernel: scoring.Kernel | None = None
    next_batch: int = 0  # the batch expected next (= batches evaluated so far)
    _rows_done: int = 0

    def add_context(self, chunk: bytes) -> None:
        if self._context is not None or sum(map(len, self._context_parts)) > MAX_CONTEXT_BYTES:
            raise InvalidArgument(
                "the public context arrived after ciphertexts or is too large",
                reason="he_context_invalid",
            )
        self._context_parts.append(chunk)

    def _ctx(self) -> ts.Context:
        if self._context is None:
            public = b"".join(self._context_parts)
            self._context_parts.clear()
            if ckks.context_hash(public) != self.header.context_sha256:
                raise InvalidArgument(
                    "the public context is not the one the analyst signed",
                    reason="he_context_mismatch",
                )
            params = self.record.model.params
            digest = self.header.context_sha256
            if self.contexts is None:
                self._context = ckks.load_public(public, self.n_threads, params)
            else:
                self._context = self.contexts.load(digest, public, self.n_threads, params)
            self._kernel = scoring.Kernel(self._context, params)
        return self._context

    def evaluate(self, blobs: list[bytes], seal: Seal) -> Result:
        h = self.header
        slots = self.record.model.params.slots
        expected = min(slots, h.rows - self._rows_done)
        if seal.batch != self.next_batch or seal.rows != expected or expected <= 0:
            raise InvalidArgument(
                f"batch {seal.batch} of {seal.rows} rows: expected batch {self.next_batch} "
                f"of {expected} rows",
                reason="he_ciphertext_invalid",
            )
        digest = scoring.batch_digest(blobs)
        message = scoring.seal_message(h.nonce, h.context_sha256, seal.batch, seal.rows, digest)
        if digest != seal.digest:
            raise CryptoError(
                f"batch {seal.batch}: the ciphertexts are not those the analyst signed",
                reason="he_ciphertext_tampered",
            )
        try:
            pki.verify_signature(h.analyst_certificate_pem, message, seal.signature)
        except CryptoError:
            raise CryptoError(
                f"batch {seal.batch}: the analyst's seal does not verify",
                reason="he_ciphertext_tampered",
            ) from None
        ctx = self._ctx()
        out = scoring.evaluate(
            self.record.model, self.poly, ctx, h.context_sha256, blobs, seal.rows, self._kernel
        )
        self.next_batch += 1
        self._rows_done += seal.rows
        signature = pki.sign(
            self.key_pem, scoring.result_message(h.nonce, seal.batch, seal.rows, out)
        )
        return Result(seal.batch, seal.rows, out, signature)

    @property
    def complete(self) -> bool:
        return self._rows_done == self.header.rows


class Scorer:
    """Admits scoring requests for the models in ``registry`` (a node's domain object)."""

    def __init__(
        self,
        party: str,
        store: NodeStore,
        registry: ModelRegistry,
        ca_pem: bytes,
        key_pem: Callable[[], bytes],
        check_coordinator: Callable[[Identity], None],
        n_threads: int = ckks.DEFAULT_THREADS,
    ) -> None:
        self.party = party
        self.store = store
        self.registry = registry
        self.ca_pem = ca_pem
        self.key_pem = key_pem
        self.check_coordinator = check_coordinator
        self.n_threads = ckks.check_threads(n_threads)
        self.contexts = Contexts()

    def models(self) -> list[dict[str, object]]:
        return [r.public(self.party) for r in self.registry.all()]

    def open(self, caller: Identity, h: Header) -> tuple[Session, Accepted]:
        self.check_coordinator(caller)
        analyst = pki.verify_member(h.analyst_certificate_pem, self.ca_pem, role="analyst")
        message = scoring.header_message(
            h.party, h.model, h.params, h.context_sha256, h.rows, h.features, h.nonce
        )
        pki.verify_signature(h.analyst_certificate_pem, message, h.signature)
        if h.party != self.party:
            raise InvalidArgument(f"the request is for {h.party!r}, this node is {self.party!r}")
        record = self.registry.get(h.model)
        model = record.model
        if h.features != model.features:
            raise InvalidArgument(
                f"the rows have {h.features} features; model {model.name!r} takes {model.features}",
                reason="he_feature_count",
            )
        if h.params != model.params.name:
            raise InvalidArgument(
                f"model {model.name!r} is scored under {model.params.name}, not {h.params!r}",
                reason="he_context_invalid",
            )
        if h.rows <= 0 or not h.nonce or len(h.context_sha256) != ckks.HASH_BYTES:
            raise InvalidArgument("a scoring request needs rows > 0, a nonce and a context hash")
        request_id = "score-" + secrets.token_hex(8)
        if self.store.claim_nonce(h.nonce, request_id) != request_id:
            raise CryptoError("this scoring request was already received (replay)")
        used = self.registry.admit(record, analyst.name, h.rows)
        self.store.audit(
            "score_accepted",
            {
                "request": request_id,
                "analyst": analyst.name,
                "model": model.name,
                "rows": h.rows,
                "features": h.features,
                "context_sha256": h.context_sha256.hex(),
                "rows_used": used,
            },
        )
        session = Session(
            h,
            record,
            model.sigmoid(),
            analyst.name,
            request_id,
            self.key_pem(),
            self.n_threads,
            self.contexts,
        )
        return session, Accepted(record.public(self.party), used)

    def run(
        self, caller: Identity, header: Header, parts: Iterable[Part]
    ) -> Iterator[Accepted | Result]:
        """Admit, then evaluate each batch as soon as its seal arrives."""
        session, accepted = self.open(caller, header)
        yield accepted
        pending: dict[int, bytes] = {}
        for part in parts:
            if isinstance(part, bytes):
                session.add_context(part)
            elif isinstance(part, Ciphertext):
                if part.batch != session.next_batch or part.feature in pending:
                    raise InvalidArgument(
                        "ciphertexts out of order", reason="he_ciphertext_invalid"
                    )
                pending[part.feature] = part.data
            else:
                if sorted(pending) != list(range(len(pending))):
                    raise InvalidArgument(
                        "a batch lacks a feature's ciphertext", reason="he_ciphertext_invalid"
                    )
                blobs = [pending[j] for j in range(len(pending))]
                pending.clear()
                yield session.evaluate(blobs, part)
        if not session.complete or pending:
            raise InvalidArgument(
                "the request ended before all its declared rows arrived",
                reason="he_ciphertext_invalid",
            )
        seconds = time.perf_counter() - session.started
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        log.info(
            "scored %d rows for %s with model %s in %.2f s (peak RSS %.0f MB)",
            header.rows,
            session.analyst,
            header.model,
            seconds,
            peak_mb,
        )
        self.store.audit(
            "score_done",
            {
                "request": session.request_id,
                "rows": header.rows,
                "batches": session.next_batch,
                "seconds": round(seconds, 3),
            },
        )
