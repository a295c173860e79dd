"""Assembles and runs the coordinator process."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc

from coordinator import console as web_console, metrics
from coordinator.handlers import Coordinator
from coordinator.node_client import NodeClient
from coordinator.nodes import NodeDialer
from coordinator.scheduler import Scheduler
from coordinator.servicer import CoordinatorServicer
from coordinator.store import Store
from ensnif_mpc.audit.chain import Signer
from ensnif_mpc.config import CoordinatorConfig
from ensnif_mpc.errors import EnsnifError
from ensnif_mpc.gen.ensnif.v1 import coordinator_pb2, coordinator_pb2_grpc
from ensnif_mpc.rpc import metrics as rpc_metrics
from ensnif_mpc.rpc.hub import Hub
from ensnif_mpc.rpc.serving import build_server, run_until, stop_on_signal
from ensnif_mpc.rpc.webconsole import Console

log = logging.getLogger(__name__)


@dataclass
class RunningCoordinator:
    server: grpc.Server
    port: int
    store: Store
    scheduler: Scheduler
    dialer: NodeDialer
    metrics: rpc_metrics.MetricsEndpoint | None = None
    console: Console | None = None

    def stop(self, grace: float = 2.0) -> None:
        if self.console is not None:
            self.console.stop()
        if self.metrics is not None:
            self.metrics.stop()
        self.scheduler.stop()
        self.server.stop(grace).wait()
        self.dialer.close()
        self.store.close()


def start(cfg: CoordinatorConfig) -> RunningCoordinator:
    store = Store(cfg.database, signer=Signer.from_key_file(cfg.tls.key))
    hub = Hub()
    dialer = NodeDialer(cfg.tls)
    scheduler = Scheduler(
        store,
        NodeClient(dialer, store),
        hub.notify,
        cfg.propose_timeout_s,
        cfg.job_timeout_s,
        approval_timeout_s=cfg.approval_timeout_s,
    )
    servicer = CoordinatorServicer(
        Coordinator(store, scheduler, cfg.cache_seconds, cfg.tls.ca.read_bytes()), hub
    )
    name = coordinator_pb2.DESCRIPTOR.services_by_name["CoordinatorService"].full_name
    server, port, _ = build_server(
        cfg.listen,
        cfg.tls,
        lambda s: coordinator_pb2_grpc.add_CoordinatorServiceServicer_to_server(servicer, s),
        [name],
    )
    running = RunningCoordinator(server, port, store, scheduler, dialer)
    running.metrics = _serve_metrics(cfg, running)
    running.console = _serve_console(cfg, running)
    resumed = scheduler.resume()
    log.info("coordinator %s listening on port %d (%d live jobs resumed)", cfg.name, port, resumed)
    return running


def _serve_metrics(
    cfg: CoordinatorConfig, running: RunningCoordinator
) -> rpc_metrics.MetricsEndpoint | None:
    """The Prometheus endpoint, if ``metrics_listen`` asks for one; the coordinator stops
    if it cannot listen there."""
    if not cfg.metrics_listen:
        return None
    try:
        return rpc_metrics.serve(
            cfg.metrics_listen, metrics.collectors(cfg, running.store, running.scheduler)
        )
    except EnsnifError:
        running.stop(grace=0)
        raise


def _serve_console(cfg: CoordinatorConfig, running: RunningCoordinator) -> Console | None:
    """The web console, if ``console_listen`` asks for one (docs/operations.md#web-consoles);
    the coordinator stops if it cannot listen there."""
    if not cfg.console.listen:
        return None
    try:
        return web_console.start(cfg, running.store)
    except EnsnifError:
        running.stop(grace=0)
        raise


def serve(cfg: CoordinatorConfig) -> None:
    stop = stop_on_signal()
    running = start(cfg)
    print(f"coordinator listening on port {running.port}", flush=True)
    if running.console is not None:
        print(running.console.banner(), flush=True)
    run_until(stop, running.stop)
