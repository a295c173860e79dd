"""The coordinator's part in artifacts: ask the nodes, merge what they say, relay deletions.

An artifact's shares live at the nodes (party_node/artifacts.py); the coordinator keeps
nothing of them and sees only what each node describes (ArtifactInfo: id, producing job
and analyst, type, shape, owners, party order). A listing is every reachable node's
answer merged by id, with the members that hold a share (``holders``): an analyst sees
the artifacts she produced, a party those it holds, the coordinator's own identity all.
A deletion is allowed to the analyst who produced the artifact and goes to every node
that holds a share; each node checks the requester again and audits it.
"""

from __future__ import annotations

import logging
from typing import Protocol

from coordinator.node_client import NodeCallFailed, NodeClient, UnknownNode
from coordinator.store import PartyRecord
from ensnif_mpc.errors import NotFound, PermissionDenied, Unavailable
from ensnif_mpc.gen.ensnif.v1 import common_pb2 as pb
from ensnif_mpc.security.pki import Identity

log = logging.getLogger(__name__)


class ArtifactStore(Protocol):
    def list_parties(self) -> list[PartyRecord]: ...
    def audit(self, event_name: str, details: dict[str, object]) -> None: ...


class ArtifactDirectory:
    def __init__(self, store: ArtifactStore, nodes: NodeClient) -> None:
        self.store = store
        self.nodes = nodes

    def _gather(self) -> tuple[dict[str, pb.ArtifactInfo], list[str]]:
        """Every node's artifacts merged by id, and the parties that did not answer."""
        merged: dict[str, pb.ArtifactInfo] = {}
        missing = []
        for party in self.store.list_parties():
            try:
                held = self.nodes.list_artifacts(party.name)
            except (NodeCallFailed, UnknownNode) as exc:
                log.info("artifacts: %s did not answer (%s)", party.name, exc)
                missing.append(party.name)
                continue
            for info in held:
                if info.id not in merged:
                    merged[info.id] = pb.ArtifactInfo()
                    merged[info.id].CopyFrom(info)
                    del merged[info.id].holders[:]
                merged[info.id].holders.append(party.name)
        return merged, missing

    def listing(self, who: Identity) -> list[pb.ArtifactInfo]:
        merged, _ = self._gather()
        return [info for _, info in sorted(merged.items()) if _visible(who, info)]

    def delete(self, who: Identity, artifact_id: str) -> list[str]:
        """Delete ``artifact_id`` at every node that holds a share; the members that did."""
        merged, missing = self._gather()
        info = merged.get(artifact_id)
        if info is None or not _visible(who, info):
            raise NotFound(
                f"no node holds a share of artifact {artifact_id!r}", reason="artifact_not_found"
            )
        if who.name != info.analyst:
            raise PermissionDenied(
                f"only {info.analyst!r}, who produced artifact {artifact_id!r}, may delete it"
            )
        deleted = []
        for party in info.holders:
            if self.nodes.delete_artifact(party, artifact_id, who.name):
                deleted.append(party)
        self.store.audit(
            "artifact_deleted", {"artifact": artifact_id, "by": who.name, "at": deleted}
        )
        unreached = sorted(set(info.parties) & set(missing))
        if unreached:
            raise Unavailable(
                f"artifact {artifact_id!r} deleted at {', '.join(deleted) or 'no node'}; "
                f"{', '.join(unreached)} did not answer: delete it again when they are back"
            )
        return deleted


def _visible(who: Identity, info: pb.ArtifactInfo) -> bool:
    if who.role == "analyst":
        return info.analyst == who.name
    if who.role == "party":
        return who.name in info.holders
    return who.role == "coordinator"
