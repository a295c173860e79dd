"""``ensnif doctor`` at a node: can this host reach every other member's MPC ports?

The coordinator's ``ListParties`` gives each member's registered MPC host and port range;
:mod:`ensnif_mpc.cli.probe` connects to them. One line per member.
"""

from __future__ import annotations

from ensnif_mpc.cli import probe
from ensnif_mpc.cli.doctor import PEER_PROBE_TIMEOUT_S, Check, Status
from ensnif_mpc.gen.ensnif.v1 import common_pb2 as pb


def check_peers(
    parties: list[pb.Party], own_name: str, timeout_s: float = PEER_PROBE_TIMEOUT_S
) -> list[Check]:
    """One line per other registered member: a TCP connect to each port of its MPC range
    (at most :data:`probe.MAX_PORTS` of them, spread over the range), all at once.
    ``refused`` is fine (the host answers; no job listens now); ``timeout`` is a port a
    firewall drops, named in the line. A member whose node did not publish its range
    (an older node) gets its gRPC port probed instead, and the line says so."""
    others = [p for p in parties if p.name != own_name]
    if not others:
        return [Check("peers", Status.SKIP, "no other member registered at the coordinator")]
    plan: dict[str, tuple[str, list[int], bool]] = {}
    for p in others:
        if p.mpc_host and p.mpc_port_first:
            plan[p.name] = (p.mpc_host, probe.sample(p.mpc_port_first, p.mpc_port_last), True)
        else:
            host, _, port = p.address.rpartition(":")
            plan[p.name] = (host.strip("[]"), [int(port)] if port.isdigit() else [], False)
    got = probe.probe(
        [(host, port) for host, ports, _ in plan.values() for port in ports], timeout_s
    )
    lines = []
    for p in others:
        host, ports, mpc = plan[p.name]
        outcomes = {port: got[(host, port)] for port in ports}
        lines.append(_peer_line(p, host, ports, mpc, outcomes, timeout_s))
    return lines


def _peer_line(
    p: pb.Party,
    host: str,
    ports: list[int],
    mpc: bool,
    got: dict[int, probe.Outcome],
    timeout_s: float,
) -> Check:
    name = f"peer {p.name}"
    if not mpc:
        where = f"gRPC {p.address}"
        if not got or not all(o.reachable for o in got.values()):
            outcome = next(iter(got.values()), probe.Outcome.UNREACHABLE)
            return Check(name, Status.FAIL, f"{where}: {outcome}; MPC range not published")
        return Check(
            name,
            Status.WARN,
            f"{where} reachable; its MPC range is not probed: its node does not publish it "
            "(an older ensnif)",
        )
    span = f"MPC {host}:{p.mpc_port_first}-{p.mpc_port_last}"
    if len(ports) < p.mpc_port_last - p.mpc_port_first + 1:
        probed = f"{len(ports)} ports spread over the range"
    else:
        probed = "its only port" if len(ports) == 1 else f"all {len(ports)} ports"
    bad = {o: [port for port, x in got.items() if x is o] for o in probe.Outcome}
    if bad[probe.Outcome.TIMEOUT] or bad[probe.Outcome.UNREACHABLE]:
        parts = []
        if bad[probe.Outcome.TIMEOUT]:
            parts.append(
                f"port(s) {probe.describe(bad[probe.Outcome.TIMEOUT])} dropped (no answer "
                f"within {timeout_s:g} s: a firewall on the way or at {p.name}?)"
            )
        if bad[probe.Outcome.UNREACHABLE]:
            parts.append(f"port(s) {probe.describe(bad[probe.Outcome.UNREACHABLE])} unreachable")
        return Check(name, Status.FAIL, f"{span}: {'; '.join(parts)} ({probed} probed)")
    listening = len(bad[probe.Outcome.OPEN])
    return Check(
        name,
        Status.OK,
        f"{span}: {probed} {'answers' if len(ports) == 1 else 'answer'} ({listening} listening, "
        f"{len(bad[probe.Outcome.REFUSED])} refused: no job on them now)",
    )
