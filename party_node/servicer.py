"""PartyService: proto in, domain call, proto out (every message filtered by the node's
:class:`~party_node.disclosure.Disclosure` on its way out)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from ensnif_mpc import __version__
from ensnif_mpc.gen.ensnif.v1 import (
    common_pb2 as pb,
    party_pb2 as ppb,
    party_pb2_grpc,
    scoring_pb2 as spb,
)
from ensnif_mpc.rpc import convert, pacing
from ensnif_mpc.security.mpc_session import PeerBinding
from ensnif_mpc.security.tls import peer_identity
from party_node import scoring_rpc
from party_node.admission import Proposal, release_from_json
from party_node.disclosure import Disclosure
from party_node.models import ModelRegistry
from party_node.node import Node
from party_node.scoring import Scorer
from party_node.states import NODE_LIVE, REFUSED, NodeState
from party_node.store import NodeJob


def status_to_pb(job: NodeJob, disclosure: Disclosure) -> ppb.NodeJobStatus:
    """A job's status as it leaves the node (its reason and message filtered)."""
    p = job.progress
    return ppb.NodeJobStatus(
        job_id=job.job_id,
        state=job.state,
        reason=disclosure.message(job.reason, job.reason_code),
        reason_code=job.reason_code,
        progress=pb.Progress(
            phase=str(p.get("phase", "")),
            fraction=float(p.get("fraction", 0.0)),
            message=disclosure.message(str(p.get("message", "")), job.reason_code),
            bytes_sent=int(p.get("bytes_sent", 0)),
            messages_sent=int(p.get("messages_sent", 0)),
            rounds=int(p.get("rounds", 0)),
            cpu_seconds=float(p.get("cpu_seconds", 0.0)),
        ),
        sealed_share=job.sealed_share if job.state == NodeState.SUCCEEDED else b"",
        share_signature=bytes.fromhex(job.data.get("share_signature", ""))
        if job.state == NodeState.SUCCEEDED
        else b"",
    )


