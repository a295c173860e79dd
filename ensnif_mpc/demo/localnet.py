"""A whole consortium on this machine: PKI, sample data, configs, and real processes.

Used by ``ensnif demo`` and by the integration and end-to-end tests, so that what
the tests exercise is exactly what a person runs: a coordinator and three party
nodes (grocery, logistics, helper) as separate processes on free loopback ports,
each talking mTLS with certificates from one consortium CA.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ensnif_mpc.config import ClientProfile
from ensnif_mpc.demo import sample_data
from ensnif_mpc.errors import EnsnifError, Unavailable
from ensnif_mpc.procs import child_env
from ensnif_mpc.sdk.client import Client
from ensnif_mpc.security import pki

NODES = ("grocery", "logistics", "helper")
JOBS_DIR = Path(__file__).with_name("jobs")
ANALYST = "analyst"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_range(width: int) -> int:
    """A base port whose next ``width`` ports are free now (ephemeral ports avoided)."""
    import random

    rnd = random.Random()
    for _ in range(200):
        base = rnd.randrange(20000, 32000, 10)
        ok = True
        for p in range(base, base + width):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise Unavailable("no free range of MPC ports found")


# The sample datasets: (name, file, description, numeric columns (name, type, lower, upper,
# decimals)); every dataset also declares its string keys customer_id and zip.
DATASETS: dict[str, tuple[str, str, str, tuple[tuple[str, str, float, float, int], ...]]] = {
    "grocery": (
        "orders",
        "data/orders.csv",
        "one row per order",
        (("basket_total", "float", 0, 500, 2),),
    ),
    "logistics": (
        "deliveries",
        "data/deliveries.csv",
        "one row per delivery",
        (
            ("delivery_minutes", "int", 5, 240, 0),
            ("distance_km", "float", 0, 80, 1),
            ("fee", "float", 0, 60, 2),
        ),
    ),
}


# Each owner's second dataset: one row per customer (rows_per_person = 1), for the demo's DP
# logistic model across the join (a customer's rows at both owners move it as one person).
CUSTOMER_DATASETS: dict[
    str, tuple[str, str, str, tuple[tuple[str, str, float, float, int], ...]]
] = {
    "grocery": (
        "customers",
        "data/grocery_customers.csv",
        "one row per customer: orders and mean basket",
        (("orders", "int", 1, 50, 0), ("mean_basket", "float", 0, 500, 2)),
    ),
    "logistics": (
        "customers",
        "data/logistics_customers.csv",
        "one row per customer: deliveries, mean distance, mostly late (0/1)",
        (
            ("deliveries", "int", 1, 50, 0),
            ("mean_distance", "float", 0, 80, 1),
            ("late", "int", 0, 1, 0),
        ),
    ),
}


# What the sample owners' policies allow on their datasets: the aggregates, the
# statistics and the private joins (a real owner lists only what it accepts to leak).
ALLOWED = (
    "count",
    "sum",
    "mean",
    "variance",
    "stdev",
    "minmax",
    "histogram",
    "quantile",
    "group_count",
    "group_sum",
    "group_by",
    "group_mean",
    "group_discovery",
    "intersection_size",
    "intersection_sum",
    "join_group_by",
    "join_correlation",
    # Outputs to a named party and artifacts kept secret-shared (docs/protocols.md).
    "restart",
    "restart_1",
    "restart_2",
    "stash_sum",
    "stash_add",
    "local_sum",  # one owner alone (backend local)
    # Models (docs/models.md).
    "linear_regression",
    "join_regression",
    "join_logistic",
    "predict",  # scores with a model kept secret-shared, to the row owner only
    "model_accuracy",
)


def _dataset_toml(
    name: str,
    path: str,
    description: str,
    numeric: tuple[tuple[str, str, float, float, int], ...],
    rows_per_person: int = 1,
) -> str:
    """A sample dataset's TOML. The privacy unit is a customer (``customer_id``), who has
    several orders or deliveries: ``rows_per_person`` is set from the data (the most rows
    one customer has), and the node bounds each customer's rows to it for DP releases."""
    out = [
        f'\n[[datasets]]\nname = "{name}"\npath = "{path}"\ndescription = "{description}"\n'
        f"allowed_protocols = {json.dumps(list(ALLOWED))}\n"
        # The sample owners allow exact answers (so the demo can show them next to the
        # plaintext) and give every dataset a budget for the DP jobs.
        f"\n[datasets.privacy]\nbudget_rho = 10.0\ndefault_rho = 0.1\nmax_rho = 1.0\n"
        f"exact_protocols = {json.dumps(list(ALLOWED))}\n"
        f'rows_per_person = {rows_per_person}\nperson_column = "customer_id"\n'
    ]
    for key in ("customer_id", "zip"):
        out.append(f'\n[[datasets.columns]]\nname = "{key}"\ntype = "string"\n')
    for col, kind, lower, upper, decimals in numeric:
        out.append(
            f'\n[[datasets.columns]]\nname = "{col}"\ntype = "{kind}"\n'
            f"lower = {lower}\nupper = {upper}\n" + (f"decimals = {decimals}\n" if decimals else "")
        )
    return "".join(out)


