"""Proto to domain and back for the node's scoring stream (ensnif/v1/scoring.proto).

Kept beside the servicer so that it stays thin: the servicer reads the first message
as the header and hands the rest to :meth:`party_node.scoring.Scorer.run` through
:func:`parts`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ensnif_mpc.errors import InvalidArgument
from ensnif_mpc.gen.ensnif.v1 import scoring_pb2 as spb
from party_node.scoring import Accepted, Ciphertext, Header, Part, Result, Seal


def model_info(d: Mapping[str, object]) -> spb.ModelInfo:
    return spb.ModelInfo(**d)  # type: ignore[arg-type]  # the keys are ModelInfo's fields


def header(requests: Iterator[spb.ScoreRequest]) -> Header:
    first = next(requests, None)
    if first is None or first.WhichOneof("part") != "header":
        raise InvalidArgument("a scoring stream starts with its header")
    h = first.header
    return Header(
        party=h.party,
        model=h.model,
        params=h.params,
        context_sha256=h.context_sha256,
        rows=h.rows,
        features=h.features,
        nonce=h.nonce,
        analyst_certificate_pem=h.analyst_certificate_pem,
        signature=h.signature,
    )


def parts(requests: Iterator[spb.ScoreRequest]) -> Iterator[Part]:
    for r in requests:
        kind = r.WhichOneof("part")
        if kind == "context_chunk":
            yield r.context_chunk
        elif kind == "ciphertext":
            yield Ciphertext(r.ciphertext.batch, r.ciphertext.feature, r.ciphertext.data)
        elif kind == "seal":
            yield Seal(r.seal.batch, r.seal.rows, r.seal.digest, r.seal.signature)
        else:
            raise InvalidArgument("a scoring stream has one header, at its start")


def response(out: Accepted | Result) -> spb.ScoreResponse:
    if isinstance(out, Accepted):
        return spb.ScoreResponse(
            accepted=spb.ScoreAccepted(model=model_info(out.model), rows_used=out.rows_used)
        )
    return spb.ScoreResponse(
        result=spb.ScoreResult(
            batch=out.batch, rows=out.rows, ciphertext=out.ciphertext, signature=out.signature
        )
    )
