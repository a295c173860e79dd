"""Network faults between separate hosts, each made in the kernel of the member's namespace.

The members dial each other's own addresses here (no relay on the path), so what a peer
sees is exactly what the kernel does: a link set down drops everything, an iptables DROP
swallows the SYNs. The nodes' workers run with ``ENSNIF_PEER_SILENCE_SECONDS=15`` (the
harness's default; the product's is 600 s), as an operator across a WAN would set it.

A skewed clock: clocks cannot differ per network namespace, so the member's ``ensnif
doctor`` runs under libfaketime (its wall clock 10 minutes off, its monotonic clock not).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable

import pytest

from tests.helpers import wait_for
from tests.netns.harness import (
    MPC_PORTS,
    NetnsConsortium,
    faketime_env,
    worker_pids,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PARTIES = ("grocery", "logistics", "helper")


@pytest.fixture(scope="module")
def net(make_netns: Callable[..., NetnsConsortium]) -> NetnsConsortium:
    # 10,000 rows per owner: the PRF route's join then holds every worker inside MPC for
    # about a second (0.18 s at 1,000 rows once a job's fixed cost fell: a test polling its
    # workers' phases on a loaded machine could miss that window, and the job was done).
    return make_netns(rtt_ms=None, rows=10_000, connect_timeout_s=10)


FINAL = ("failed", "aborted")


def node_jobs(c: NetnsConsortium, job_id: str) -> dict[str, tuple[str, str] | None]:
    return {p: c.node_job(p, job_id) for p in PARTIES}


def all_ended(c: NetnsConsortium, job_id: str) -> dict[str, tuple[str, str] | None] | None:
    got = node_jobs(c, job_id)
    return got if all(v is not None and v[0] in FINAL for v in got.values()) else None


def test_a_job_runs_across_the_namespaces_on_direct_links(net: NetnsConsortium) -> None:
    got = net.cli("job", "submit", "--wait", "--json", "jobs/revenue-sum.toml")

    assert got.code == 0, got.stderr[-2000:]
    assert got.json()["job"]["state"] == "succeeded"


def test_member_cut_off_mid_job_ends_it_for_everyone_in_bounded_time(net: NetnsConsortium) -> None:
    # The PRF route: about a second of MPC at these sizes, so the link goes down mid-job
    # (the tagged route's join is over in a few milliseconds, before the test sees it start).
    job = (net.root / "jobs" / "shared-customers.toml").read_text()
    slow = job.replace(
        'helpers = ["helper"]', 'helpers = ["helper"]\nparams = { join_path = "prf-shuffle" }'
    )
    assert slow != job
    (net.root / "jobs" / "shared-customers-prf.toml").write_text(slow)
    job_id = net.submit("shared-customers-prf.toml")
    members = ("grocery", "logistics", "helper")

    def phases() -> dict[str, object]:
        return {m: (net.worker_status(m, job_id) or {}).get("phase") for m in members}

    # Every worker past its MPC connect (a cut while one still connects ends the job with
    # peer_connect_timeout instead, a different fault) and none done yet.
    before = {None, "starting", "connecting", "preparing", "delivering", "done", "failed"}
    wait_for(
        lambda: not before & set(phases().values()),
        timeout=60,
        what=lambda: f"every worker computing: {phases()}",
        interval=0.01,
    )
    net.net.link_down("logistics")
    cut = time.monotonic()
    try:
        final = net.wait_final(job_id, timeout_s=60)
        took = time.monotonic() - cut
        # every node's own record ends, the isolated one's too (its worker's own watchdog)
        ended = wait_for(
            lambda: all_ended(net, job_id),
            timeout=net.silence_s + 30,
            what=lambda: f"every node ended the job: {node_jobs(net, job_id)}",
        )
        all_over = time.monotonic() - cut
        wait_for(lambda: not worker_pids(job_id), 20, lambda: f"workers: {worker_pids(job_id)}")
    finally:
        net.net.link_up("logistics")

    assert final["state"] == "failed"
    # Which watchdog speaks first is a race: a peer's silence (peer_stalled), a closed MPC
    # link (peer_lost: the coordinator aborted a peer), or the coordinator's lost stream.
    assert final["reason_code"] in ("peer_stalled", "peer_lost", "party_unreachable"), final
    assert took < net.silence_s + 20, (took, final["reason"])
    assert all_over < net.silence_s + 30, (all_over, ended)
    isolated = ended["logistics"] if ended else None
    assert isolated is not None and isolated[1] in ("peer_stalled", "peer_lost"), ended


def test_once_the_link_is_back_the_member_takes_part_again(net: NetnsConsortium) -> None:
    got = net.cli("job", "submit", "--wait", "--json", "jobs/revenue-sum.toml")

    assert got.code == 0, got.stdout[-1000:] + got.stderr[-1000:]
    assert got.json()["job"]["state"] == "succeeded"


def test_member_whose_firewall_drops_the_mpc_range_fails_the_job_with_a_reason(
    net: NetnsConsortium,
) -> None:
    if shutil.which("iptables") is None:
        pytest.skip("iptables is not installed (scripts/ensure_netns.sh installs it)")
    net.net.firewall_mpc("helper", *MPC_PORTS)
    try:
        job_id = net.submit("revenue-sum.toml")
        final = net.wait_final(job_id, timeout_s=net.connect_timeout_s + 40)
        wait_for(lambda: not worker_pids(job_id), 20, lambda: f"workers: {worker_pids(job_id)}")
        doctor = _doctor(net)
    finally:
        net.net.firewall_clear("helper")
    after = _doctor(net)

    assert final["state"] == "failed"
    assert final["reason_code"] == "peer_connect_timeout", final.get("reason")
    assert f"within {net.connect_timeout_s:.0f}s" in final["reason"]
    # The reason names the member a firewall cuts off, or the port its peers cannot reach.
    reason = final["reason"]
    assert "waiting: " in reason, reason
    assert f"cannot reach helper at {net.reach('helper')}:" in reason or (
        "has not connected to this party's port" in reason
    ), reason
    # doctor at another member names the dropped range; the other peer's ports answer
    lo, hi = MPC_PORTS
    helper = doctor["peer helper"]
    assert (doctor["exit"]["status"], helper["status"]) == ("1", "fail"), helper
    assert f"MPC {net.reach('helper')}:{lo}-{hi}: port(s) {lo}-{hi} dropped" in helper["message"]
    assert doctor["peer logistics"]["status"] == "ok", doctor["peer logistics"]
    assert after["peer helper"]["status"] == "ok", after["peer helper"]


def _doctor(net: NetnsConsortium, offset: str | None = None) -> dict[str, dict[str, str]]:
    """``ensnif doctor --json`` at grocery, its wall clock shifted by ``offset``."""
    env = None
    if offset is not None:
        env = faketime_env(offset)
        if env is None:
            pytest.skip("libfaketime is not installed (scripts/ensure_netns.sh installs it)")
    got = net.cli("doctor", "--config", "party-grocery.toml", "--json", member="grocery", env=env)
    return {c["check"]: c for c in got.json()} | {"exit": {"status": str(got.code)}}


def test_member_clock_10_minutes_behind_is_diagnosed(net: NetnsConsortium) -> None:
    checks = _doctor(net, "-10m")

    assert checks["exit"]["status"] == "1"
    assert checks["certificate"]["status"] == "fail"
    assert "is this host's clock right?" in checks["certificate"]["message"]
    assert checks["coordinator"]["status"] == "fail"  # its certificate is not valid yet either
    assert "not yet valid" in checks["coordinator"]["message"]


def test_member_clock_10_minutes_ahead_is_diagnosed(net: NetnsConsortium) -> None:
    checks = _doctor(net, "+10m")

    # its certificates are all valid (a clock ahead breaks no check of its own) ...
    assert checks["certificate"]["status"] == "ok", checks["certificate"]
    assert checks["coordinator"]["status"] == "ok", checks["coordinator"]
    # ... but the coordinator's time says it: 600 s, to within half the round trip
    assert checks["exit"]["status"] == "1"
    assert checks["clock"]["status"] == "fail", checks["clock"]
    off = re.search(r"clock is ([\d.]+) s behind this host's", checks["clock"]["message"])
    assert off is not None and 595 < float(off[1]) < 605, checks["clock"]
