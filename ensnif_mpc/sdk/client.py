"""The Python client SDK for analysts (the CLI is a thin layer over it).

Results are opened here, on the analyst's machine: every party's sealed share
is decrypted with the analyst's key and the shares are interpolated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from ensnif_mpc.config import ClientProfile
from ensnif_mpc.errors import CryptoError, EnsnifError, from_rpc_error
from ensnif_mpc.gen.ensnif.v1 import (
    common_pb2 as pb,
    coordinator_pb2 as cpb,
    coordinator_pb2_grpc,
    scoring_pb2 as spb,
)
from ensnif_mpc.jobs.jobspec import JobSpec
from ensnif_mpc.jobs.jobstate import JobState
from ensnif_mpc.results import delivery, envelope, shares
from ensnif_mpc.rpc import convert
from ensnif_mpc.sdk import result as result_module
from ensnif_mpc.sdk.intervals import Bounds, Interval
from ensnif_mpc.sdk.noise import NoiseLaw
from ensnif_mpc.sdk.result import Result
from ensnif_mpc.security import sealing
from ensnif_mpc.security.pki import identity_of, parse_cert
from ensnif_mpc.security.tls import secure_channel
from protocols import registry

if TYPE_CHECKING:
    from ensnif_mpc.sdk.models import TrainedModel
    from ensnif_mpc.sdk.scoring import Scores

T = TypeVar("T")
SCORE_TIMEOUT_S = 3600.0  # a scoring stream of many batches


class Client:
    """``interceptors``: gRPC client interceptors every call passes through (e.g. the
    benchmarks' round-trip counter, bench/fixed_cost.py)."""

    def __init__(
        self, profile: ClientProfile, timeout_s: float = 30.0, interceptors: Sequence[Any] = ()
    ) -> None:
        self.profile = profile
        self.timeout_s = timeout_s
        self._channel = secure_channel(profile.coordinator, profile.tls, profile.coordinator_name)
        calls = grpc.intercept_channel(self._channel, *interceptors) if interceptors else None
        self._stub = coordinator_pb2_grpc.CoordinatorServiceStub(calls or self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, fn: Callable[..., T], request: Any) -> T:
        try:
            return fn(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def _send(self, fn: Any, request: Any) -> grpc.Future:
        """Start a call without waiting for it (several then share one round trip)."""
        future: grpc.Future = fn.future(request, timeout=self.timeout_s)
        return future

    @staticmethod
    def _answer(future: grpc.Future) -> Any:
        try:
            return future.result()
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    # -- catalog -------------------------------------------------------------
    def parties(self) -> list[pb.Party]:
        return list(self._call(self._stub.ListParties, cpb.ListPartiesRequest()).parties)

    def datasets(self, party: str = "") -> list[pb.Dataset]:
        return list(
            self._call(self._stub.ListDatasets, cpb.ListDatasetsRequest(party=party)).datasets
        )

    def protocols(self) -> list[pb.ProtocolInfo]:
        return list(self._call(self._stub.ListProtocols, cpb.ListProtocolsRequest()).protocols)

    def describe(self, name: str) -> pb.ProtocolInfo:
        resp: cpb.DescribeProtocolResponse = self._call(
            self._stub.DescribeProtocol, cpb.DescribeProtocolRequest(name=name)
        )
        return resp.protocol

    # -- encrypted scoring (ensnif_mpc/sdk/scoring.py) ------------------------
    def models(self, party: str = "") -> list[spb.ModelInfo]:
        """The models members registered for encrypted scoring (never their weights)."""
        resp: spb.ListModelsResponse = self._call(
            self._stub.ListModels, spb.ListModelsRequest(party=party)
        )
        return list(resp.models)

    def score(
        self,
        model: str,
        rows: Any,
        party: str = "",
        key_dir: Path | None = None,
        n_threads: int = 1,
    ) -> Scores:
        """Encrypt ``rows`` (n × features) under this analyst's CKKS key, have the model's
        owner evaluate ``model`` on them, decrypt the scores here."""
        from ensnif_mpc.sdk import scoring  # TenSEAL, only when scoring

        return scoring.score(self, model, rows, party, key_dir, n_threads)

    def score_stream(
        self, requests: Iterator[spb.ScoreRequest]
    ) -> Generator[spb.ScoreResponse, None, None]:
        """The raw scoring stream (scoring.score builds and checks it)."""
        try:
            yield from self._stub.Score(requests, timeout=SCORE_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    # -- jobs ----------------------------------------------------------------
    def submit(self, spec: JobSpec, fresh: bool = False) -> pb.Job:
        """Sign the job with this analyst's consortium key and submit it.

        ``fresh``: compute again (and spend budget) even if the coordinator could answer
        the same DP question from an earlier result (``Job.cached_from``)."""
        from ensnif_mpc.jobs import jobspec

        signed = jobspec.sign(
            spec, self.profile.tls.key.read_bytes(), registry.for_spec(spec).version
        )
        resp: cpb.SubmitJobResponse = self._call(
            self._stub.SubmitJob,
            cpb.SubmitJobRequest(spec=convert.spec_to_pb(signed), fresh=fresh),
        )
        return resp.job

    def job(self, job_id: str) -> pb.Job:
        resp: cpb.GetJobResponse = self._call(self._stub.GetJob, cpb.GetJobRequest(job_id=job_id))
        return resp.job

    def jobs(self, limit: int = 50, states: Iterable[JobState] = ()) -> list[pb.Job]:
        """The latest jobs this caller may see; only those in ``states`` if given."""
        request = cpb.ListJobsRequest(limit=limit, states=[convert.state_to_pb(s) for s in states])
        return list(self._call(self._stub.ListJobs, request).jobs)

    def cancel(self, job_id: str) -> pb.Job:
        resp: cpb.CancelJobResponse = self._call(
            self._stub.CancelJob, cpb.CancelJobRequest(job_id=job_id)
        )
        return resp.job

    def watch(self, job_id: str, timeout_s: float | None = None) -> Iterator[pb.Job]:
        """Yield the job at every change until it reaches a final state."""
        try:
            for msg in self._stub.WatchJob(cpb.WatchJobRequest(job_id=job_id), timeout=timeout_s):
                yield msg.job
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def wait(
        self,
        job_id: str,
        on_update: Callable[[pb.Job], None] | None = None,
        timeout_s: float | None = None,
    ) -> pb.Job:
        # WatchJob sends the job as it is first, so no GetJob before it (a round trip less).
        last: pb.Job | None = None
        for job in self.watch(job_id, timeout_s):
            last = job
            if on_update:
                on_update(job)
        return last if last is not None else self.job(job_id)

    # -- artifacts -----------------------------------------------------------
    def artifacts(self) -> list[pb.ArtifactInfo]:
        """The artifacts this caller may see (an analyst: those she produced), as every
        node that holds a share describes them (never the shares)."""
        resp = self._call(self._stub.ListArtifacts, pb.ListArtifactsRequest())
        return list(resp.artifacts)

    def delete_artifact(self, artifact_id: str) -> list[str]:
        """Delete an artifact this analyst produced at every node; the members that did."""
        resp = self._call(self._stub.DeleteArtifact, pb.DeleteArtifactRequest(id=artifact_id))
        return list(resp.deleted_at)

    def result(self, job_id: str, exact: bool = False, job: pb.Job | None = None) -> dict[str, Any]:
        """Fetch, unseal and combine the result shares: every output as a float (NaN where
        undefined), or as an exact fraction with ``exact=True``. Post-processed to the
        columns' declared bounds for a DP release (see :class:`Result`). ``job``: the
        job as :meth:`wait` returned it, which saves asking for it again."""
        details = self.result_details(job_id, job)
        return dict(details.exact_values) if exact else details.values

    def _answering_job(self, job: pb.Job) -> str:
        """The id whose shares answer ``job``: its own, or a cached earlier job's, which
        must be this analyst's and ask the same question with the same release."""
        if not job.cached_from:
            return job.id
        from ensnif_mpc.jobs import approvals

        earlier = self.job(job.cached_from)
        now, then = convert.spec_from_pb(job.spec), convert.spec_from_pb(earlier.spec)
        version = registry.for_spec(now).version
        if (
            earlier.submitter != job.submitter
            or list(earlier.party_order) != list(job.party_order)
            or approvals.question_key(now, version, job.submitter)
            != approvals.question_key(then, version, earlier.submitter)
        ):
            raise CryptoError(
                f"job {job.id} claims the answer of job {earlier.id}, which asked another question"
            )
        return earlier.id

    def check_approvals(self, job: pb.Job) -> list[tuple[pb.Approval, str]]:
        """Each owner's approval of ``job`` with "verified" or why it does not verify:
        signed by that party's CA-issued key, over this exact job's hash."""
        from ensnif_mpc.jobs import approvals

        if not job.approvals:
            return []
        ca = self.profile.tls.ca.read_bytes()
        certs = {p.name: p.certificate_pem for p in self.parties()}
        # A cached answer carries the approvals of the job that computed it: they are checked
        # against that job (which must ask the same question), and said to be its.
        source = job if not job.cached_from else self.job(self._answering_job(job))
        spec = convert.spec_from_pb(source.spec)
        expected = approvals.job_hash(spec, registry.for_spec(spec).version, source.id)
        verified = "verified" if source is job else f"verified (cached answer: job {source.id}'s)"
        out = []
        for a in job.approvals:
            d = approvals.Decision(
                a.job_id, a.decision, a.approver, a.at, a.job_hash, a.signature_hex, a.reason
            )
            try:
                if a.job_id != source.id or a.job_hash != expected:
                    raise CryptoError("the approval is for another job")
                approvals.verify(d, certs.get(a.party, ""), ca, a.party)
            except CryptoError as exc:
                out.append((a, f"NOT VERIFIED: {exc.message}"))
            else:
                out.append((a, verified))
        return out

    def model(self, job_id: str) -> TrainedModel:
        """The model a training job released (``Result.model`` with the job's ridge):
        coefficients as numpy arrays and ``to_sklearn()``."""
        spec = convert.spec_from_pb(self.job(job_id).spec)
        ridge = (
            float(spec.params.get("ridge", 0.0)) if spec.protocol == "linear_regression" else 0.0
        )
        return self.result_details(job_id).model(ridge=ridge)

    def result_details(self, job_id: str, job: pb.Job | None = None) -> Result:
        """The result and, for a DP release, each output's noise standard deviation.

        The calls it needs (the job unless given, the shares, the parties and the catalog)
        go out together: one round trip to the coordinator, not four."""
        asked_job = (
            None
            if job is not None
            else self._send(self._stub.GetJob, cpb.GetJobRequest(job_id=job_id))
        )
        asked_result = self._send(self._stub.GetResult, cpb.GetResultRequest(job_id=job_id))
        asked_parties = self._send(self._stub.ListParties, cpb.ListPartiesRequest())
        asked_datasets = self._send(self._stub.ListDatasets, cpb.ListDatasetsRequest())
        if asked_job is not None:
            job = self._answer(asked_job).job
        assert job is not None
        resp = self._answer(asked_result)
        # Shares are sealed and signed for the job that computed them: this one, or the
        # earlier job that answered the same question (checked, not taken on trust).
        source = self._answering_job(job)
        key = self.profile.tls.key.read_bytes()
        ca = self.profile.tls.ca.read_bytes()
        expected = list(job.party_order)
        delivered = sorted(s.party for s in resp.shares)
        if delivered != sorted(expected):
            raise CryptoError(
                f"job {job_id} ran with {', '.join(expected)} but shares came from "
                f"{', '.join(delivered) or 'nobody'}"
            )
        # An analyst opens the analyst's part of each share; a member (a party's certificate)
        # the part its protocol opened to that member, if any (ensnif_mpc.results.envelope).
        me = identity_of(parse_cert(self.profile.tls.cert.read_bytes()))
        recipient = envelope.member(me.name) if me.role == "party" else envelope.ANALYST
        parts = []
        # An outsourced dataset's owner runs no node: the catalog names the node playing it.
        nodes = {p.name for p in self._answer(asked_parties).parties}
        hosted = [s.party for s in resp.shares if s.party not in nodes]
        try:
            catalog: list[pb.Dataset] | None = list(self._answer(asked_datasets).datasets)
        except EnsnifError:
            if hosted:
                raise
            catalog = None  # only the declared bounds are lost (see _declared)
        hosts = {d.party: d.host for d in catalog or [] if d.host} if hosted else {}
        for s in resp.shares:
            delivery.verify_share(
                ca,
                source,
                s.party,
                s.blob,
                s.signature,
                s.party_certificate_pem,
                hosts.get(s.party, ""),
            )
            sealed = envelope.part_for(s.blob, recipient)
            if sealed is None:
                raise CryptoError(f"job {job_id} opened nothing to {me.name!r}")
            aad = envelope.associated(source, recipient)
            part = shares.PartyShares.from_bytes(sealing.unseal(key, sealed, aad))
            if part.x != expected.index(s.party) + 1:
                raise CryptoError(f"the share of {s.party!r} is for another party index")
            parts.append(part)
        privacy = json.loads(job.spec.privacy_json) if job.spec.privacy_json else {}
        mechanism = str(privacy.get("mechanism", "gaussian"))
        laws = {
            o.name: NoiseLaw(
                o.noise_sd / ((1 << o.frac_bits) * 10**o.decimals),
                1 / ((1 << o.frac_bits) * 10**o.decimals),
                mechanism,
                len(expected),
            )
            for o in parts[0].outputs
            if o.noise_sd
        }
        spec = convert.spec_from_pb(job.spec)
        bounds, decimals = self._declared(spec, catalog)
        return result_module.build(
            shares.combine(parts),
            spec.protocol,
            laws,
            job_id=job.id,
            mechanism=mechanism,
            bounds=bounds,
            decimals=decimals,
            group_column=_group_column(spec),
            cached_from=job.cached_from,
        )

    @staticmethod
    def _declared(
        spec: JobSpec, datasets: list[pb.Dataset] | None
    ) -> tuple[Bounds | None, int | None]:
        """The declared [lower, upper] and decimals of the job's value columns, from the
        catalog (ListDatasets publishes them); (None, None) when it cannot say."""
        if datasets is None:
            return None, None
        catalog = {(d.party, d.name): d for d in datasets}
        lows, highs, decimals = [], [], []
        for i in spec.inputs:
            if not i.column or (i.party, i.dataset) not in catalog:
                continue
            for c in catalog[(i.party, i.dataset)].columns:
                if c.name == i.column:
                    lows.append(c.lower)
                    highs.append(c.upper)
                    decimals.append(c.decimals if c.type == pb.COLUMN_TYPE_FLOAT else 0)
        if not lows:
            return None, None
        return Bounds(min(lows), max(highs)), max(decimals)


def _group_column(spec: JobSpec) -> str:
    """The label column's name in a table of this job's outputs."""
    if spec.protocol == "histogram":
        return "bin"
    for i in spec.inputs:
        for role, column in i.roles:
            if role == "group":
                return column
    return "group"


def state_name(job: pb.Job) -> str:
    return convert.state_from_pb(job.state).value


def is_final(job: pb.Job) -> bool:
    return convert.state_from_pb(job.state).final


__all__ = ["Client", "Interval", "JobState", "Result", "state_name", "is_final"]
