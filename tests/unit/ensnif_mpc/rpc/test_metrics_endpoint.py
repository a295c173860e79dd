"""The shared Prometheus endpoint: its own registry per server, certificate expiry read
from the files, a clear error when the port is taken."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ensnif_mpc.errors import Unavailable
from ensnif_mpc.rpc import metrics
from ensnif_mpc.security.pki import load_cert
from tests.unit.conftest import Consortium


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_each_endpoint_serves_only_its_own_collectors(consortium: Consortium) -> None:
    first = metrics.serve("127.0.0.1:0", [metrics.CertificateCollector(consortium.grocery)])
    second = metrics.serve("127.0.0.1:0", [])
    try:
        own = load_cert(consortium.grocery.cert).not_valid_after_utc
        samples = scrape(first.url)
        got = samples[("ensnif_certificate_expiry_days", (("certificate", "own"),))]
        assert got == pytest.approx(metrics.days_left(own), abs=0.01)
        assert ("ensnif_certificate_expiry_days", (("certificate", "ca"),)) in samples
        assert not any(name.startswith("ensnif_") for name, _ in scrape(second.url))
    finally:
        first.stop()
        second.stop()


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(Unavailable, match=f"metrics: cannot listen on 127.0.0.1:{port}"):
            metrics.serve(f"127.0.0.1:{port}", [])


def test_histogram_buckets_are_cumulative() -> None:
    family = metrics.histogram("h", "doc", ["p"], {("sum",): [0.5, 3.0, 100.0]}, (1, 10))
    samples = {(s.name, s.labels.get("le", "")): s.value for s in family.samples}
    assert samples[("h_bucket", "1.0")] == 1
    assert samples[("h_bucket", "10.0")] == 2
    assert samples[("h_bucket", "+Inf")] == 3
    assert samples[("h_count", "")] == 3
    assert samples[("h_sum", "")] == pytest.approx(103.5)
