"""Launching a raw MPyC baseline: three processes over TLS on loopback, as a person would run
a hand-written MPyC program (``-I i -P host:port ×3 --ssl``), timed from launch to exit."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ensnif_mpc.security import mpc_session, pki

HERE = Path(__file__).resolve().parent
PARTIES = 3


@dataclass
class RawRun:
    wall: float
    outputs: dict[str, Any]
    cpu: float  # process CPU seconds summed over the parties
    cpu_per_party: list[float]
    bytes_sent: list[int]  # per party, as MPyC counts them
    max_rss_mb: list[float] = field(default_factory=list)  # peak memory per party
    phases: list[dict[str, float]] = field(default_factory=list)  # per party


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _credentials(work: Path) -> list[tuple[mpc_session.MpcCredential, str]]:
    """MPyC's TLS material for ``MPyC party <i>``, rooted in a throw-away CA (made once)."""
    names = [f"p{i}" for i in range(PARTIES)]
    if not (work / "pki" / pki.CA_CERT).exists():
        pki.init_ca(work / "pki")
        for n in names:
            pki.issue(work / "pki", n, "party")
    return [
        (mpc_session.mint("bench", i, (work / "pki" / f"{n}.key").read_bytes()), n)
        for i, n in enumerate(names)
    ]


def run(work: Path, script: str, job: dict[str, Any], timeout_s: float) -> RawRun:
    """Run ``bench/<script>`` as parties 0..2 with ``job`` as their job file."""
    creds = _credentials(work)
    ports = free_ports(PARTIES)
    peers = [
        mpc_session.PeerBinding(i, n, f"127.0.0.1:{ports[i]}", c.cert_pem, c.binding_signature, "")
        for i, (c, n) in enumerate(creds)
    ]
    argv_tail = ["--no-log", "--ssl", *[a for p in ports for a in ("-P", f"127.0.0.1:{p}")]]
    dirs = []
    for i, (cred, _) in enumerate(creds):
        d = work / f"party{i}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        mpc_session.write_config(d, i, cred, peers)
        (d / "job.json").write_text(json.dumps(job))
        dirs.append(d)
    start = time.perf_counter()
    procs = []
    for i, d in enumerate(dirs):
        with (d / "stderr.txt").open("wb") as err:
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(HERE / script), str(d / "job.json"), "-I", str(i)]
                    + argv_tail,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    text=True,
                )
            )
    deadline = start + timeout_s
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=max(deadline - time.perf_counter(), 1))[0])
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
            p.wait(timeout=10)
        raise TimeoutError(f"raw MPyC {script} did not finish within {timeout_s:.0f} s") from None
    wall = time.perf_counter() - start
    bodies = []
    for i, (p, out) in enumerate(zip(procs, outs, strict=True)):
        lines = out.strip().splitlines()
        if p.returncode != 0 or not lines:
            err = (dirs[i] / "stderr.txt").read_text()[-3000:]
            raise RuntimeError(f"raw MPyC party {i} exited with {p.returncode}:\n{err}")
        bodies.append(json.loads(lines[-1]))
    return RawRun(
        wall=wall,
        outputs=bodies[0]["outputs"],
        cpu=sum(b["cpu"] for b in bodies),
        cpu_per_party=[b["cpu"] for b in bodies],
        bytes_sent=[b["bytes_sent"] for b in bodies],
        max_rss_mb=[b["max_rss_mb"] for b in bodies],
        phases=[b["phases"] for b in bodies],
    )
