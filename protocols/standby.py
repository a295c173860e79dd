"""A pre-started job worker: the imports done, nothing of any job in it until one is assigned.

A worker's fixed cost is mostly imports (numpy, gmpy2, MPyC's modules, the data layer, the
protocol programs): about 0.5–1 s of CPU per party per job. A node keeps a few of these
processes ready (``party_node.executor.Executor``, ``standby_workers`` in party.toml); it
hands one a job by writing the job's directory to its stdin, and the process then becomes
that job's worker exactly as ``python -m protocols.worker JOB_DIR`` would (same session
file, same log, same exit codes).

What it may hold before a job: code only. It reads no session, no data and no key until the
directory arrives, and it serves exactly one job: a worker that held a job's data is never
reused (it exits at the job's end, as every worker does). MPyC's runtime module is the one
import left for after the assignment, because importing it parses ``sys.argv`` and builds
the runtime from the session's options (about 0.06 s).

An idle standby dies with its node (``ensnif_mpc.procs.die_with_parent``) and exits when its
stdin closes without a directory (the node shut it down).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

# MPyC's modules that import without building a runtime (mpyc.runtime parses sys.argv).
_MPYC = (
    "mpyc.numpy",
    "mpyc.finfields",
    "mpyc.thresha",
    "mpyc.asyncoro",
    "mpyc.sectypes",
    "mpyc.mpctools",
    "mpyc.secgroups",
    "mpyc.random",
    "mpyc.statistics",
    "mpyc.seclists",
    "mpyc.secpols",
)


def prepare() -> None:
    """Import what every job needs: the worker, MPyC's modules, the data layer and every
    registered protocol's program module."""
    from protocols import worker  # noqa: F401
    from protocols.registry import catalog

    for name in _MPYC:
        importlib.import_module(name)
    for module in ("ensnif_mpc.data.file_source", "ensnif_mpc.data.sources"):
        importlib.import_module(module)
    for definition in catalog().values():
        module = definition.program.split(":")[0]
        if module.startswith("protocols."):
            importlib.import_module(module)


def main() -> int:
    from ensnif_mpc.procs import die_with_parent

    die_with_parent()
    prepare()
    line = sys.stdin.readline().strip()
    if not line:
        return 0  # closed without a job: the node no longer needs this standby
    directory = Path(line)
    # From here on this process is the job's worker: its output goes where a cold-started
    # worker's does (the executor points a cold worker's stdout and stderr at worker.out).
    out = os.open(directory / "worker.out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    from protocols.worker import main as run_job

    return run_job([str(directory)])


if __name__ == "__main__":
    sys.exit(main())
