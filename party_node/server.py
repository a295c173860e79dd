"""Assembles and runs a party node: PartyService, job monitor, registration with the coordinator."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

import grpc

from ensnif_mpc.audit.chain import Signer
from ensnif_mpc.config import PartyConfig
from ensnif_mpc.data.schema import DatasetSchema
from ensnif_mpc.errors import EnsnifError, InvalidConfig
from ensnif_mpc.gen.ensnif.v1 import (
    coordinator_pb2 as cpb,
    coordinator_pb2_grpc,
    outsource_pb2,
    outsource_pb2_grpc,
    party_pb2,
    party_pb2_grpc,
)
from ensnif_mpc.rpc import convert, metrics as rpc_metrics
from ensnif_mpc.rpc.serving import build_server, stop_on_signal
from ensnif_mpc.rpc.webconsole import Console
from ensnif_mpc.security.pki import identity_of, load_cert
from ensnif_mpc.security.tls import ClientIdentity
from party_node import console as web_console, datasets, metrics
from party_node.node import Node
from party_node.outsource_servicer import OutsourceServicer
from party_node.outsourced import OutsourcedStore, Published
from party_node.servicer import PartyServicer
from party_node.store import NodeStore

log = logging.getLogger(__name__)


class Registrar:
    """Keeps this node registered and its catalog published, retrying while needed."""

    def __init__(
        self,
        cfg: PartyConfig,
        advertise: str,
        interval_s: float = 10.0,
        remaining: Callable[[], dict[str, float]] | None = None,
        outsourced: Callable[[], list[Published]] | None = None,
    ) -> None:
        self.cfg = cfg
        # The outsourced datasets this node holds, published under their owners' names.
        self.outsourced = outsourced or (lambda: [])
        self.advertise = advertise
        self.interval_s = interval_s
        self.schemas = [datasets.schema_of(cfg.name, d) for d in cfg.datasets]
        self.remaining = remaining  # the ledger's remaining ρ per dataset, mirrored in the catalog
        # Re-read when the files change (`ensnif pki rotate`): the next round dials anew.
        self.identity = ClientIdentity(cfg.tls)
        # Told the key of the certificate the coordinator now holds for this node, after
        # each successful registration: the node signs with it (bindings, shares).
        self.on_registered: Callable[[bytes], None] = lambda _key: None
        self.registered = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="registrar", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Publish again now (e.g. a budget changed)."""
        self._wake.set()

    def _published(self) -> list[DatasetSchema]:
        left = self.remaining() if self.remaining else {}
        return [
            replace(s, policy=replace(s.policy, remaining_rho=float(left[s.name])))
            if s.name in left
            else s
            for s in self.schemas
        ]

    def _registration(self) -> cpb.RegisterPartyRequest:
        first, last = self.cfg.mpc_ports
        return cpb.RegisterPartyRequest(
            address=self.advertise,
            mpc_host=self.cfg.mpc_host,
            mpc_port_first=first,
            mpc_port_last=last,
        )

    def _publish_outsourced(self, stub: coordinator_pb2_grpc.CoordinatorServiceStub) -> None:
        """One refused entry (e.g. a manifest that does not entrust it here) is logged and
        does not stop this node's own registration."""
        left = self.remaining() if self.remaining else {}
        for entry in self.outsourced():
            schema = entry.schema
            key = f"{schema.party}/{schema.name}"
            if key in left:
                schema = replace(schema, policy=replace(schema.policy, remaining_rho=left[key]))
            request = cpb.PublishDatasetRequest(
                dataset=convert.dataset_to_pb(schema),
                manifest=entry.manifest,
                manifest_signature=entry.signature,
                owner_cert_pem=entry.owner_cert_pem,
            )
            try:
                stub.PublishDataset(request, timeout=10)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    raise
                log.warning("the coordinator refused outsourced dataset %s: %s", key, exc.details())

    def _loop(self) -> None:
        channel = self.identity.channel(self.cfg.coordinator, self.cfg.coordinator_name)
        stub = coordinator_pb2_grpc.CoordinatorServiceStub(channel)
        delay = 0.5
        while not self._stop.is_set():
            if self.identity.refresh():  # rotated: register again under the new certificate
                channel.close()
                channel = self.identity.channel(self.cfg.coordinator, self.cfg.coordinator_name)
                stub = coordinator_pb2_grpc.CoordinatorServiceStub(channel)
            key = self.identity.material.key
            try:
                stub.RegisterParty(self._registration(), timeout=10)
                self.on_registered(key)
                for schema in self._published():
                    stub.PublishDataset(
                        cpb.PublishDatasetRequest(dataset=convert.dataset_to_pb(schema)), timeout=10
                    )
                self._publish_outsourced(stub)
                if not self.registered.is_set():
                    log.info("registered with the coordinator at %s", self.cfg.coordinator)
                self.registered.set()
                delay = self.interval_s
            except grpc.RpcError as exc:
                log.warning(
                    "cannot register with the coordinator at %s: %s",
                    self.cfg.coordinator,
                    exc.code().name,
                )
                delay = min(delay * 2, self.interval_s) if self.registered.is_set() else 1.0
            self._wake.wait(delay)
            self._wake.clear()
        channel.close()