class PartyServicer(party_pb2_grpc.PartyServiceServicer):
    def __init__(self, node: Node, watch_poll_s: float = 2.0) -> None:
        self.node = node
        self.watch_poll_s = watch_poll_s
        self.scorer = Scorer(
            node.cfg.name,
            node.store,
            ModelRegistry(node.cfg.state_dir),
            node.ca_pem,
            lambda: node.key_pem,
            node.check_coordinator,
            n_threads=node.cfg.tenseal_threads,
        )

    def Propose(
        self, request: ppb.ProposeRequest, context: grpc.ServicerContext
    ) -> ppb.ProposeResponse:
        with self.node.disclosure.grpc_errors(context, "Propose"):
            caller = peer_identity(context)
            self.node.check_coordinator(caller)  # authorize before reading the request
            job = self.node.propose(
                caller,
                Proposal(
                    job_id=request.job_id,
                    spec=convert.spec_from_pb(request.spec),
                    party_index=request.party_index,
                    party_order=list(request.party_order),
                    analyst_cert_pem=request.analyst_certificate_pem,
                    bit_length=request.bit_length,
                    decimals=request.decimals,
                    release=release_from_json(request.release_json),
                ),
            )
            approval = self._approval(job.job_id)
            if job.state in REFUSED:
                return ppb.ProposeResponse(
                    decision=ppb.DECISION_REJECTED,
                    reason=self.node.disclosure.message(job.reason, job.reason_code),
                    reason_code=job.reason_code,
                    approval=approval,
                )
            if job.state == NodeState.AWAITING_APPROVAL:
                return ppb.ProposeResponse(
                    decision=ppb.DECISION_NEEDS_MANUAL,
                    reason=f"awaiting approval by the administrator of {self.node.cfg.name} "
                    f"(`ensnif job approve {job.job_id}` at that node)",
                    reason_code="awaiting_approval",
                )
            return ppb.ProposeResponse(
                decision=ppb.DECISION_APPROVED,
                mpc_address=f"{self.node.cfg.mpc_host}:{job.mpc_port}",
                mpc_certificate_pem=job.data.get("mpc_cert", ""),
                binding_signature=bytes.fromhex(job.data.get("binding_signature", "")),
                approval=approval,
                parallel_sessions=self.node.supervisor.offer_for(job),
            )
        raise AssertionError  # unreachable: grpc_errors aborts

    def _approval(self, job_id: str) -> pb.Approval | None:
        d = self.node.store.approval(job_id)
        if d is None:
            return None
        return pb.Approval(
            party=self.node.cfg.name,
            job_id=d.job_id,
            decision=d.decision,
            approver=d.approver,
            at=d.at,
            job_hash=d.job_hash,
            signature_hex=d.signature,
            reason=d.reason,
        )

    def Start(self, request: ppb.StartRequest, context: grpc.ServicerContext) -> ppb.StartResponse:
        with self.node.disclosure.grpc_errors(context, "Start"):
            caller = peer_identity(context)
            self.node.check_coordinator(caller)
            peers = [
                PeerBinding(
                    p.index,
                    p.party,
                    p.mpc_address,
                    p.mpc_certificate_pem,
                    p.binding_signature,
                    p.party_certificate_pem,
                    p.host,
                )
                for p in request.peers
            ]
            job = self.node.start(
                caller, request.job_id, peers, request.threshold, max(1, request.sessions)
            )
            return ppb.StartResponse(state=job.state)
        raise AssertionError

    def Status(
        self, request: ppb.StatusRequest, context: grpc.ServicerContext
    ) -> ppb.StatusResponse:
        with self.node.disclosure.grpc_errors(context, "Status"):
            self.node.check_coordinator(peer_identity(context))
            return ppb.StatusResponse(
                status=status_to_pb(self.node.store.get(request.job_id), self.node.disclosure)
            )
        raise AssertionError

    def Watch(
        self, request: ppb.WatchRequest, context: grpc.ServicerContext
    ) -> Iterator[ppb.WatchResponse]:
        with self.node.disclosure.grpc_errors(context, "Watch"):
            self.node.check_coordinator(peer_identity(context))
            job = self.node.store.get(request.job_id)
            tick = [0]

            def wait(timeout: float) -> None:
                tick[0] = self.node.hub.wait(job.job_id, tick[0], timeout)

            # A state change at once, progress alone at most every 50 ms (pacing says why).
            for update in pacing.paced(
                job,
                lambda: self.node.store.get(job.job_id),
                wait,
                state=lambda j: j.state,
                final=lambda j: j.state not in NODE_LIVE,
                active=context.is_active,
                poll_s=self.watch_poll_s,
            ):
                yield ppb.WatchResponse(status=status_to_pb(update, self.node.disclosure))

    def Abort(self, request: ppb.AbortRequest, context: grpc.ServicerContext) -> ppb.AbortResponse:
        with self.node.disclosure.grpc_errors(context, "Abort"):
            job = self.node.abort(peer_identity(context), request.job_id, request.reason)
            return ppb.AbortResponse(state=job.state)
        raise AssertionError

    def Health(
        self, request: ppb.HealthRequest, context: grpc.ServicerContext
    ) -> ppb.HealthResponse:
        with self.node.disclosure.grpc_errors(context, "Health"):
            peer_identity(context)
            return ppb.HealthResponse(
                party=self.node.cfg.name, running_jobs=self.node.running_jobs(), version=__version__
            )
        raise AssertionError

    def ListModels(
        self, request: spb.ListModelsRequest, context: grpc.ServicerContext
    ) -> spb.ListModelsResponse:
        with self.node.disclosure.grpc_errors(context, "ListModels"):
            self.node.check_coordinator(peer_identity(context))
            models = [scoring_rpc.model_info(m) for m in self.scorer.models()]
            return spb.ListModelsResponse(models=models)
        raise AssertionError

    def ListArtifacts(
        self, request: pb.ListArtifactsRequest, context: grpc.ServicerContext
    ) -> pb.ListArtifactsResponse:
        with self.node.disclosure.grpc_errors(context, "ListArtifacts"):
            held = self.node.list_artifacts(peer_identity(context))
            return pb.ListArtifactsResponse(artifacts=[artifact_info(m, a) for m, a in held])
        raise AssertionError

    def DeleteArtifact(
        self, request: pb.DeleteArtifactRequest, context: grpc.ServicerContext
    ) -> pb.DeleteArtifactResponse:
        with self.node.disclosure.grpc_errors(context, "DeleteArtifact"):
            caller = peer_identity(context)
            deleted = self.node.delete_artifact(caller, request.id, request.requested_by)
            return pb.DeleteArtifactResponse(deleted_at=[self.node.cfg.name] if deleted else [])
        raise AssertionError

    def Score(
        self, request_iterator: Iterator[spb.ScoreRequest], context: grpc.ServicerContext
    ) -> Iterator[spb.ScoreResponse]:
        with self.node.disclosure.grpc_errors(context, "Score"):
            caller = peer_identity(context)
            header = scoring_rpc.header(request_iterator)
            parts = scoring_rpc.parts(request_iterator)
            for out in self.scorer.run(caller, header, parts):
                yield scoring_rpc.response(out)


def artifact_info(meta: dict[str, Any], analyst: str) -> pb.ArtifactInfo:
    """An artifact's description for the coordinator (ArtifactShare.metadata: no shares)."""
    return pb.ArtifactInfo(
        id=meta["artifact_id"],
        name=meta["name"],
        job_id=meta["job_id"],
        protocol=meta["protocol"],
        shape=list(meta["shape"]),
        kind=meta["kind"],
        bit_length=meta["bit_length"],
        frac_bits=meta["frac_bits"],
        owners=list(meta["owners"]),
        parties=list(meta["parties"]),
        analyst=analyst,
        created_at=meta.get("created_at", ""),
    )
