"""What the raw MPyC baselines (``bench/raw_*.py``) share: their job file, the owner's own
CSV read and pre-aggregation with Arrow, phase timings, and the one JSON line each party
prints at the end.

A baseline runs as ``python bench/raw_X.py JOB_JSON <MPyC options>`` with its party
directory (holding MPyC's ``.config`` TLS material) next to ``JOB_JSON``. MPyC parses
``sys.argv`` when imported, so a script calls :func:`setup` before ``import mpyc``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

T0 = time.perf_counter()


def setup() -> dict[str, Any]:
    """Read the job file, move into the party's directory and leave MPyC its options."""
    path = Path(sys.argv[1]).resolve()
    job: dict[str, Any] = json.loads(path.read_text())
    os.chdir(path.parent)
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    return job


def read(path: str, columns: list[str], strings: tuple[str, ...] = ()) -> Any:
    """The owner's CSV, only the columns it needs (keys and groups as text)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {c: pa.string() for c in columns if c in strings}
    return pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(include_columns=columns, column_types=types),
    )


def scaled(table: Any, column: str, decimals: int) -> np.ndarray:
    """A numeric column as exact integers on a decimal scale (round half to even)."""
    values = table.column(column).to_numpy()
    return np.rint(values * 10**decimals).astype(np.int64)


class Clock:
    """Wall time per phase since the last lap (the process start for the first)."""

    def __init__(self) -> None:
        self.last = T0
        self.phases: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self.last
        self.last = now


def bytes_sent(mpc: Any) -> int:
    return sum(
        p.protocol.nbytes_sent for p in mpc.parties if p.pid != mpc.pid and p.protocol is not None
    )


def peak_memory_mb() -> float:
    """This process's peak resident memory (VmHWM; getrusage would include the launching
    process's, which Linux carries across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def report(outputs: dict[str, float], sent: int, clock: Clock) -> None:
    """The party's last stdout line: outputs, seconds, CPU seconds, peak memory, bytes sent,
    phases."""
    print(
        json.dumps(
            {
                "outputs": outputs,
                "seconds": time.perf_counter() - T0,
                "cpu": time.process_time(),
                "max_rss_mb": peak_memory_mb(),
                "bytes_sent": sent,
                "phases": clock.phases,
            }
        ),
        flush=True,
    )
