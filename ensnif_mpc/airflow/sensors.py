"""The sensor that waits for an Ensnif job, by id, to end.

    EnsnifJobSensor(task_id="wait", job_id="{{ ti.xcom_pull(task_ids='submit', key='job_id') }}")

Done when the job succeeded (its summary is the sensor's XCom return value); a job that
failed, was cancelled or was rejected fails the sensor with the job's reason.
``deferrable=True`` waits in the triggerer (:class:`EnsnifJobTrigger`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ensnif_mpc.airflow._compat import AirflowException, BaseSensorOperator, Context
from ensnif_mpc.airflow.hook import DEFAULT_CONN_ID, EnsnifHook
from ensnif_mpc.airflow.results import check_succeeded, job_summary
from ensnif_mpc.airflow.triggers import EnsnifJobTrigger
from ensnif_mpc.errors import EnsnifError
from ensnif_mpc.jobs.jobstate import JobState


class EnsnifJobSensor(BaseSensorOperator):  # type: ignore[misc]
    template_fields = ("job_id",)
    ui_color = "#e8f0f8"

    def __init__(
        self,
        *,
        job_id: str,
        ensnif_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.ensnif_conn_id = ensnif_conn_id
        self.deferrable = deferrable
        self._summary: dict[str, Any] = {}

    def poke(self, context: Context) -> bool:
        try:
            with EnsnifHook(self.ensnif_conn_id).client() as c:
                summary = job_summary(c.job(self.job_id))
        except EnsnifError as exc:
            raise AirflowException(f"Ensnif job {self.job_id}: {exc}") from None
        self.log.info("Ensnif job %s is %s", self.job_id, summary["state"])
        if not JobState(summary["state"]).final:
            return False
        check_succeeded(summary)
        self._summary = summary
        return True

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            super().execute(context)
            return self._summary
        if self.poke(context):  # already over: no need to defer
            return self._summary
        self.defer(
            trigger=EnsnifJobTrigger(self.job_id, self.ensnif_conn_id, float(self.poke_interval)),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        check_succeeded(event)
        return event
