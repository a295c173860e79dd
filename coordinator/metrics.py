"""The coordinator's Prometheus metrics, read from its store and scheduler at scrape time.

- ``ensnif_coordinator_jobs{state}``: jobs per state (every state, 0 included);
- ``ensnif_coordinator_job_duration_seconds{protocol,state}`` (histogram): ended jobs,
  submission to final state;
- ``ensnif_coordinator_job_mpc_bytes{protocol}`` (histogram): ended jobs, MPC bytes sent
  by all parties together;
- ``ensnif_coordinator_mpc_bytes_sent_total{protocol,party}``: ended jobs, per party;
- ``ensnif_coordinator_live_job_mpc_bytes_sent{job_id,party}``: jobs not ended yet (as
  many as admission lets run);
- ``ensnif_coordinator_job_mpc_rounds{protocol}`` (histogram): ended jobs, the most MPC
  rounds of any party;
- ``ensnif_coordinator_mpc_messages_sent_total{protocol,party}``: ended jobs, per party;
- ``ensnif_coordinator_approvals_pending{party}``: jobs waiting for an administrator;
- ``ensnif_coordinator_admission_waiting``, ``ensnif_coordinator_admission_in_flight{party}``;
- ``ensnif_coordinator_party_certificate_expiry_days{party}``: registered certificates;
- ``ensnif_certificate_expiry_days{certificate}``: its own certificate and CA.

MPC bytes, messages and rounds are what each node's worker reports (``bytes_sent``,
``messages_sent`` and ``rounds`` in its status, counted on MPyC's transport by
protocols/transport_stats.py, relayed into the job's progress).
An ended job is read once and kept (a final job does not change), so a scrape reads only
the jobs that ended since the last one.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coordinator.node_client import NodeJobState
from coordinator.scheduler import Scheduler
from coordinator.store import JobRow, Store
from ensnif_mpc.config import CoordinatorConfig
from ensnif_mpc.db import aware
from ensnif_mpc.errors import CryptoError
from ensnif_mpc.jobs.jobstate import JobState
from ensnif_mpc.rpc import metrics
from ensnif_mpc.security.pki import parse_cert

FINAL = sorted(s.value for s in JobState if s.final)
# Jobs that end within this long of each other may commit out of order: re-read them.
_SLACK = dt.timedelta(minutes=5)


# Rounds per job: a handful for an aggregate, thousands for a sort or a long program.
ROUNDS_BUCKETS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)


@dataclass(frozen=True)
class Ended:
    protocol: str
    state: str
    duration_s: float
    bytes_by_party: dict[str, int]
    messages_by_party: dict[str, int]
    rounds: int  # the most of any party


def by_party(progress: dict[str, object], key: str = "bytes_sent") -> dict[str, int]:
    """What each party reported for a job under ``key`` (its stored progress)."""
    out: dict[str, int] = {}
    for party, entry in progress.items():
        if isinstance(entry, dict):
            out[party] = int(entry.get(key, 0) or 0)
    return out


def bytes_by_party(progress: dict[str, object]) -> dict[str, int]:
    """The MPC bytes each party reported for a job (its stored progress)."""
    return by_party(progress, "bytes_sent")


class CoordinatorCollector(Collector):
    def __init__(self, store: Store, scheduler: Scheduler) -> None:
        self.store = store
        self.scheduler = scheduler
        self._ended: dict[str, Ended] = {}
        self._since: dt.datetime | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        with Session(self.store.engine) as s:
            yield self._jobs_by_state(s)
            ended = self._read_ended(s)
            live = s.execute(
                select(JobRow.id, JobRow.state, JobRow.progress).where(JobRow.state.not_in(FINAL))
            ).all()
        yield from self._ended_families(ended)
        yield metrics.gauge(
            "ensnif_coordinator_live_job_mpc_bytes_sent",
            "MPC bytes sent so far by each party of a job that has not ended",
            ["job_id", "party"],
            (
                ([job_id, party], float(n))
                for job_id, _state, progress in live
                for party, n in sorted(bytes_by_party(dict(progress or {})).items())
            ),
        )
        yield self._approvals(live)
        yield from self._admission()
        yield self._party_certificates()

    def _jobs_by_state(self, s: Session) -> GaugeMetricFamily:
        q = select(JobRow.state, func.count()).group_by(JobRow.state)
        counts = {state: int(n) for state, n in s.execute(q).all()}
        return metrics.gauge(
            "ensnif_coordinator_jobs",
            "Jobs in each state",
            ["state"],
            (([st.value], float(counts.get(st.value, 0))) for st in JobState),
        )

    def _read_ended(self, s: Session) -> list[Ended]:
        with self._lock:
            q = select(
                JobRow.id,
                JobRow.state,
                JobRow.spec,
                JobRow.progress,
                JobRow.created_at,
                JobRow.updated_at,
            ).where(JobRow.state.in_(FINAL))
            if self._since is not None:
                q = q.where(JobRow.updated_at >= self._since - _SLACK)
            for job_id, state, spec, progress, created, updated in s.execute(q).all():
                if self._since is None or aware(updated) > self._since:
                    self._since = aware(updated)
                if job_id in self._ended:
                    continue
                self._ended[job_id] = Ended(
                    protocol=str((spec or {}).get("protocol", "")),
                    state=state,
                    duration_s=max((aware(updated) - aware(created)).total_seconds(), 0.0),
                    bytes_by_party=bytes_by_party(dict(progress or {})),
                    messages_by_party=by_party(dict(progress or {}), "messages_sent"),
                    rounds=max(by_party(dict(progress or {}), "rounds").values(), default=0),
                )
            return list(self._ended.values())

    def _ended_families(self, ended: list[Ended]) -> Iterator[Metric]:
        durations: dict[tuple[str, ...], list[float]] = {}
        sizes: dict[tuple[str, ...], list[float]] = {}
        sent: dict[tuple[str, str], int] = {}
        rounds: dict[tuple[str, ...], list[float]] = {}
        messages: dict[tuple[str, str], int] = {}
        for e in ended:
            durations.setdefault((e.protocol, e.state), []).append(e.duration_s)
            sizes.setdefault((e.protocol,), []).append(float(sum(e.bytes_by_party.values())))
            rounds.setdefault((e.protocol,), []).append(float(e.rounds))
            for party, n in e.bytes_by_party.items():
                sent[(e.protocol, party)] = sent.get((e.protocol, party), 0) + n
            for party, n in e.messages_by_party.items():
                messages[(e.protocol, party)] = messages.get((e.protocol, party), 0) + n
        yield metrics.histogram(
            "ensnif_coordinator_job_duration_seconds",
            "Ended jobs: seconds from submission to the final state",
            ["protocol", "state"],
            durations,
            metrics.DURATION_BUCKETS,
        )
        yield metrics.histogram(
            "ensnif_coordinator_job_mpc_bytes",
            "Ended jobs: MPC bytes sent by all parties together",
            ["protocol"],
            sizes,
            metrics.BYTES_BUCKETS,
        )
        counter = CounterMetricFamily(
            "ensnif_coordinator_mpc_bytes_sent",
            "MPC bytes sent by each party in ended jobs",
            labels=["protocol", "party"],
        )
        for (protocol, party), n in sorted(sent.items()):
            counter.add_metric([protocol, party], float(n))
        yield counter
        yield metrics.histogram(
            "ensnif_coordinator_job_mpc_rounds",
            "Ended jobs: MPC rounds, the most of any party (protocols/transport_stats.py)",
            ["protocol"],
            rounds,
            ROUNDS_BUCKETS,
        )
        messages_counter = CounterMetricFamily(
            "ensnif_coordinator_mpc_messages_sent",
            "MPyC messages sent by each party in ended jobs",
            labels=["protocol", "party"],
        )
        for (protocol, party), n in sorted(messages.items()):
            messages_counter.add_metric([protocol, party], float(n))
        yield messages_counter

    def _approvals(self, live: Iterable[tuple[str, str, object]]) -> GaugeMetricFamily:
        waiting: dict[str, int] = {}
        for _job_id, state, progress in live:
            if state != JobState.AWAITING_APPROVAL.value or not isinstance(progress, dict):
                continue
            for party, entry in progress.items():
                if isinstance(entry, dict) and entry.get("state") == NodeJobState.AWAITING_APPROVAL:
                    waiting[party] = waiting.get(party, 0) + 1
        parties = sorted({p.name for p in self.store.list_parties()} | set(waiting))
        return metrics.gauge(
            "ensnif_coordinator_approvals_pending",
            "Jobs waiting for a data owner's administrator to approve them",
            ["party"],
            (([p], float(waiting.get(p, 0))) for p in parties),
        )

    def _admission(self) -> Iterator[Metric]:
        admission = self.scheduler.admission  # read each time: it may be replaced
        yield metrics.gauge(
            "ensnif_coordinator_admission_waiting",
            "Jobs waiting at the coordinator for an in-flight slot at their parties",
            [],
            [([], float(admission.waiting()))],
        )
        yield metrics.gauge(
            "ensnif_coordinator_admission_in_flight",
            f"Jobs in flight at each party (at most {admission.limit})",
            ["party"],
            (([p.name], float(admission.in_flight(p.name))) for p in self.store.list_parties()),
        )

    def _party_certificates(self) -> GaugeMetricFamily:
        values = []
        for party in self.store.list_parties():
            try:
                cert = parse_cert(party.certificate_pem)
            except CryptoError:
                continue
            values.append(([party.name], metrics.days_left(cert.not_valid_after_utc)))
        return metrics.gauge(
            "ensnif_coordinator_party_certificate_expiry_days",
            "Days until each registered party's certificate expires (negative: expired)",
            ["party"],
            values,
        )


def collectors(cfg: CoordinatorConfig, store: Store, scheduler: Scheduler) -> list[Collector]:
    return [CoordinatorCollector(store, scheduler), metrics.CertificateCollector(cfg.tls)]
