"""A consortium across separate network hosts: one Linux network namespace per member.

Topology (everything is created inside namespaces this harness owns, named
``ensn-<pid>-<role>``; the host's loopback and interfaces are never touched)::

    ensn-<pid>-coordinator  10.213.0.10 ─┐
    ensn-<pid>-grocery      10.213.0.11 ─┤
    ensn-<pid>-logistics    10.213.0.12 ─┼── br0 in ensn-<pid>-sw (10.213.0.1; relays .110-.113)
    ensn-<pid>-helper       10.213.0.13 ─┤
    ensn-<pid>-analyst      10.213.0.20 ─┘

Each member namespace has its own loopback and one veth (``eth0``) whose peer is a port of
the bridge ``br0`` in the switch namespace; veths are created directly in the switch
namespace with their other end moved into the member's, never in the host's.

Latency: this kernel has no ``sch_netem``, so with ``rtt_ms`` set every member is reached
at a *public* address 10.213.0.11x held by the delaying relay (tests/netns/relay.py, one
process in the switch namespace) which forwards to the member's own address. Every TCP
connection between two members (gRPC coordinator <-> node, analyst -> coordinator, MPyC
party <-> party) crosses exactly one relay, which holds each chunk RTT/2 in each
direction. With ``rtt_ms=None`` members dial each other's own addresses directly (no
user-space hop on the path at all). Faults are kernel-real in both modes: ``link_down``
sets the member's ``eth0`` down inside its namespace, ``firewall_mpc`` adds an iptables
DROP for its MPC port range to its namespace's INPUT chain.

Every daemon runs as ``ip netns exec <ns> python -m ensnif_mpc.cli.main ...`` (pid of
the Python process, which dies with this one through ``ENSNIF_PARENT_PID``); the analyst's
commands are the real CLI run in the analyst namespace. :func:`sweep_stale` removes
namespaces left by a run whose process is gone; :meth:`Network.close` removes this run's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ensnif_mpc.demo.localnet import NODES, LocalConsortium
from tests.helpers import job_worker_pids

PREFIX = "ensn-"
SUBNET = "10.213.0"
HOSTS = {"coordinator": 10, "grocery": 11, "logistics": 12, "helper": 13, "analyst": 20}
RELAY_OFFSET = 100  # a member's public (relay) address: 10.213.0.(100 + its host number)
COORDINATOR_PORT = 50051
NODE_PORT = 50061
MPC_PORTS = (41000, 41009)
RELAY = Path(__file__).with_name("relay.py")
DEFAULT_SILENCE_S = 15.0  # ENSNIF_PEER_SILENCE_SECONDS for the nodes' workers


class NetnsUnavailable(RuntimeError):
    """Namespaces cannot be created here (not root, no ``ip``, or the kernel refuses)."""


def _ip(*args: str, check: bool = True, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def unavailable_reason() -> str | None:
    """Why the namespace tests cannot run here, or None if they can."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (run the netns tests as root)"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed (scripts/ensure_netns.sh installs it)"
    probe = f"{PREFIX}{os.getpid()}-probe"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        return f"`ip netns add` failed: {detail.strip()}"
    finally:
        _ip("netns", "del", probe, check=False)
    return None


