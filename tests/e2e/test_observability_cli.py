"""The daemons' observability flags through the real CLI: ``--log-format json`` and
``--metrics-listen`` on ``ensnif coordinator serve`` and ``ensnif party serve``.

The coordinator and the helper node run as processes from the consortium's written
configs; every line either writes to stderr is one JSON object, the node's registration
line included, and both metrics endpoints answer over HTTP.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.consortium import Consortium
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.consortium(mode="configs", rows=50)]


class Daemon:
    """A daemon started from the CLI whose stderr lines are kept as they come."""

    def __init__(self, root: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ENSNIF_", "PYTEST"))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ensnif_mpc.cli.main", "--log-level", "INFO", *args],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def metrics_url(self) -> str:
        for line in self.lines:
            found = re.search(r"http://127\.0\.0\.1:\d+/metrics", line)
            if found:
                return found.group(0)
        return ""

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._reader.join(timeout=5)


@pytest.fixture
def daemons(consortium: Consortium) -> Iterator[tuple[Daemon, Daemon]]:
    root = consortium.lc.root
    flags = ("--log-format", "json", "--metrics-listen", "127.0.0.1:0")
    coordinator = Daemon(root, "coordinator", "serve", "--config", "coordinator.toml", *flags)
    node = Daemon(root, "party", "serve", "--config", "party-helper.toml", *flags)
    try:
        yield coordinator, node
    finally:
        node.stop()
        coordinator.stop()


def names(url: str) -> set[str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {family.name for family in text_string_to_metric_families(text)}


def test_json_lines_and_metrics_from_the_real_daemons(daemons: tuple[Daemon, Daemon]) -> None:
    coordinator, node = daemons
    url = wait_for(coordinator.metrics_url, 60, lambda: f"coordinator: {coordinator.lines}")
    wait_for(
        lambda: any("registered with the coordinator" in line for line in node.lines),
        60,
        lambda: f"the node registered: {node.lines}",
    )
    node_url = wait_for(node.metrics_url, 10, lambda: f"node: {node.lines}")

    assert {"ensnif_coordinator_jobs", "ensnif_coordinator_admission_waiting"} <= names(url)
    assert {"ensnif_node_privacy_remaining_rho", "ensnif_certificate_expiry_days"} <= names(
        node_url
    )
    for daemon in (coordinator, node):
        parsed = [json.loads(line) for line in daemon.lines]
        assert all({"time", "level", "logger", "message"} <= set(p) for p in parsed)
        assert "job_id" not in parsed[0]  # start-up lines belong to no job
