"""OutsourceService: proto in, :class:`party_node.outsourced.OutsourcedStore` call, proto out.

Any consortium member may call it; the store decides (an owner uploads only its own
dataset). Uploads carry only ciphertexts the node cannot read, a manifest and certificates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc

from ensnif_mpc.errors import grpc_errors
from ensnif_mpc.gen.ensnif.v1 import outsource_pb2 as opb, outsource_pb2_grpc
from ensnif_mpc.security.tls import peer_identity
from party_node.outsourced import Accepted, OutsourcedStore


def accepted_to_pb(a: Accepted) -> opb.OutsourcedDataset:
    return opb.OutsourcedDataset(
        owner=a.owner,
        dataset=a.dataset,
        rows=a.rows,
        manifest_sha256=a.manifest_sha256,
        context_sha256=a.context_sha256,
        ciphertexts=a.ciphertexts,
        columns_json=a.columns_json,
        policy_json=a.policy_json,
    )


BATCH_PART = 1 << 20  # bytes of masked batch per message (gRPC's default limit is 4 MB)


def conversion_messages(job_id: str, request_json: str, batch: bytes) -> Iterator[opb.Conversion]:
    """One conversion as messages of at most BATCH_PART bytes of batch, the request first."""
    for start in range(0, max(len(batch), 1), BATCH_PART):
        yield opb.Conversion(
            job_id=job_id,
            request_json=request_json if start == 0 else "",
            batch=batch[start : start + BATCH_PART],
        )


class OutsourceServicer(outsource_pb2_grpc.OutsourceServiceServicer):
    def __init__(self, store: OutsourcedStore) -> None:
        self.store = store
        # Called after an upload is accepted: the server wakes its registrar, so the dataset
        # is in the catalog at once, not at the next periodic registration (up to 10 s).
        self.on_accept: Callable[[], None] = lambda: None

    def Upload(
        self, request_iterator: Iterator[opb.UploadChunk], context: grpc.ServicerContext
    ) -> opb.UploadResponse:
        with grpc_errors(context, "Upload"):
            caller = peer_identity(context)  # authenticate before reading the stream
            files = ((c.path, c.data) for c in request_iterator)
            accepted = self.store.accept(caller, files)
            self.on_accept()
            return opb.UploadResponse(dataset=accepted_to_pb(accepted))

    def ListOutsourced(
        self, request: opb.ListOutsourcedRequest, context: grpc.ServicerContext
    ) -> opb.ListOutsourcedResponse:
        with grpc_errors(context, "ListOutsourced"):
            peer_identity(context)
            return opb.ListOutsourcedResponse(
                datasets=[accepted_to_pb(a) for a in self.store.stored()]
            )

    def PendingConversions(
        self, request: opb.PendingConversionsRequest, context: grpc.ServicerContext
    ) -> Iterator[opb.Conversion]:
        with grpc_errors(context, "PendingConversions"):
            caller = peer_identity(context)
            pending = self.store.pending(caller)
        for r, batch in pending:
            yield from conversion_messages(r.job_id, r.to_json(), batch)

    def AnswerConversion(
        self, request_iterator: Iterator[opb.AnswerChunk], context: grpc.ServicerContext
    ) -> opb.AnswerConversionResponse:
        with grpc_errors(context, "AnswerConversion"):
            caller = peer_identity(context)
            job_id, refusal = "", ""
            sealed: dict[int, bytes] = {}
            for chunk in request_iterator:
                job_id = job_id or chunk.job_id
                refusal = refusal or chunk.refusal
                if chunk.sealed:
                    sealed[chunk.party_index] = sealed.get(chunk.party_index, b"") + chunk.sealed
            self.store.answer(caller, job_id, None if refusal else sealed, refusal)
            return opb.AnswerConversionResponse(job_id=job_id)