@dataclass
class Member:
    name: str
    kind: str  # coordinator | party
    config: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class LocalConsortium:
    root: Path
    rows: int = 3000
    seed: int = 7
    connect_timeout_s: float = 20.0
    job_timeout_s: float = 600.0
    members: dict[str, Member] = field(default_factory=dict)
    data: sample_data.SampleData | None = None
    # The owners' one-row-per-customer datasets too (CUSTOMER_DATASETS; the demo's DP
    # logistic model): off by default, so other consortia publish the two datasets only.
    customers: bool = False

    @property
    def datasets(self) -> int:
        """How many datasets the owners publish."""
        return len(DATASETS) * (2 if self.customers else 1)

    # -- setup ---------------------------------------------------------------
    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def profile(self) -> Path:
        return self.root / "analyst-profile.toml"

    def setup(self) -> LocalConsortium:
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.pki_dir / pki.CA_CERT).exists():
            pki.init_ca(self.pki_dir)
            pki.issue(self.pki_dir, "coordinator", "coordinator")
            for n in NODES:
                pki.issue(self.pki_dir, n, "party")
            pki.issue(self.pki_dir, ANALYST, "analyst")
        self.data = sample_data.generate(self.root / "data", self.rows, self.seed)
        (self.root / "logs").mkdir(exist_ok=True)
        cport = free_port()
        self._write(
            self.root / "coordinator.toml",
            f"""# Ensnif coordinator (generated by the local consortium)
name = "coordinator"
listen = "127.0.0.1:{cport}"
database = "sqlite:///state/coordinator.db"

[tls]
ca = "pki/ca.crt"
cert = "pki/coordinator.crt"
key = "pki/coordinator.key"

[timeouts]
propose_seconds = 30
job_seconds = {self.job_timeout_s:.0f}
""",
        )
        (self.root / "state").mkdir(exist_ok=True)
        self.members["coordinator"] = Member(
            "coordinator",
            "coordinator",
            self.root / "coordinator.toml",
            cport,
            self.root / "logs" / "coordinator.log",
        )
        base = _free_range(30 * len(NODES))
        for k, name in enumerate(NODES):
            port = free_port()
            lo = base + 30 * k
            cfg = self.root / f"party-{name}.toml"
            self._write(cfg, self._party_toml(name, port, cport, lo, lo + 29))
            self.members[name] = Member(
                name, "party", cfg, port, self.root / "logs" / f"{name}.log"
            )
        self._write(
            self.profile,
            f"""# Analyst client profile
coordinator = "127.0.0.1:{cport}"
coordinator_name = "coordinator"

[tls]
ca = "pki/ca.crt"
cert = "pki/{ANALYST}.crt"
key = "pki/{ANALYST}.key"
""",
        )
        self._write_jobs()
        return self

    def _party_toml(self, name: str, port: int, cport: int, lo: int, hi: int) -> str:
        head = f'''# Ensnif party node "{name}" (generated by the local consortium)
name = "{name}"
listen = "127.0.0.1:{port}"
coordinator = "127.0.0.1:{cport}"
coordinator_name = "coordinator"
state_dir = "state/{name}"
mpc_host = "127.0.0.1"
mpc_ports = "{lo}-{hi}"

[timeouts]
connect_seconds = {self.connect_timeout_s:.0f}
job_seconds = {self.job_timeout_s:.0f}

[tls]
ca = "pki/ca.crt"
cert = "pki/{name}.crt"
key = "pki/{name}.key"
'''
        if name in DATASETS:
            path = self.root / DATASETS[name][1]
            rows = sample_data.most_rows_per_customer(path)
            out = head + _dataset_toml(*DATASETS[name], rows_per_person=rows)
            if self.customers:
                out += _dataset_toml(*CUSTOMER_DATASETS[name], rows_per_person=1)
            return out
        return head + "\n# A compute-only helper: no datasets, it completes the honest majority.\n"

    def _write_jobs(self) -> None:
        """The demo's job files (also the README's examples: examples/jobs links to them)."""
        jobs = self.root / "jobs"
        jobs.mkdir(exist_ok=True)
        for path in sorted(JOBS_DIR.glob("*.toml")):
            self._write(jobs / path.name, path.read_text())

    @staticmethod
    def _write(path: Path, text: str) -> None:
        path.write_text(text)

    # -- processes -----------------------------------------------------------
    def _spawn(self, m: Member) -> None:
        cmd = [
            sys.executable,
            "-m",
            "ensnif_mpc.cli.main",
            "--log-level",
            "INFO",
            m.kind,
            "serve",
            "--config",
            str(m.config),
        ]
        log = m.log.open("ab")
        env = child_env(
            {k: v for k, v in os.environ.items() if not k.startswith(("ENSNIF_", "PYTEST"))}
        )
        m.proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()

    def start(self, timeout_s: float = 60.0) -> None:
        self._spawn(self.members["coordinator"])
        for n in NODES:
            self._spawn(self.members[n])
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until all three nodes are registered and every dataset published."""
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            for m in self.members.values():
                if m.proc is not None and m.proc.poll() is not None:
                    tail = m.log.read_text()[-2000:] if m.log.exists() else ""
                    raise Unavailable(f"{m.name} exited with code {m.proc.returncode}:\n{tail}")
            try:
                with self.client() as c:
                    if len(c.parties()) == len(NODES) and len(c.datasets()) == self.datasets:
                        return
            except EnsnifError as exc:
                last = exc
            time.sleep(0.3)
        raise Unavailable(f"consortium not ready after {timeout_s:.0f}s ({last})")

    def client(self) -> Client:
        return Client(ClientProfile.load(self.profile))

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        m = self.members[name]
        if m.proc is not None and m.proc.poll() is None:
            m.proc.send_signal(sig)
            m.proc.wait(timeout=15)

    def restart(self, name: str) -> None:
        self.kill(name, signal.SIGKILL)
        self._spawn(self.members[name])

    def stop(self, grace_s: float = 10.0) -> list[str]:
        """SIGTERM everyone, SIGKILL stragglers; returns the names that had to be killed."""
        killed = []
        for m in self.members.values():
            if m.alive():
                assert m.proc is not None
                m.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for m in self.members.values():
            if m.proc is None:
                continue
            try:
                m.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait(timeout=5)
                killed.append(m.name)
        return killed

    def __enter__(self) -> LocalConsortium:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