def _netns_list() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_inside(ns: str) -> None:
    for pid in _ip("netns", "pids", ns, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def sweep_stale() -> list[str]:
    """Delete ``ensn-<pid>-*`` namespaces whose creating process is gone (a crashed run)."""
    removed = []
    for ns in _netns_list():
        m = re.match(rf"{PREFIX}(\d+)-", ns)
        if m is None or Path(f"/proc/{m.group(1)}").exists():
            continue
        _kill_inside(ns)
        _ip("netns", "del", ns, check=False)
        removed.append(ns)
    return removed


@dataclass
class Network:
    """The namespaces, the bridge and the veths of one run."""

    members: Sequence[str] = tuple(HOSTS)
    tag: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}-{time.monotonic_ns() % 10**6}")
    created: list[str] = field(default_factory=list)

    def ns(self, member: str) -> str:
        return f"{self.tag}-{member}"

    @property
    def switch(self) -> str:
        return f"{self.tag}-sw"

    @staticmethod
    def address(member: str) -> str:
        return f"{SUBNET}.{HOSTS[member]}"

    @staticmethod
    def public_address(member: str) -> str:
        return f"{SUBNET}.{HOSTS[member] + RELAY_OFFSET}"

    def create(self) -> Network:
        try:
            self._add_ns(self.switch)
            sw = self.switch
            _ip("-n", sw, "link", "set", "lo", "up")
            _ip("-n", sw, "link", "add", "br0", "type", "bridge")
            _ip("-n", sw, "addr", "add", f"{SUBNET}.1/24", "dev", "br0")
            for member in self.members:
                _ip("-n", sw, "addr", "add", f"{self.public_address(member)}/24", "dev", "br0")
            _ip("-n", sw, "link", "set", "br0", "up")
            for member in self.members:
                ns = self.ns(member)
                self._add_ns(ns)
                port = f"v-{member}"[:15]
                _ip(
                    "-n",
                    sw,
                    "link",
                    "add",
                    port,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    ns,
                )
                _ip("-n", sw, "link", "set", port, "master", "br0", "up")
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", ns, "addr", "add", f"{self.address(member)}/24", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
        except BaseException:
            self.close()
            raise
        return self

    def _add_ns(self, name: str) -> None:
        _ip("netns", "add", name)
        self.created.append(name)

    def exec_prefix(self, member: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(member)]

    def run(self, member: str, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.exec_prefix(member), *argv], capture_output=True, text=True, timeout=timeout
        )

    # -- faults (inside the member's namespace only) ------------------------------------
    def link_down(self, member: str) -> None:
        _ip("-n", self.ns(member), "link", "set", "eth0", "down")

    def link_up(self, member: str) -> None:
        _ip("-n", self.ns(member), "link", "set", "eth0", "up")

    def firewall_mpc(self, member: str, lo: int, hi: int) -> None:
        """Drop every TCP packet arriving on eth0 for ports lo..hi (SYNs included)."""
        rule = ["-i", "eth0", "-p", "tcp", "--dport", f"{lo}:{hi}", "-j", "DROP"]
        self._iptables(member, "-A", "INPUT", *rule)

    def firewall_clear(self, member: str) -> None:
        self._iptables(member, "-F", "INPUT")

    def _iptables(self, member: str, *args: str) -> None:
        done = self.run(member, "iptables", "-w", "5", *args)
        if done.returncode != 0:
            raise RuntimeError(f"iptables {' '.join(args)} in {member}: {done.stderr.strip()}")

    def close(self) -> None:
        for ns in reversed(self.created):
            _kill_inside(ns)
        for ns in reversed(self.created):
            _ip("netns", "del", ns, check=False)
        self.created.clear()


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENSNIF_", "PYTEST"))}
    env.update(extra or {})
    return env


