"""The coordinator's part in encrypted scoring: relay, never read.

An analyst's scoring stream (ensnif/v1/scoring.proto) goes to the model owner's node
as it came: the public CKKS context and the ciphertexts are opaque bytes here (the
coordinator never imports TenSEAL; an import-linter contract in pyproject.toml keeps it
so); no secret key ever passes (the analyst's client sends only the public context). What the
coordinator checks is what it can without reading: the caller is an analyst, the
header's certificate is the caller's own (the node checks the signature and the CA),
the owner is a registered party. It writes one audit record per request (analyst,
owner, model, row count) and forwards the node's encrypted, signed results.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Protocol

from coordinator.node_client import NodeCallFailed, NodeClient, UnknownNode
from coordinator.store import PartyRecord
from ensnif_mpc.errors import InvalidArgument, PermissionDenied, UnknownParty
from ensnif_mpc.gen.ensnif.v1 import scoring_pb2 as spb
from ensnif_mpc.security.pki import Identity, identity_of, parse_cert

log = logging.getLogger(__name__)

SCORE_TIMEOUT_S = 3600.0


class RelayStore(Protocol):
    def list_parties(self) -> list[PartyRecord]: ...
    def get_party(self, name: str) -> PartyRecord | None: ...
    def audit(self, event_name: str, details: dict[str, object]) -> None: ...


class ScoreRelay:
    def __init__(self, store: RelayStore, nodes: NodeClient) -> None:
        self.store = store
        self.nodes = nodes

    def list_models(self, party: str = "") -> list[spb.ModelInfo]:
        """Every registered member's models (asked now: the owner's node is the
        authority); a member whose node does not answer is left out and logged."""
        names = [party] if party else [p.name for p in self.store.list_parties()]
        out: list[spb.ModelInfo] = []
        for name in names:
            try:
                out.extend(self.nodes.list_models(name))
            except UnknownNode:
                raise UnknownParty(f"no registered party {name!r}") from None
            except NodeCallFailed as exc:
                if party:
                    raise exc.error from None
                log.info("models of %s not listed: %s", name, exc)
        return out

    def score(
        self, caller: Identity, requests: Iterator[spb.ScoreRequest]
    ) -> Iterator[spb.ScoreResponse]:
        if caller.role != "analyst":
            raise PermissionDenied("only an analyst may score against a model")
        first = next(requests, None)
        if first is None or first.WhichOneof("part") != "header":
            raise InvalidArgument("a scoring stream starts with its header")
        h = first.header
        try:
            named = identity_of(parse_cert(h.analyst_certificate_pem))
        except Exception:
            raise PermissionDenied("the scoring header's certificate does not parse") from None
        if named != caller:
            raise PermissionDenied("the scoring header names another analyst than the caller")
        if self.store.get_party(h.party) is None:
            raise UnknownParty(f"no registered party {h.party!r}")
        self.store.audit(
            "score_relayed",
            {"analyst": caller.name, "party": h.party, "model": h.model, "rows": h.rows},
        )

        def forward() -> Iterator[spb.ScoreRequest]:
            yield first
            yield from requests

        try:
            yield from self.nodes.score(h.party, forward(), SCORE_TIMEOUT_S)
        except NodeCallFailed as exc:
            raise exc.error from None
