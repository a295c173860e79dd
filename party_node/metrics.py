"""A party node's Prometheus metrics, read from its store and ledger at scrape time.

- ``ensnif_node_jobs{state}``: this node's record of each job, per state (0 included);
- ``ensnif_node_workers_running``; ``ensnif_node_approvals_pending`` (`ensnif job pending`);
- ``ensnif_node_privacy_{budget,spent,reserved,remaining}_rho{dataset}``: the ledger;
- ``ensnif_node_mpc_bytes_sent_total{protocol}``: ended jobs, this node's workers;
- ``ensnif_node_live_job_mpc_bytes_sent{job_id}``: jobs not ended, bytes so far;
- ``ensnif_certificate_expiry_days{certificate}``: this node's certificate and CA.

The ledger is the authority: the figures are its exact fractions shown as floats.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ensnif_mpc.db import aware
from ensnif_mpc.rpc import metrics
from party_node import admin
from party_node.node import Node
from party_node.states import NODE_LIVE, NodeState
from party_node.store import NodeJobRow

ENDED = sorted(str(s) for s in NodeState if s not in NODE_LIVE)
_SLACK = dt.timedelta(minutes=5)  # jobs ending close together may commit out of order


class NodeCollector(Collector):
    def __init__(self, node: Node) -> None:
        self.node = node
        self._ended: dict[str, tuple[str, int]] = {}  # job id -> (protocol, bytes sent)
        self._since: dt.datetime | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        store = self.node.store
        with Session(store.engine) as s:
            q = select(NodeJobRow.state, func.count()).group_by(NodeJobRow.state)
            counts = {state: int(n) for state, n in s.execute(q).all()}
            ended = self._read_ended(s)
            live = s.execute(
                select(NodeJobRow.job_id, NodeJobRow.progress).where(NodeJobRow.state.not_in(ENDED))
            ).all()
        yield metrics.gauge(
            "ensnif_node_jobs",
            "This node's jobs in each state",
            ["state"],
            (([str(st)], float(counts.get(str(st), 0))) for st in NodeState),
        )
        yield metrics.gauge(
            "ensnif_node_workers_running",
            "Worker processes running now",
            [],
            [([], float(self.node.running_jobs()))],
        )
        yield metrics.gauge(
            "ensnif_node_approvals_pending",
            "Jobs waiting for this node's administrator",
            [],
            [([], float(len(admin.pending(store))))],
        )
        yield from self._budgets()
        sent: dict[str, int] = {}
        for protocol, n in ended:
            if protocol:  # a proposal refused before it was stored has no spec: it sent nothing
                sent[protocol] = sent.get(protocol, 0) + n
        counter = CounterMetricFamily(
            "ensnif_node_mpc_bytes_sent",
            "MPC bytes this node's workers sent in ended jobs",
            labels=["protocol"],
        )
        for protocol, n in sorted(sent.items()):
            counter.add_metric([protocol], float(n))
        yield counter
        yield metrics.gauge(
            "ensnif_node_live_job_mpc_bytes_sent",
            "MPC bytes sent so far by this node's worker for a job not ended",
            ["job_id"],
            (
                ([job_id], float((progress or {}).get("bytes_sent", 0) or 0))
                for job_id, progress in live
            ),
        )

    def _budgets(self) -> Iterable[Metric]:
        lines = self.node.ledger.show()
        for name, field, doc in (
            ("budget", "cap", "The privacy budget (zCDP rho) of each dataset"),
            ("spent", "spent", "Privacy budget spent (committed) per dataset"),
            ("reserved", "reserved", "Privacy budget reserved by jobs not ended"),
            ("remaining", "remaining", "Privacy budget left to reserve per dataset"),
        ):
            yield metrics.gauge(
                f"ensnif_node_privacy_{name}_rho",
                doc,
                ["dataset"],
                (([b.dataset], float(getattr(b, field))) for b in lines),
            )

    def _read_ended(self, s: Session) -> list[tuple[str, int]]:
        with self._lock:
            q = select(
                NodeJobRow.job_id, NodeJobRow.data, NodeJobRow.progress, NodeJobRow.updated_at
            ).where(NodeJobRow.state.in_(ENDED))
            if self._since is not None:
                q = q.where(NodeJobRow.updated_at >= self._since - _SLACK)
            for job_id, data, progress, updated in s.execute(q).all():
                if updated is not None and (self._since is None or aware(updated) > self._since):
                    self._since = aware(updated)
                if job_id not in self._ended:
                    spec = (data or {}).get("spec", {})
                    protocol = str(spec.get("protocol", "")) if isinstance(spec, dict) else ""
                    sent = int((progress or {}).get("bytes_sent", 0) or 0)
                    self._ended[job_id] = (protocol, sent)
            return list(self._ended.values())


def collectors(node: Node) -> list[Collector]:
    return [NodeCollector(node), metrics.CertificateCollector(node.cfg.tls)]
