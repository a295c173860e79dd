"""The contract between a party node and the worker process it launches for one job.

The node writes ``session.json`` into the job's workspace (for a data owner it
names the dataset's source and the columns by role; the worker reads the data
itself, so a slow or failing source is bounded by the job's own limits).
The worker writes ``status.json`` while it runs and ``result.sealed`` when it
has delivered. Both sides import only this module, so they cannot drift.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SESSION_FILE = "session.json"
STATUS_FILE = "status.json"
RESULT_FILE = "result.sealed"
# This party's shares of the artifacts the job kept secret-shared, for the node's store.
ARTIFACTS_FILE = "artifacts.out.json"
LOG_FILE = "worker.log"
# A worker forked by a node's fork server finds here the pipe on which it says ``done`` once
# its result and its last status are written (protocols/standby.py): its share is delivered
# then, not after its process was torn down and reaped.
DONE_FD_ENV = "ENSNIF_WORKER_DONE_FD"

# Exit codes of the worker, so the node can tell failures apart without parsing logs.
EXIT_OK = 0
EXIT_FAILED = 3
EXIT_BAD_SESSION = 4


@dataclass(frozen=True)
class WorkerSession:
    job_id: str
    protocol: str
    params: dict[str, Any]
    index: int
    threshold: int
    addresses: list[str]  # host:port of every party, in session order
    owners: list[int]  # indices that feed inputs; the rest are compute-only
    bit_length: int
    decimals: int
    analyst_cert_pem: str
    # This owner's dataset: its SourceSpec as a dict, declared columns, clamp flag, and the
    # role -> column names it provides. None/empty at a compute-only party.
    source: dict[str, Any] | None = None
    dataset_columns: list[dict[str, Any]] = field(default_factory=list)
    clamp: bool = False
    roles: dict[str, str] = field(default_factory=dict)
    # The roles this owner fills with a list of columns (e.g. features), in the job's order.
    role_lists: dict[str, list[str]] = field(default_factory=dict)
    # Public: the role -> column names of every data owner, in input order.
    input_roles: list[dict[str, str]] = field(default_factory=list)
    # Public: the role -> list of columns of every data owner, in input order.
    input_role_lists: list[dict[str, list[str]]] = field(default_factory=list)
    # How outputs are released (ensnif_mpc.privacy.dp.ReleasePlan as a dict); empty = exact.
    release: dict[str, Any] = field(default_factory=dict)
    # DP jobs at an owner that names its person: [person_column, rows_per_person], the
    # contribution bound of its local pre-aggregation (ensnif_mpc.data.bounding).
    bound: list[Any] | None = None
    # The owner's min_cohort rule withheld its rows from this job, silently (its noisy
    # cohort was below the minimum): it takes part with an empty selection.
    withheld: bool = False
    # This owner's min_cohort, for a protocol that enforces it on the joint noisy count
    # inside MPC (ProtocolDef.extra["joint_cohort"]: group discovery); 0 otherwise.
    min_cohort: int = 0
    sec_param: int = 30
    extra: dict[str, Any] = field(default_factory=dict)
    # Every party's member name and consortium certificate, in session order: an output
    # a protocol opens to a named party is sealed to that member's certificate.
    party_names: list[str] = field(default_factory=list)
    party_cert_pems: list[str] = field(default_factory=list)
    # This party's shares of the artifacts the job takes as input
    # (ensnif_mpc.results.artifacts.ArtifactShare as dicts), copied from the node's store.
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    # At the node holding an outsourced dataset whose owner's position it plays: where the
    # dataset is and what the job reads (party_node/admission.py); empty elsewhere.
    outsourced: dict[str, Any] = field(default_factory=dict)

    @property
    def has_input(self) -> bool:
        return self.source is not None

    def write(self, directory: Path) -> None:
        atomic_write(directory / SESSION_FILE, json.dumps(asdict(self), indent=2).encode())

    @staticmethod
    def read(directory: Path) -> WorkerSession:
        return WorkerSession(**json.loads((directory / SESSION_FILE).read_text()))


@dataclass(frozen=True)
class WorkerStatus:
    # starting | connecting | preparing (reading own data) | computing (or a protocol's own
    # step: shuffling, pseudonyms, aggregating, noising) | delivering | done | failed
    phase: str
    fraction: float = 0.0
    message: str = ""
    bytes_sent: int = 0
    reason_code: str = ""
    cpu_seconds: float = 0.0  # the worker's own CPU time so far (for benchmarks and operators)
    # MPyC messages sent to peers and rounds (send bursts after a wait) so far
    # (protocols/transport_stats.py): fixed by the job's sizes, not its data.
    messages_sent: int = 0
    rounds: int = 0

    def write(self, directory: Path) -> None:
        atomic_write(directory / STATUS_FILE, json.dumps(asdict(self)).encode())

    @staticmethod
    def read(directory: Path) -> WorkerStatus | None:
        try:
            return WorkerStatus(**json.loads((directory / STATUS_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
