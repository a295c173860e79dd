"""Real servers in this process: a coordinator and three party nodes over mTLS on loopback.

The configs are the ones a local consortium writes (PKI, sample data, free ports);
the servers are the production ``start()`` functions. Workers still run as real
MPyC subprocesses launched by the nodes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from coordinator import server as coordinator_server
from ensnif_mpc.config import ClientProfile, CoordinatorConfig, PartyConfig
from ensnif_mpc.demo.localnet import NODES, LocalConsortium
from ensnif_mpc.sdk.client import Client
from party_node import server as node_server
from tests.integration.postgres import postgres_server, postgres_url  # noqa: F401 (fixtures)


@dataclass
class InProcess:
    lc: LocalConsortium
    coordinator: coordinator_server.RunningCoordinator
    nodes: dict[str, node_server.RunningNode]

    def client(self, profile: Path | None = None) -> Client:
        return Client(ClientProfile.load(profile or self.lc.profile), timeout_s=20)

    def stop(self) -> None:
        for n in self.nodes.values():
            n.stop(grace=0.5)
        self.coordinator.stop(grace=0.5)


def start_in_process(
    root: Path,
    rows: int = 400,
    connect_timeout_s: float = 20.0,
    edit: Callable[[Path], None] | None = None,
) -> InProcess:
    """``edit`` may change the written configs (e.g. a policy) before anything starts."""
    lc = LocalConsortium(root, rows=rows, connect_timeout_s=connect_timeout_s).setup()
    if edit is not None:
        edit(root)
    coord = coordinator_server.start(CoordinatorConfig.load(root / "coordinator.toml"))
    nodes = {n: node_server.start(PartyConfig.load(root / f"party-{n}.toml")) for n in NODES}
    for n in nodes.values():
        n.registrar.interval_s = 2.0
        assert n.registrar.registered.wait(15), "node did not register"
    deadline = time.monotonic() + 15
    with Client(ClientProfile.load(lc.profile)) as c:
        while len(c.datasets()) < 2:
            assert time.monotonic() < deadline, "datasets not published"
            time.sleep(0.1)
    return InProcess(lc, coord, nodes)


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    env = start_in_process(tmp_path_factory.mktemp("consortium"))
    try:
        yield env
    finally:
        env.stop()


@pytest.fixture
def client(consortium: InProcess) -> Iterator[Client]:
    with consortium.client() as c:
        yield c
