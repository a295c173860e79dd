"""What the provider pushes to XCom: plain JSON (floats, strings, lists), nothing pickled.

A job's outcome after it ended, and a finished job's result: every output's value, its
DP noise standard deviation and its central interval, as floats (``None`` where a value
is undefined — NaN is not JSON — or infinite).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ensnif_mpc.airflow._compat import AirflowException
from ensnif_mpc.gen.ensnif.v1 import common_pb2 as pb
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.jobs.jobspec import JobSpec
from ensnif_mpc.jobs.jobstate import JobState
from ensnif_mpc.rpc import convert
from ensnif_mpc.sdk.result import Result


def load_spec(job: str | Path | dict[str, Any] | JobSpec) -> JobSpec:
    """A job spec from a job file's path, a dict of its fields, or a built spec."""
    if isinstance(job, JobSpec):
        return job
    if isinstance(job, dict):
        return jobspec.from_dict(job)
    return jobspec.load(Path(job).expanduser())


def plain(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def job_summary(job: pb.Job) -> dict[str, Any]:
    """The state of a job as the operator and sensor report it."""
    return {
        "job_id": job.id,
        "state": convert.state_from_pb(job.state).value,
        "reason": job.reason,
        "reason_code": job.reason_code,
        "cached_from": job.cached_from,
    }


def check_succeeded(summary: dict[str, Any]) -> None:
    """Raise (the task fails) unless the job succeeded; the message names the reason."""
    if summary["state"] != JobState.SUCCEEDED.value:
        code = f" [{summary['reason_code']}]" if summary.get("reason_code") else ""
        raise AirflowException(
            f"Ensnif job {summary['job_id']} ended {summary['state']}{code}: "
            f"{summary.get('reason') or 'no reason given'}"
        )


def result_payload(
    result: Result, summary: dict[str, Any], confidence: float = 0.95
) -> dict[str, Any]:
    """A finished job's answers for XCom."""
    intervals: dict[str, dict[str, Any]] = {}
    for name in result.exact_values:
        ci = result.ci(name, confidence)
        intervals[name] = {
            "lower": plain(ci.lower),
            "upper": plain(ci.upper),
            "method": ci.method,
            "confidence": ci.confidence,
        }
    return {
        **summary,
        "protocol": result.protocol,
        "dp": result.dp,
        "mechanism": result.mechanism if result.dp else "exact",
        "values": {k: plain(v) for k, v in result.values.items()},
        "noise_sd": {k: plain(v) for k, v in result.noise_sd.items()},
        "intervals": intervals,
    }