@dataclass
class NetnsConsortium:
    """The local consortium's PKI, data and job files, its daemons in separate namespaces.

    ``rtt_ms``: None for direct links, else the round-trip time the relay adds between
    any two members (changeable while running with :meth:`set_wan`).
    """

    root: Path
    rtt_ms: float | None = 50.0
    rate_mbit: float = 0.0
    rows: int = 400
    connect_timeout_s: float = 10.0
    job_timeout_s: float = 120.0
    silence_s: float = DEFAULT_SILENCE_S
    net: Network = field(default_factory=Network)
    lc: LocalConsortium | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def relayed(self) -> bool:
        return self.rtt_ms is not None

    def reach(self, member: str) -> str:
        """The address others dial to reach ``member``."""
        return self.net.public_address(member) if self.relayed else self.net.address(member)

    # -- setup ---------------------------------------------------------------------------
    def setup(self) -> NetnsConsortium:
        self.lc = LocalConsortium(
            self.root,
            rows=self.rows,
            connect_timeout_s=self.connect_timeout_s,
            job_timeout_s=self.job_timeout_s,
        ).setup()
        coord = f"{self.reach('coordinator')}:{COORDINATOR_PORT}"
        self._rewrite(
            self.root / "coordinator.toml",
            {"listen": f"{self.net.address('coordinator')}:{COORDINATOR_PORT}"},
        )
        for name in NODES:
            own = f"{self.net.address(name)}:{NODE_PORT}"
            self._rewrite(
                self.root / f"party-{name}.toml",
                {
                    "listen": own,
                    "advertise": f"{self.reach(name)}:{NODE_PORT}",
                    "coordinator": coord,
                    "mpc_host": self.reach(name),
                    "mpc_ports": f"{MPC_PORTS[0]}-{MPC_PORTS[1]}",
                },
            )
        self._rewrite(self.lc.profile, {"coordinator": coord})
        return self

    @staticmethod
    def _rewrite(path: Path, values: dict[str, str]) -> None:
        """Set top-level ``key = "value"`` lines (added after ``listen`` if missing)."""
        lines = path.read_text().splitlines()
        seen = set()
        out = []
        in_table = False
        for line in lines:
            in_table = in_table or line.startswith("[")
            key = line.split("=", 1)[0].strip() if "=" in line and not in_table else None
            if key in values:
                line = f'{key} = "{values[key]}"'
                seen.add(key)
            out.append(line)
            if key == "listen":
                for k, v in values.items():
                    if k not in seen and not any(x.startswith(f"{k} =") for x in lines):
                        out.append(f'{k} = "{v}"')
                        seen.add(k)
        path.write_text("\n".join(out) + "\n")

    # -- the WAN ---------------------------------------------------------------------------
    @property
    def _wan_file(self) -> Path:
        return self.root / "wan.json"

    @property
    def stats_file(self) -> Path:
        return self.root / "relay-stats.json"

    def _links(self) -> list[list[object]]:
        links: list[list[object]] = [
            [
                self.reach("coordinator"),
                COORDINATOR_PORT,
                self.net.address("coordinator"),
                COORDINATOR_PORT,
                "coordinator:grpc",
            ]
        ]
        for name in NODES:
            pub, own = self.reach(name), self.net.address(name)
            links.append([pub, NODE_PORT, own, NODE_PORT, f"{name}:grpc"])
            for p in range(MPC_PORTS[0], MPC_PORTS[1] + 1):
                links.append([pub, p, own, p, f"{name}:mpc"])
        return links

    def set_wan(self, rtt_ms: float, rate_mbit: float = 0.0) -> None:
        """A new round-trip time (and rate cap) for every chunk the relay receives next."""
        assert self.relayed, "a direct consortium has no relay"
        self._wan_file.write_text(json.dumps({"delay_ms": rtt_ms / 2, "rate_mbit": rate_mbit}))
        if "relay" in self.procs:
            self.procs["relay"].send_signal(signal.SIGHUP)
        self.rtt_ms, self.rate_mbit = rtt_ms, rate_mbit

    def relay_bytes(self, suffix: str = ":mpc") -> int:
        """Bytes the relay forwarded on the links whose label ends with ``suffix``."""
        try:
            stats = json.loads(self.stats_file.read_text())
        except (OSError, ValueError):
            return 0
        return sum(v["to_server"] + v["to_client"] for k, v in stats.items() if k.endswith(suffix))

    def _start_relay(self) -> None:
        links = self.root / "relay-links.json"
        links.write_text(json.dumps(self._links()))
        ready = self.root / "relay.ready"
        ready.unlink(missing_ok=True)
        assert self.rtt_ms is not None
        self.set_wan(self.rtt_ms, self.rate_mbit)
        log = (self.root / "logs" / "relay.log").open("ab")
        self.procs["relay"] = subprocess.Popen(
            [
                *self.net.exec_prefix("sw"),
                sys.executable,
                str(RELAY),
                "--links",
                str(links),
                "--control",
                str(self._wan_file),
                "--stats",
                str(self.stats_file),
                "--ready",
                str(ready),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_clean_env(),
        )
        log.close()
        deadline = time.monotonic() + 15
        while not ready.exists():
            if self.procs["relay"].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("relay did not start: " + self._tail("relay"))
            time.sleep(0.05)

    # -- processes ---------------------------------------------------------------------------
    def _spawn(self, member: str, kind: str, config: Path) -> None:
        env = _clean_env(
            {
                "ENSNIF_PARENT_PID": str(os.getpid()),
                "ENSNIF_PEER_SILENCE_SECONDS": f"{self.silence_s:g}",
            }
        )
        log = (self.root / "logs" / f"{member}.log").open("ab")
        self.procs[member] = subprocess.Popen(
            [
                *self.net.exec_prefix(member),
                sys.executable,
                "-m",
                "ensnif_mpc.cli.main",
                "--log-level",
                "INFO",
                kind,
                "serve",
                "--config",
                str(config),
            ],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()

    def start(self, timeout_s: float = 120.0) -> NetnsConsortium:
        if self.relayed:
            self._start_relay()
        self._spawn("coordinator", "coordinator", self.root / "coordinator.toml")
        for name in NODES:
            self._spawn(name, "party", self.root / f"party-{name}.toml")
        self.wait_ready(timeout_s)
        return self

    def _tail(self, member: str, n: int = 2000) -> str:
        log = self.root / "logs" / f"{member}.log"
        return log.read_text(errors="replace")[-n:] if log.exists() else ""

    def wait_ready(self, timeout_s: float = 60.0, parties: Iterable[str] = NODES) -> None:
        """Until every node is registered and both datasets are in the catalog."""
        want = set(parties)
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            for member, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{member} exited ({proc.returncode}):\n{self._tail(member)}"
                    )
            got = self.cli("parties", "list", "--json", timeout=30)
            if got.code == 0:
                names = {p.get("name") for p in got.json()}
                ds = self.cli("datasets", "list", "--json", timeout=30)
                if want <= names and ds.code == 0 and len(ds.json()) == 2:
                    return
                last = f"parties {sorted(n for n in names if n)}"
            else:
                last = got.stderr.strip()[-300:]
            time.sleep(0.5)
        raise RuntimeError(f"consortium not ready after {timeout_s:.0f}s ({last})")

    def cli(
        self,
        *args: str,
        member: str = "analyst",
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> CliResult:
        """The real ``ensnif`` CLI in ``member``'s namespace (the analyst's profile)."""
        assert self.lc is not None
        extra = {"ENSNIF_PROFILE": str(self.lc.profile), **(env or {})}
        try:
            done = subprocess.run(
                [*self.net.exec_prefix(member), sys.executable, "-m", "ensnif_mpc.cli.main", *args],
                cwd=self.root,
                env=_clean_env(extra),
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            return CliResult(124, str(exc.stdout or ""), f"timed out after {timeout:.0f}s")
        return CliResult(done.returncode, done.stdout, done.stderr)

    # -- jobs --------------------------------------------------------------------------------
    def submit(self, job_file: str) -> str:
        got = self.cli("job", "submit", "--json", f"jobs/{job_file}")
        assert got.code == 0, got.stderr
        return str(got.json()["job"]["id"])

    def status(self, job_id: str) -> dict[str, Any]:
        got = self.cli("job", "status", "--json", job_id, timeout=30)
        assert got.code == 0, got.stderr
        data = got.json()
        return dict(data.get("job", data))

    def wait_final(self, job_id: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.status(job_id)
            if job["state"] in ("succeeded", "failed", "cancelled", "rejected"):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout_s:.0f}s")
            time.sleep(0.5)

    def worker_status(self, party: str, job_id: str) -> dict[str, Any] | None:
        """The worker's own last status at ``party`` (its job directory, on this disk)."""
        path = self.root / "state" / party / "jobs" / job_id / "status.json"
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            return None

    def node_job(self, party: str, job_id: str) -> tuple[str, str] | None:
        """(state, reason code) of the job in ``party``'s own node store, read-only."""
        db = self.root / "state" / party / "node.db"
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
                row = conn.execute(
                    "SELECT state, reason_code FROM node_jobs WHERE job_id = ?", (job_id,)
                ).fetchone()
        except sqlite3.Error:
            return None
        return (str(row[0]), str(row[1] or "")) if row else None

    # -- teardown ----------------------------------------------------------------------------
    def stop(self, grace_s: float = 8.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.procs.clear()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.net.close()


def open_consortium(root: Path, **options: Any) -> NetnsConsortium:
    """Namespaces created, consortium configured and started, ready for jobs; on any
    failure everything is torn down before the error propagates."""
    c = NetnsConsortium(root, **options)
    try:
        c.net.create()
        c.setup()
        c.start()
    except BaseException:
        c.close()
        raise
    return c


def worker_pids(job_id: str) -> list[int]:
    """Live MPC worker processes of a job, at any member (one pid namespace for all)."""
    return job_worker_pids(job_id)


FAKETIME_LIBS = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
)


def faketime_env(offset: str) -> dict[str, str] | None:
    """The environment that shifts a process's wall clock by ``offset`` (e.g. ``-10m``) with
    libfaketime (clocks cannot differ per namespace); None if libfaketime is not installed.
    The monotonic clock is left alone: only the time of day is wrong, as on a skewed host."""
    for lib in FAKETIME_LIBS:
        if Path(lib).exists():
            return {"LD_PRELOAD": lib, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    return None
