"""The Python client SDK for analysts (the CLI is a thin layer over it).

Results are opened here, on the analyst's machine: every party's sealed share
is decrypted with the analyst's key and the shares are interpolated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, TypeVar

import grpc

from ensnif_mpc.config import ClientProfile
from ensnif_mpc.errors import CryptoError, from_rpc_error
from ensnif_mpc.gen.ensnif.v1 import common_pb2 as pb, coordinator_pb2 as cpb, coordinator_pb2_grpc
from ensnif_mpc.jobs.jobspec import JobSpec
from ensnif_mpc.jobs.jobstate import JobState
from ensnif_mpc.results import delivery, shares
from ensnif_mpc.rpc import convert
from ensnif_mpc.security import sealing
from ensnif_mpc.security.tls import secure_channel
from protocols import registry

T = TypeVar("T")


class Client:
    def __init__(self, profile: ClientProfile, timeout_s: float = 30.0) -> None:
        self.profile = profile
        self.timeout_s = timeout_s
        self._channel = secure_channel(profile.coordinator, profile.tls, profile.coordinator_name)
        self._stub = coordinator_pb2_grpc.CoordinatorServiceStub(self._channel)

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

    # -- jobs ----------------------------------------------------------------
    def submit(self, spec: JobSpec, fresh: bool = False) -> pb.Job:
        """Sign the job with this analyst's consortium key and submit it.

        ``fresh``: compute again (and spend budget) even if the coordinator could answer
        the same DP question from an earlier result (``Job.cached_from``)."""
        from ensnif_mpc.jobs import jobspec

        signed = jobspec.sign(
            spec, self.profile.tls.key.read_bytes(), registry.get(spec.protocol).version
        )
        resp: cpb.SubmitJobResponse = self._call(
            self._stub.SubmitJob,
            cpb.SubmitJobRequest(spec=convert.spec_to_pb(signed), fresh=fresh),
        )
        return resp.job

    def job(self, job_id: str) -> pb.Job:
        resp: cpb.GetJobResponse = self._call(self._stub.GetJob, cpb.GetJobRequest(job_id=job_id))
        return resp.job

    def jobs(self, limit: int = 50) -> list[pb.Job]:
        return list(self._call(self._stub.ListJobs, cpb.ListJobsRequest(limit=limit)).jobs)

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
        last = self.job(job_id)
        for job in self.watch(job_id, timeout_s):
            last = job
            if on_update:
                on_update(job)
        return last

    def result(self, job_id: str) -> dict[str, Fraction | float]:
        """Fetch, unseal and combine the result shares; exact values as fractions.

        The protocol's last step (e.g. NaN for the mean of an empty selection) runs here.
        """
        return self.result_details(job_id).values

    def _answering_job(self, job: pb.Job) -> str:
        """The id whose shares answer ``job``: its own, or a cached earlier job's, which
        must be this analyst's and ask the same question with the same release."""
        if not job.cached_from:
            return job.id
        from ensnif_mpc.jobs import approvals

        earlier = self.job(job.cached_from)
        now, then = convert.spec_from_pb(job.spec), convert.spec_from_pb(earlier.spec)
        version = registry.get(now.protocol).version
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
        spec = convert.spec_from_pb(job.spec)
        expected = approvals.job_hash(spec, registry.get(spec.protocol).version, job.id)
        out = []
        for a in job.approvals:
            d = approvals.Decision(
                a.job_id, a.decision, a.approver, a.at, a.job_hash, a.signature_hex, a.reason
            )
            try:
                if a.job_id != job.id or a.job_hash != expected:
                    raise CryptoError("the approval is for another job")
                approvals.verify(d, certs.get(a.party, ""), ca, a.party)
            except CryptoError as exc:
                out.append((a, f"NOT VERIFIED: {exc.message}"))
            else:
                out.append((a, "verified"))
        return out

    def result_details(self, job_id: str) -> Result:
        """The result and, for a DP release, each output's noise standard deviation."""
        job = self.job(job_id)
        resp = self._call(self._stub.GetResult, cpb.GetResultRequest(job_id=job_id))
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
        parts = []
        for s in resp.shares:
            delivery.verify_share(ca, source, s.party, s.blob, s.signature, s.party_certificate_pem)
            part = shares.PartyShares.from_bytes(sealing.unseal(key, s.blob, source.encode()))
            if part.x != expected.index(s.party) + 1:
                raise CryptoError(f"the share of {s.party!r} is for another party index")
            parts.append(part)
        values = registry.finalize(job.spec.protocol, shares.combine(parts))
        privacy = json.loads(job.spec.privacy_json) if job.spec.privacy_json else {}
        noisy = [o for o in parts[0].outputs if o.noise_sd]
        grid = {o.name: 1 / ((1 << o.frac_bits) * 10**o.decimals) for o in noisy}
        mechanism = str(privacy.get("mechanism", "gaussian"))
        return Result(values, noise_scales(parts, values), mechanism, grid)


@dataclass(frozen=True)
class Result:
    values: dict[str, Fraction | float]
    # Standard deviation of the DP noise per output, in the output's unit (absent: exact).
    noise_sd: dict[str, float]
    # The DP mechanism ("gaussian" or "laplace"), which decides the intervals' quantiles.
    mechanism: str = "gaussian"
    # The integer grid step of each opened noisy output, in the output's unit.
    grid: dict[str, float] = field(default_factory=dict)

    def interval(self, name: str, confidence: float = 0.95) -> float:
        """Half-width of the confidence interval of an output's noise (0 for an exact one).

        Gaussian: z·sd (normal approximation of the summed shares). Laplace: the exact
        quantile of the discrete Laplace on the output's grid (its q follows from the sd,
        Var = 2q/(1 − q)²); for an output derived by the client (a mean) the continuous
        Laplace quantile sd·ln(1/(1 − confidence))/√2, an approximation.
        """
        import math
        from statistics import NormalDist

        from ensnif_mpc.privacy import dlaplace

        sd = self.noise_sd.get(name, 0.0)
        if not sd:
            return 0.0
        if self.mechanism != "laplace":
            return NormalDist().inv_cdf(0.5 + confidence / 2) * sd
        step = self.grid.get(name)
        if step:
            return dlaplace.half_width(dlaplace.q_from_sd(sd / step), confidence) * step
        return sd * math.log(1 / (1 - confidence)) / math.sqrt(2)


def noise_scales(
    parts: list[shares.PartyShares], values: dict[str, Fraction | float]
) -> dict[str, float]:
    """Noise sd per opened output on its value scale; a mean from noisy (sum, count) by the
    delta method, sd ≈ sqrt(sd_sum² + mean²·sd_count²) / count."""
    out = {
        o.name: o.noise_sd / ((1 << o.frac_bits) * 10**o.decimals)
        for o in parts[0].outputs
        if o.noise_sd
    }
    for name in values:
        if not name.startswith("mean"):
            continue
        suffix = name[len("mean") :]  # "" or "[<group>]"
        s, c = f"sum{suffix}", f"count{suffix}"
        if s in out and c in out:
            count, mean = float(values[c]), float(values[name])
            if count > 0:
                out[name] = (out[s] ** 2 + mean**2 * out[c] ** 2) ** 0.5 / count
    return out


def state_name(job: pb.Job) -> str:
    return convert.state_from_pb(job.state).value


def is_final(job: pb.Job) -> bool:
    return convert.state_from_pb(job.state).final


__all__ = ["Client", "JobState", "Result", "state_name", "is_final"]