@dataclass
class RunningNode:
    server: grpc.Server
    port: int
    node: Node
    registrar: Registrar
    metrics: rpc_metrics.MetricsEndpoint | None = None
    console: Console | None = None

    def reload(self, load: Callable[[], PartyConfig]) -> bool:
        """Re-read party.toml and adopt its datasets and policies (SIGHUP). A config that
        does not load, or changes what needs a restart, is refused and the old one stays."""
        try:
            cfg = load()
            self.node.reload(cfg)
        except EnsnifError as err:
            log.error("reload refused, the previous policy stays: %s", err.message)
            self.node.store.audit("policy_reload_refused", {"reason": err.message})
            return False
        self.registrar.schemas = [datasets.schema_of(cfg.name, d) for d in cfg.datasets]
        self.registrar.wake()
        return True

    def stop(self, grace: float = 2.0) -> None:
        if self.console is not None:
            self.console.stop()
        if self.metrics is not None:
            self.metrics.stop()
        self.registrar.stop()
        self.server.stop(grace).wait()
        self.node.shutdown()
        self.node.store.close()


def start(cfg: PartyConfig) -> RunningNode:
    ident = identity_of(load_cert(cfg.tls.cert))
    if ident.name != cfg.name or ident.role != "party":
        raise InvalidConfig(
            f"certificate {cfg.tls.cert} is for {ident.name!r} ({ident.role}); "
            f"party.toml names {cfg.name!r}: issue one with "
            f"`ensnif pki issue {cfg.name} --role party`"
        )
    for d in cfg.datasets:
        datasets.check(d)  # refuse to serve data that breaks its schema
    store = NodeStore(cfg.state_dir / "node.db", signer=Signer.from_key_file(cfg.tls.key))
    node = Node(cfg, store)
    servicer = PartyServicer(node)
    # Outsourced datasets a member without a node uploads (party_node/outsourced.py).
    held = OutsourcedStore(cfg.state_dir / "outsourced", node.ca_pem, cfg.state_dir / "jobs")
    uploads = OutsourceServicer(held)
    node.outsourced = held.hosted  # jobs' inputs over them (party_node/admission.py)
    names = [
        party_pb2.DESCRIPTOR.services_by_name["PartyService"].full_name,
        outsource_pb2.DESCRIPTOR.services_by_name["OutsourceService"].full_name,
    ]

    def register(s: grpc.Server) -> None:
        party_pb2_grpc.add_PartyServiceServicer_to_server(servicer, s)
        outsource_pb2_grpc.add_OutsourceServiceServicer_to_server(uploads, s)

    try:
        server, port, _ = build_server(cfg.listen, cfg.tls, register, names)
    except EnsnifError:
        store.close()
        raise
    try:
        endpoint = _serve_metrics(cfg, node)
    except EnsnifError:
        server.stop(0)
        store.close()
        raise
    node.start_monitor()
    advertise = cfg.advertise
    if advertise.endswith(":0"):
        advertise = advertise[:-2] + f":{port}"
    registrar = Registrar(
        cfg,
        advertise,
        remaining=lambda: {b.dataset: float(b.remaining) for b in node.ledger.show()},
        outsourced=lambda: held.entries(cfg.name),
    )
    node.on_budget_change = registrar.wake
    uploads.on_accept = registrar.wake  # an outsourced dataset is published when accepted

    def signing_key(key: bytes) -> None:
        node.key_pem = key  # the key of the certificate peers will check signatures with

    registrar.on_registered = signing_key
    registrar.start()
    log.info("party %s (%s) listening on port %d", cfg.name, cfg.role, port)
    running = RunningNode(server, port, node, registrar, endpoint)
    running.console = _serve_console(running)
    return running


def _serve_metrics(cfg: PartyConfig, node: Node) -> rpc_metrics.MetricsEndpoint | None:
    """The Prometheus endpoint, if ``metrics_listen`` asks for one."""
    if not cfg.metrics_listen:
        return None
    return rpc_metrics.serve(cfg.metrics_listen, metrics.collectors(node))


def _serve_console(running: RunningNode) -> Console | None:
    """The administrator's web console, if ``console_listen`` asks for one
    (docs/operations.md#web-consoles); the node stops if it cannot listen there."""
    if not running.node.cfg.console.listen:
        return None
    try:
        return web_console.start(running.node)
    except EnsnifError:
        running.stop(grace=0)
        raise


def serve(cfg: PartyConfig, load: Callable[[], PartyConfig] | None = None) -> None:
    """Run until SIGINT/SIGTERM; with ``load``, SIGHUP re-reads the config's policies."""
    stop = stop_on_signal()
    reload = threading.Event()
    if load is not None:
        signal.signal(signal.SIGHUP, lambda _signum, _frame: reload.set())
    running = start(cfg)
    print(f"party {cfg.name} listening on port {running.port}", flush=True)
    if running.console is not None:
        print(running.console.banner(), flush=True)
    while not stop.wait(0.5):
        if reload.is_set() and load is not None:
            reload.clear()
            if running.reload(load):
                print(f"party {cfg.name} reloaded its policies", flush=True)
    running.stop()
