"""The Prometheus endpoint both daemons serve, and what they share in it.

Each daemon builds its own :class:`~prometheus_client.CollectorRegistry` (never the
library's global one) and registers collectors that read its state at scrape time: the
numbers come from the store, the ledger and the certificate files, so they are right after
a restart and nothing in the code has to remember to count. The endpoint is plain HTTP on
``metrics_listen`` (off unless configured; 127.0.0.1 for a bare port): it shows job counts,
budgets and certificate dates, never data, shares or keys, but it is not authenticated,
so keep it on loopback or behind the scraper's network policy (docs/operations.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ensnif_mpc.errors import Unavailable
from ensnif_mpc.security.pki import CertFiles, load_cert

log = logging.getLogger(__name__)

# Job durations (seconds, submission to final state) and MPC bytes per job.
DURATION_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200)
BYTES_BUCKETS: tuple[float, ...] = tuple(float(10**k) for k in range(3, 11))


def histogram(
    name: str,
    doc: str,
    labels: Sequence[str],
    observations: dict[tuple[str, ...], list[float]],
    buckets: Sequence[float],
) -> HistogramMetricFamily:
    """A histogram family built from every observation (cumulative buckets, count, sum)."""
    family = HistogramMetricFamily(name, doc, labels=list(labels))
    for key, values in sorted(observations.items()):
        counts = [(_le(b), float(sum(1 for v in values if v <= b))) for b in buckets]
        counts.append(("+Inf", float(len(values))))
        family.add_metric(list(key), counts, float(sum(values)))
    return family


def _le(bound: float) -> str:
    return str(float(bound))


class CertificateCollector(Collector):
    """``ensnif_certificate_expiry_days``: days until this daemon's certificate and its CA
    expire (negative once expired), read from the files at each scrape (they rotate)."""

    def __init__(self, files: CertFiles) -> None:
        self.files = files

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "ensnif_certificate_expiry_days",
            "Days until the certificate expires (negative: expired)",
            labels=["certificate"],
        )
        for which, path in (("own", self.files.cert), ("ca", self.files.ca)):
            days = _expiry_days(path)
            if days is not None:
                gauge.add_metric([which], days)
        yield gauge


def days_left(not_after: dt.datetime, now: dt.datetime | None = None) -> float:
    now = now or dt.datetime.now(dt.UTC)
    return round((not_after - now).total_seconds() / 86400, 3)


def _expiry_days(path: Path) -> float | None:
    try:
        return days_left(load_cert(path).not_valid_after_utc)
    except (OSError, ValueError) as exc:
        log.warning("metrics: cannot read certificate %s: %s", path, exc)
        return None


@dataclass
class MetricsEndpoint:
    """A running ``/metrics`` HTTP server; :meth:`stop` closes its socket."""

    server: WSGIServer
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def serve(listen: str, collectors: Iterable[Collector]) -> MetricsEndpoint:
    """Serve ``collectors`` on ``listen`` (host:port; port 0 picks a free one)."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    host, port = split_listen(listen)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise Unavailable(f"metrics: cannot listen on {listen}: {exc.strerror or exc}") from exc
    endpoint = MetricsEndpoint(server, thread, host, int(server.server_port))
    log.info("metrics on %s", endpoint.url)
    return endpoint


def gauge(
    name: str, doc: str, labels: Sequence[str], values: Iterable[tuple[list[str], float]]
) -> GaugeMetricFamily:
    """A gauge family with one sample per (label values, value)."""
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    for label_values, value in values:
        family.add_metric(label_values, value)
    return family
