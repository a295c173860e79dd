"""What every Ensnif gRPC server has: mTLS, health checking, reflection, clean shutdown."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent import futures
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ensnif_mpc.errors import Unavailable
from ensnif_mpc.pki import CertFiles
from ensnif_mpc.tls import SERVER_OPTIONS, server_credentials

log = logging.getLogger(__name__)


def build_server(
    listen: str,
    tls: CertFiles,
    register: Callable[[grpc.Server], None],
    service_names: Iterable[str],
    max_workers: int = 32,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Start a server on ``listen`` (port 0 picks a free one); returns it with the bound port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers), options=SERVER_OPTIONS
    )
    register(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    try:
        port = server.add_secure_port(listen, server_credentials(tls))
    except RuntimeError as exc:
        raise Unavailable(f"cannot listen on {listen}: {exc}") from exc
    if port == 0:
        raise Unavailable(f"cannot listen on {listen}: address in use or not local")
    server.start()
    for name in [*service_names, ""]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer


def stop_on_signal() -> threading.Event:
    """Turn SIGINT/SIGTERM into an event. Install it before starting anything, so that a
    signal during startup cannot leave server threads running with no one to stop them."""
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("received signal %d, shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def run_until(stop: threading.Event, on_stop: Callable[[], None]) -> None:
    while not stop.wait(0.5):
        pass
    on_stop()
