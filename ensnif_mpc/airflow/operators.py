"""The operator that submits an Ensnif job, waits for it and pushes its result to XCom.

    EnsnifSubmitJobOperator(
        task_id="mean_ticket",
        job="jobs/ticket-mean-dp.toml",   # a job file, or a dict of its fields
        deferrable=True,                   # free the worker slot while the job runs
    )

XCom: ``job_id`` (as soon as the job is submitted) and the return value — the job's
summary and, once it succeeded, its result (:func:`ensnif_mpc.airflow.results.result_payload`).
A job that ends anything but ``succeeded`` fails the task with the job's reason.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from ensnif_mpc.airflow._compat import AirflowException, BaseOperator, Context
from ensnif_mpc.airflow.hook import DEFAULT_CONN_ID, EnsnifHook
from ensnif_mpc.airflow.results import check_succeeded, job_summary, load_spec, result_payload
from ensnif_mpc.airflow.triggers import EnsnifJobTrigger
from ensnif_mpc.errors import EnsnifError
from ensnif_mpc.jobs.jobspec import JobSpec
from ensnif_mpc.jobs.jobstate import JobState


def wait_for_job(hook: EnsnifHook, job_id: str, poll_interval: float, timeout_s: float) -> Any:
    """Poll ``GetJob`` until the job has ended (the non-deferrable wait); its summary."""
    deadline = time.monotonic() + timeout_s
    with hook.client() as c:
        while True:
            summary = job_summary(c.job(job_id))
            if JobState(summary["state"]).final:
                return summary
            if time.monotonic() > deadline:
                raise AirflowException(
                    f"Ensnif job {job_id} still {summary['state']} after {timeout_s:.0f} s"
                )
            time.sleep(poll_interval)


def fetch_result(hook: EnsnifHook, summary: dict[str, Any], confidence: float) -> dict[str, Any]:
    """Fail unless the job succeeded; else its result, opened with the analyst's key."""
    check_succeeded(summary)
    try:
        with hook.client() as c:
            result = c.result_details(summary["job_id"])
    except EnsnifError as exc:
        raise AirflowException(f"Ensnif job {summary['job_id']}: {exc}") from None
    return result_payload(result, summary, confidence)


class EnsnifSubmitJobOperator(BaseOperator):  # type: ignore[misc]
    """Submit a job (a job file's path or a dict of its fields), wait, push its result.

    ``wait=False``: return once submitted (pair it with :class:`EnsnifJobSensor`).
    ``deferrable=True``: hand the wait to the triggerer (:class:`EnsnifJobTrigger`).
    ``fresh=True``: compute again even when the coordinator could answer from cache.
    ``confidence``: of the intervals pushed with the result.
    """

    template_fields = ("job",)  # a path or the strings of a dict: Jinja-rendered
    ui_color = "#d8e8f8"

    def __init__(
        self,
        *,
        job: str | Path | dict[str, Any] | JobSpec,
        ensnif_conn_id: str = DEFAULT_CONN_ID,
        wait: bool = True,
        deferrable: bool = False,
        poll_interval: float = 5.0,
        timeout_seconds: float = 3600.0,
        fresh: bool = False,
        confidence: float = 0.95,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.ensnif_conn_id = ensnif_conn_id
        self.wait = wait
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout_seconds = timeout_seconds
        self.fresh = fresh
        self.confidence = confidence

    def execute(self, context: Context) -> Any:
        hook = EnsnifHook(self.ensnif_conn_id)
        spec = load_spec(self.job)
        try:
            with hook.client() as c:
                job = c.submit(spec, fresh=self.fresh)
        except EnsnifError as exc:
            raise AirflowException(f"Ensnif refused the job: {exc}") from None
        self.log.info("Submitted Ensnif job %s (%s)", job.id, spec.protocol)
        context["ti"].xcom_push(key="job_id", value=job.id)
        if not self.wait:
            return job_summary(job)
        if self.deferrable:
            self.defer(
                trigger=EnsnifJobTrigger(job.id, self.ensnif_conn_id, self.poll_interval),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout_seconds),
            )
        summary = wait_for_job(hook, job.id, self.poll_interval, self.timeout_seconds)
        return fetch_result(hook, summary, self.confidence)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resumed by the trigger's event: the job has ended."""
        return fetch_result(EnsnifHook(self.ensnif_conn_id), event, self.confidence)
