"""CoordinatorService: proto in, domain call, proto out."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc

from coordinator.artifacts import ArtifactDirectory
from coordinator.handlers import Coordinator
from coordinator.outsourced import EntrustmentProof
from coordinator.relay import ScoreRelay
from coordinator.store import JobRecord, PartyRecord
from ensnif_mpc.errors import grpc_errors
from ensnif_mpc.gen.ensnif.v1 import (
    common_pb2 as pb,
    coordinator_pb2 as cpb,
    coordinator_pb2_grpc,
    scoring_pb2 as spb,
)
from ensnif_mpc.rpc import convert, pacing
from ensnif_mpc.rpc.hub import Hub
from ensnif_mpc.security.tls import peer_certificate_pem, peer_identity
from protocols import registry


def job_to_pb(job: JobRecord) -> pb.Job:
    parties = [
        pb.PartyProgress(
            party=name,
            state=str(p.get("state", "")),
            progress=pb.Progress(
                phase=str(p.get("phase", "")),
                fraction=float(p.get("fraction", 0)),
                message=str(p.get("message", "")),
                bytes_sent=int(p.get("bytes_sent", 0)),
                messages_sent=int(p.get("messages_sent", 0)),
                rounds=int(p.get("rounds", 0)),
                cpu_seconds=float(p.get("cpu_seconds", 0.0)),
            ),
            reason=str(p.get("reason", "")),
        )
        for name, p in sorted(job.progress.items())
    ]
    return pb.Job(
        id=job.id,
        spec=convert.spec_to_pb(job.spec),
        state=convert.state_to_pb(job.state),
        submitter=job.submitter,
        reason=job.reason,
        reason_code=job.reason_code,
        parties=parties,
        created_at=job.created_at.isoformat(),
        updated_at=job.updated_at.isoformat(),
        party_order=list(job.session.get("party_order", [])),
        approvals=[pb.Approval(**a) for a in job.session.get("approvals", [])],
        cached_from=str(job.session.get("cached_from", "")),
    )


def party_to_pb(p: PartyRecord, kind: str | None) -> pb.Party:
    return pb.Party(
        name=p.name,
        role=kind or "compute",
        address=p.address,
        certificate_pem=p.certificate_pem,
        last_seen=p.last_seen.isoformat(),
        mpc_host=p.mpc_host,
        mpc_port_first=p.mpc_ports[0],
        mpc_port_last=p.mpc_ports[1],
    )


def protocol_to_pb(d: registry.ProtocolDef) -> pb.ProtocolInfo:
    import json

    return pb.ProtocolInfo(
        name=d.name,
        family=d.family,
        summary=d.summary,
        inputs=d.inputs,
        parameters=[
            pb.ProtocolParameter(
                name=p.name,
                type=p.type,
                required=p.required,
                description=p.description,
                default_json=json.dumps(p.default),
            )
            for p in d.parameters
        ],
        outputs=list(d.outputs),
        leakage=d.leakage,
        min_data_owners=d.min_data_owners,
        max_data_owners=d.max_data_owners or 0,
        dp_release=d.dp_sensitivity is not None,
        version=d.version,
        input_roles=[
            pb.ProtocolInputRoles(
                roles=[
                    pb.ProtocolRole(
                        name=r.name,
                        column_types=sorted(r.types),
                        required=r.required,
                        description=r.description,
                        many=r.many,
                        min_columns=r.min_columns,
                        max_columns=r.max_columns,
                    )
                    for r in position
                ]
            )
            for position in d.roles
        ],
    )


# WatchJob's pacing of progress alone (ensnif_mpc.rpc.pacing says why).
WATCH_PROGRESS_EVERY_S = pacing.EVERY_S


class CoordinatorServicer(coordinator_pb2_grpc.CoordinatorServiceServicer):
    def __init__(
        self,
        coordinator: Coordinator,
        hub: Hub,
        watch_poll_s: float = 2.0,
        progress_every_s: float = WATCH_PROGRESS_EVERY_S,
    ) -> None:
        self.c = coordinator
        self.hub = hub
        self.watch_poll_s = watch_poll_s
        self.progress_every_s = progress_every_s
        self.relay = ScoreRelay(coordinator.store, coordinator.scheduler.nodes)
        self.artifacts = ArtifactDirectory(coordinator.store, coordinator.scheduler.nodes)

    def RegisterParty(
        self, request: cpb.RegisterPartyRequest, context: grpc.ServicerContext
    ) -> cpb.RegisterPartyResponse:
        with grpc_errors(context, "RegisterParty"):
            rec = self.c.register_party(
                peer_identity(context),
                request.address,
                peer_certificate_pem(context),
                request.mpc_host,
                (request.mpc_port_first, request.mpc_port_last),
            )
            return cpb.RegisterPartyResponse(party=party_to_pb(rec, self.c.party_kind(rec.name)))
        raise AssertionError  # unreachable: grpc_errors aborts

    def ListParties(
        self, request: cpb.ListPartiesRequest, context: grpc.ServicerContext
    ) -> cpb.ListPartiesResponse:
        with grpc_errors(context, "ListParties"):
            peer_identity(context)
            parties = [
                party_to_pb(p, self.c.party_kind(p.name)) for p in self.c.store.list_parties()
            ]
            return cpb.ListPartiesResponse(
                parties=parties, server_time_unix_ms=time.time_ns() // 1_000_000
            )
        raise AssertionError

    def PublishDataset(
        self, request: cpb.PublishDatasetRequest, context: grpc.ServicerContext
    ) -> cpb.PublishDatasetResponse:
        with grpc_errors(context, "PublishDataset"):
            proof = None
            if request.manifest or request.dataset.host:
                proof = EntrustmentProof(
                    request.manifest, request.manifest_signature, request.owner_cert_pem
                )
            ds = self.c.publish_dataset(
                peer_identity(context), convert.dataset_from_pb(request.dataset), proof
            )
            return cpb.PublishDatasetResponse(dataset=convert.dataset_to_pb(ds))
        raise AssertionError

    def ListDatasets(
        self, request: cpb.ListDatasetsRequest, context: grpc.ServicerContext
    ) -> cpb.ListDatasetsResponse:
        with grpc_errors(context, "ListDatasets"):
            peer_identity(context)
            return cpb.ListDatasetsResponse(
                datasets=[
                    convert.dataset_to_pb(d) for d in self.c.store.list_datasets(request.party)
                ]
            )
        raise AssertionError

    def SubmitJob(
        self, request: cpb.SubmitJobRequest, context: grpc.ServicerContext
    ) -> cpb.SubmitJobResponse:
        with grpc_errors(context, "SubmitJob"):
            job = self.c.submit(
                peer_identity(context),
                convert.spec_from_pb(request.spec),
                peer_certificate_pem(context),
                fresh=request.fresh,
            )
            return cpb.SubmitJobResponse(job=job_to_pb(job))
        raise AssertionError

    def GetJob(
        self, request: cpb.GetJobRequest, context: grpc.ServicerContext
    ) -> cpb.GetJobResponse:
        with grpc_errors(context, "GetJob"):
            return cpb.GetJobResponse(
                job=job_to_pb(self.c.job(peer_identity(context), request.job_id))
            )
        raise AssertionError

    def ListJobs(
        self, request: cpb.ListJobsRequest, context: grpc.ServicerContext
    ) -> cpb.ListJobsResponse:
        with grpc_errors(context, "ListJobs"):
            states = frozenset(convert.state_from_pb(s) for s in request.states)
            jobs = self.c.list_jobs(peer_identity(context), request.limit or 100, states)
            return cpb.ListJobsResponse(jobs=[job_to_pb(j) for j in jobs])
        raise AssertionError

    def WatchJob(
        self, request: cpb.WatchJobRequest, context: grpc.ServicerContext
    ) -> Iterator[cpb.WatchJobResponse]:
        with grpc_errors(context, "WatchJob"):
            who = peer_identity(context)
            job = self.c.job(who, request.job_id)
            tick = [0]

            def wait(timeout: float) -> None:
                tick[0] = self.hub.wait(job.id, tick[0], timeout)

            for update in pacing.paced(
                job,
                lambda: self.c.store.get_job(job.id),
                wait,
                state=lambda j: j.state,
                final=lambda j: j.state.final,
                active=context.is_active,
                poll_s=self.watch_poll_s,
                every_s=self.progress_every_s,
            ):
                yield cpb.WatchJobResponse(job=job_to_pb(update))

    def CancelJob(
        self, request: cpb.CancelJobRequest, context: grpc.ServicerContext
    ) -> cpb.CancelJobResponse:
        with grpc_errors(context, "CancelJob"):
            return cpb.CancelJobResponse(
                job=job_to_pb(self.c.cancel(peer_identity(context), request.job_id))
            )
        raise AssertionError

    def GetResult(
        self, request: cpb.GetResultRequest, context: grpc.ServicerContext
    ) -> cpb.GetResultResponse:
        with grpc_errors(context, "GetResult"):
            shares = self.c.result(peer_identity(context), request.job_id)
            return cpb.GetResultResponse(
                job_id=request.job_id,
                shares=[
                    pb.SealedShare(party=p, blob=b, signature=sig, party_certificate_pem=cert)
                    for p, (b, sig, cert) in sorted(shares.items())
                ],
            )
        raise AssertionError

    def ListProtocols(
        self, request: cpb.ListProtocolsRequest, context: grpc.ServicerContext
    ) -> cpb.ListProtocolsResponse:
        with grpc_errors(context, "ListProtocols"):
            return cpb.ListProtocolsResponse(
                protocols=[protocol_to_pb(d) for d in registry.catalog().values()]
            )
        raise AssertionError

    def DescribeProtocol(
        self, request: cpb.DescribeProtocolRequest, context: grpc.ServicerContext
    ) -> cpb.DescribeProtocolResponse:
        with grpc_errors(context, "DescribeProtocol"):
            return cpb.DescribeProtocolResponse(protocol=protocol_to_pb(registry.get(request.name)))
        raise AssertionError

    def ListModels(
        self, request: spb.ListModelsRequest, context: grpc.ServicerContext
    ) -> spb.ListModelsResponse:
        with grpc_errors(context, "ListModels"):
            peer_identity(context)
            return spb.ListModelsResponse(models=self.relay.list_models(request.party))
        raise AssertionError

    def Score(
        self, request_iterator: Iterator[spb.ScoreRequest], context: grpc.ServicerContext
    ) -> Iterator[spb.ScoreResponse]:
        with grpc_errors(context, "Score"):
            yield from self.relay.score(peer_identity(context), request_iterator)

    def ListArtifacts(
        self, request: pb.ListArtifactsRequest, context: grpc.ServicerContext
    ) -> pb.ListArtifactsResponse:
        with grpc_errors(context, "ListArtifacts"):
            held = self.artifacts.listing(peer_identity(context))
            return pb.ListArtifactsResponse(artifacts=held)
        raise AssertionError

    def DeleteArtifact(
        self, request: pb.DeleteArtifactRequest, context: grpc.ServicerContext
    ) -> pb.DeleteArtifactResponse:
        with grpc_errors(context, "DeleteArtifact"):
            deleted = self.artifacts.delete(peer_identity(context), request.id)
            return pb.DeleteArtifactResponse(deleted_at=deleted)
        raise AssertionError
