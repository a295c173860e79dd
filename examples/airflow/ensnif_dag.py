"""An Airflow DAG that asks the consortium two questions (docs/airflow.md).

1. ``submit_revenue``: the consortium's revenue (basket totals plus delivery fees), an
   exact sum, from a spec written in the DAG; submitted without waiting.
2. ``mean_ticket_dp``: the mean ticket with differential privacy, from a job file; the
   task defers to the triggerer while the job runs and pushes the noisy mean, its noise
   standard deviation and its 95 % interval to XCom.
3. ``wait_revenue``: a sensor on the first job's id (pulled from XCom).
4. ``report``: the hook opens the first job's result; both answers in one dict.

Airflow settings it reads: the connection ``ensnif_default`` (type ``ensnif``) and the
Variable ``ensnif_jobs_dir`` (the folder of the job files, e.g. ``.demo/jobs`` of
``ensnif demo``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from ensnif_mpc.airflow import EnsnifHook, EnsnifJobSensor, EnsnifSubmitJobOperator

REVENUE = {
    "name": "consortium revenue (baskets + delivery fees)",
    "protocol": "sum",
    "helpers": ["helper"],
    "inputs": [
        {"party": "grocery", "dataset": "orders", "column": "basket_total"},
        {"party": "logistics", "dataset": "deliveries", "column": "fee"},
    ],
    "privacy": {"exact": True},
}

with DAG(
    dag_id="ensnif_consortium_report",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["ensnif"],
) as dag:
    submit_revenue = EnsnifSubmitJobOperator(task_id="submit_revenue", job=REVENUE, wait=False)

    mean_ticket = EnsnifSubmitJobOperator(
        task_id="mean_ticket_dp",
        job="{{ var.value.ensnif_jobs_dir }}/ticket-mean-dp.toml",
        deferrable=True,
        poll_interval=2,
        fresh=True,  # a scheduled report spends budget on a fresh answer each run
    )

    wait_revenue = EnsnifJobSensor(
        task_id="wait_revenue",
        job_id="{{ ti.xcom_pull(task_ids='submit_revenue', key='job_id') }}",
        poke_interval=2,
        timeout=600,
        mode="poke",
    )

    @task
    def report(revenue_job_id: str, mean: dict[str, Any]) -> dict[str, Any]:
        with EnsnifHook().client() as client:
            revenue = client.result(revenue_job_id)
        return {
            "revenue": revenue["sum"],
            "mean_ticket": mean["values"]["mean"],
            "mean_ticket_interval": [
                mean["intervals"]["mean"]["lower"],
                mean["intervals"]["mean"]["upper"],
            ],
        }

    summary = report(submit_revenue.output["job_id"], mean_ticket.output)
    submit_revenue >> mean_ticket >> wait_revenue >> summary
