"""The consortium across separate hosts at 50 ms round-trip time (tests/netns/harness.py).

Coordinator, three members and the analyst each in a network namespace of their own; every
link between them crosses the delaying relay. The canonical jobs succeed with the plaintext
answer. The faults (a partition, a firewall, a skewed clock) are in test_netns_faults.py.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Callable

import pytest

from ensnif_mpc.cli.demo_cmd import plaintext_answer
from ensnif_mpc.jobs import jobspec
from tests.netns.harness import HOSTS, NODE_PORT, SUBNET, NetnsConsortium

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

RTT_MS = 50.0


@pytest.fixture(scope="module")
def wan(make_netns: Callable[..., NetnsConsortium]) -> NetnsConsortium:
    return make_netns(rtt_ms=RTT_MS, rows=400)


def test_every_member_is_registered_at_its_own_public_address(wan: NetnsConsortium) -> None:
    got = wan.cli("parties", "list", "--json")

    assert got.code == 0, got.stderr
    addresses = {p["name"]: p["address"] for p in got.json()}
    assert addresses == {
        name: f"{wan.reach(name)}:{NODE_PORT}" for name in ("grocery", "logistics", "helper")
    }


def test_the_path_to_the_coordinator_has_the_round_trip_time(wan: NetnsConsortium) -> None:
    """doctor's health check on a new channel: a TLS handshake and a call, >= 2 RTT."""
    got = wan.cli("doctor", "--config", "party-grocery.toml", "--json", member="grocery")

    check = next(c for c in got.json() if c["check"] == "coordinator")
    assert check["status"] == "ok", check
    took_ms = float(re.search(r"\((\d+) ms\)", check["message"]).group(1))  # type: ignore[union-attr]
    assert took_ms >= 2 * RTT_MS, check["message"]


@pytest.mark.parametrize(
    "job_file", ["ticket-mean-dp.toml", "shared-customers.toml", "shared-basket.toml"]
)
def test_canonical_job_succeeds_at_50ms_rtt(wan: NetnsConsortium, job_file: str) -> None:
    assert wan.lc is not None
    spec = jobspec.load(wan.root / "jobs" / job_file)
    before = wan.relay_bytes(":mpc")

    got = wan.cli("job", "submit", "--wait", "--json", f"jobs/{job_file}", timeout=120)

    assert got.code == 0, got.stderr[-2000:]
    out = got.json()
    assert out["job"]["state"] == "succeeded", out["job"].get("reason")
    expected = plaintext_answer(wan.lc, spec)
    for name, value in out["result"]["outputs"].items():
        if name not in expected:
            continue
        if "ci95" in value:  # a DP release: within 3 of its 95 % half-widths (~5.9 sd)
            # On failure, every opened output (the noisy sum and count behind a mean) and
            # the job's id, so that the nodes' logs can be read for it.
            assert abs(value["value"] - expected[name]) <= 3 * value["ci95"], (
                name, out["job"].get("job_id") or out["job"].get("id"), out["result"],
            )  # fmt: skip
        else:
            assert math.isclose(value["value"], expected[name], rel_tol=1e-6, abs_tol=1e-6)
    assert wan.relay_bytes(":mpc") > before  # the MPC traffic crossed the WAN relay


def test_nothing_of_the_consortium_is_in_the_host_namespace(wan: NetnsConsortium) -> None:
    host_addresses = subprocess.run(
        ["ip", "-o", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    host_links = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout

    assert f"{SUBNET}." not in host_addresses
    assert not any(f"v-{m}" in host_links for m in HOSTS)
    assert len(wan.net.created) == len(HOSTS) + 1  # the members' and the switch's
