"""The tests' one local consortium: a coordinator and three party nodes, built one way.

The PKI, sample data and configs are the ones ``LocalConsortium`` writes (what
``ensnif demo`` runs); what a test varies is a parameter of :func:`make_consortium`:
the sample size, the owners' policies (:class:`OwnerPolicy`), the limits, and how the
consortium runs (``mode``):

- ``"configs"``: written, nothing started; a test drives a node's domain layer itself
  (:meth:`Consortium.node`), as its servicer does;
- ``"in_process"``: the production ``start()`` of the coordinator and of each node, in
  this process, over mTLS on loopback (workers are still real MPyC subprocesses);
- ``"subprocess"``: every daemon its own process, as ``ensnif demo`` runs them.

The ``consortium`` fixture (tests/conftest.py) builds one per test module from the
module's ``pytest.mark.consortium(...)`` options.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from coordinator import server as coordinator_server
from ensnif_mpc.config import ClientProfile, CoordinatorConfig, PartyConfig
from ensnif_mpc.demo.localnet import NODES, LocalConsortium
from ensnif_mpc.sdk.client import Client
from party_node import server as node_server
from party_node.node import Node
from party_node.store import NodeStore
from tests.helpers import wait_for

Mode = Literal["configs", "in_process", "subprocess"]


@dataclass(frozen=True)
class OwnerPolicy:
    """Changes to a data owner's sample policy (every one of its datasets)."""

    budget_rho: float | None = None  # the ρ budget (the sample's is 10.0)
    not_exact: tuple[str, ...] = ()  # protocols no longer released exactly
    approval: str | None = None  # "manual": a person approves every job


def write_policy(root: Path, party: str, policy: OwnerPolicy) -> None:
    """Write ``policy`` into ``party``'s config under ``root`` (before a start or a reload)."""
    path = root / f"party-{party}.toml"
    lines = []
    for line in path.read_text().splitlines():
        if policy.budget_rho is not None and line.startswith("budget_rho = "):
            line = f"budget_rho = {policy.budget_rho}"
        if policy.not_exact and line.startswith("exact_protocols = "):
            kept = [p for p in json.loads(line.split("=", 1)[1]) if p not in policy.not_exact]
            line = f"exact_protocols = {json.dumps(kept)}"
        if policy.approval is not None and line == "[datasets.privacy]":
            lines += ["[datasets.policy]", f'approval = "{policy.approval}"', ""]
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Consortium:
    lc: LocalConsortium
    coordinator: coordinator_server.RunningCoordinator | None = None
    nodes: dict[str, node_server.RunningNode] = field(default_factory=dict)
    _domain_nodes: list[Node] = field(default_factory=list)

    def client(self, profile: Path | None = None) -> Client:
        """The analyst's client (or another member's, from its ``profile``)."""
        return Client(ClientProfile.load(profile or self.lc.profile), timeout_s=20)

    def party_config(self, name: str, **changes: Any) -> PartyConfig:
        cfg = PartyConfig.load(self.lc.root / f"party-{name}.toml")
        return dataclasses.replace(cfg, **changes) if changes else cfg

    def node(
        self,
        name: str,
        *,
        monitor_interval_s: float = 0.2,
        start_monitor: bool = False,
        **changes: Any,
    ) -> Node:
        """``name``'s node without its server, on its config with ``changes`` and its own
        SQLite store; shut down by :meth:`close` or with the consortium."""
        cfg = self.party_config(name, **changes)
        store = NodeStore(cfg.state_dir / "node.db")
        node = Node(cfg, store, monitor_interval_s=monitor_interval_s)
        if start_monitor:
            node.start_monitor()
        self._domain_nodes.append(node)
        return node

    def close(self, node: Node) -> None:
        self._domain_nodes.remove(node)
        node.shutdown()
        node.store.close()

    def stop(self) -> None:
        for node in list(self._domain_nodes):
            self.close(node)
        for running in self.nodes.values():
            running.stop(grace=0.5)
        if self.coordinator is not None:
            self.coordinator.stop(grace=0.5)
        self.lc.stop()  # the daemons of a "subprocess" consortium (a no-op otherwise)


def make_consortium(
    root: Path,
    *,
    mode: Mode = "in_process",
    rows: int = 400,
    connect_timeout_s: float = 20.0,
    job_timeout_s: float = 600.0,
    owners: Mapping[str, OwnerPolicy] | None = None,
    max_jobs_per_party: int | None = None,
) -> Consortium:
    """A consortium under ``root``, started as ``mode`` says and ready for jobs (every node
    registered, both datasets published). ``max_jobs_per_party``: the coordinator's
    admission limit (in process only)."""
    lc = LocalConsortium(
        root, rows=rows, connect_timeout_s=connect_timeout_s, job_timeout_s=job_timeout_s
    ).setup()
    for party, policy in (owners or {}).items():
        write_policy(root, party, policy)
    consortium = Consortium(lc)
    try:
        if mode == "in_process":
            _start_in_process(consortium, max_jobs_per_party)
        elif mode == "subprocess":
            assert max_jobs_per_party is None, "the admission limit is set in process only"
            lc.start(timeout_s=60)
    except BaseException:
        consortium.stop()
        raise
    return consortium


@contextmanager
def running_consortium(root: Path, **options: Any) -> Iterator[Consortium]:
    consortium = make_consortium(root, **options)
    try:
        yield consortium
    finally:
        consortium.stop()


def _start_in_process(consortium: Consortium, max_jobs_per_party: int | None) -> None:
    root = consortium.lc.root
    consortium.coordinator = coordinator_server.start(
        CoordinatorConfig.load(root / "coordinator.toml")
    )
    if max_jobs_per_party is not None:
        from coordinator.scheduler import Admission

        consortium.coordinator.scheduler.admission = Admission(max_jobs_per_party)
    for name in NODES:
        consortium.nodes[name] = node_server.start(PartyConfig.load(root / f"party-{name}.toml"))
    for running in consortium.nodes.values():
        running.registrar.interval_s = 2.0
        assert running.registrar.registered.wait(15), "node did not register"
    with consortium.client() as c:
        wait_for(lambda: len(c.datasets()) >= 2, 15, "both datasets published")
