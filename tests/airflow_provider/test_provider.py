"""The Airflow provider against a real Apache Airflow and a real local consortium.

The consortium is LocalConsortium's: a coordinator and three party nodes as processes,
mTLS on loopback, MPyC workers. The example DAG (examples/airflow/ensnif_dag.py) runs with
``dag.test()`` on a SQLite metadata database that `airflow db migrate` created.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ensnif_mpc.airflow import EnsnifHook, EnsnifJobTrigger, EnsnifSubmitJobOperator
from ensnif_mpc.cli.demo_cmd import plaintext_answer
from ensnif_mpc.demo.localnet import LocalConsortium
from ensnif_mpc.jobs import jobspec

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).parents[2] / "examples" / "airflow" / "ensnif_dag.py"


@pytest.fixture(scope="module")
def lc(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path) -> Iterator[LocalConsortium]:
    consortium = LocalConsortium(tmp_path_factory.mktemp("consortium"), rows=300).setup()
    try:
        consortium.start(timeout_s=120)
        os.environ["AIRFLOW_CONN_ENSNIF_DEFAULT"] = json.dumps(
            {"conn_type": "ensnif", "extra": {"profile": str(consortium.profile)}}
        )
        os.environ["AIRFLOW_VAR_ENSNIF_JOBS_DIR"] = str(consortium.root / "jobs")
        yield consortium
    finally:
        consortium.stop()


@pytest.fixture(scope="module")
def dag_run(lc: LocalConsortium) -> dict[str, Any]:
    """The example DAG, run once by dag.test(); its state, XComs and the trigger's polls."""
    # The DAG file goes where Airflow's dags folder is: dag.test() stores it from there.
    dag_file = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / EXAMPLE.name
    shutil.copyfile(EXAMPLE, dag_file)
    spec = importlib.util.spec_from_file_location("ensnif_dag", dag_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    polls: list[str] = []
    real_poll = EnsnifJobTrigger._poll

    def counting_poll(self: EnsnifJobTrigger) -> dict[str, Any]:
        polls.append(self.job_id)
        return real_poll(self)

    EnsnifJobTrigger._poll = counting_poll  # type: ignore[method-assign]
    try:
        dr = module.dag.test()
    finally:
        EnsnifJobTrigger._poll = real_poll  # type: ignore[method-assign]
    return {
        "state": str(dr.state),
        "xcom": {
            (t, k): _xcom(dr, t, k)
            for t, k in [
                ("submit_revenue", "job_id"),
                ("mean_ticket_dp", "job_id"),
                ("mean_ticket_dp", "return_value"),
                ("wait_revenue", "return_value"),
                ("report", "return_value"),
            ]
        },
        "polls": polls,
    }


def _xcom(dr: Any, task_id: str, key: str) -> Any:
    """The XCom as a task reads it: the Task SDK's decoding of the stored JSON.

    Not XComModel.deserialize_value: it json-decodes the column's already decoded value a
    second time, so a job id such as ``68403e193805`` came back as the float ``inf``.
    """
    from airflow.models.xcom import XComModel
    from airflow.sdk.bases.xcom import BaseXCom
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=dr.run_id, key=key, dag_ids=dr.dag_id, task_ids=task_id
            ).with_only_columns(XComModel.value)
        ).first()
    return BaseXCom.deserialize_value(type("Row", (), {"value": row})) if row else None


def test_the_example_dag_succeeds(dag_run: dict[str, Any]) -> None:
    assert dag_run["state"].endswith("success"), dag_run


def test_the_deferred_task_waited_in_the_trigger(dag_run: dict[str, Any]) -> None:
    mean_job = dag_run["xcom"][("mean_ticket_dp", "job_id")]

    assert mean_job and set(dag_run["polls"]) == {mean_job}


def test_the_dp_result_is_pushed_as_plain_floats(
    dag_run: dict[str, Any], lc: LocalConsortium
) -> None:
    pushed = dag_run["xcom"][("mean_ticket_dp", "return_value")]
    truth = plaintext_answer(lc, jobspec.load(lc.root / "jobs" / "ticket-mean-dp.toml"))

    assert pushed["state"] == "succeeded" and pushed["dp"] is True
    assert set(pushed["values"]) == set(truth)
    interval = pushed["intervals"]["mean"]
    assert all(type(v) is float for v in (*pushed["values"].values(), interval["lower"]))
    assert pushed["noise_sd"] and all(sd > 0 for sd in pushed["noise_sd"].values())
    assert interval["lower"] <= pushed["values"]["mean"] <= interval["upper"]
    # The noisy mean is within 3 half-widths of its 95% interval (about 5.9σ of the noise
    # the owners' rows per person call for) of the plaintext mean.
    half = (interval["upper"] - interval["lower"]) / 2
    assert half > 0 and abs(pushed["values"]["mean"] - truth["mean"]) <= 3 * half


def test_the_sensor_and_the_hook_see_the_exact_job(
    dag_run: dict[str, Any], lc: LocalConsortium
) -> None:
    revenue_job = dag_run["xcom"][("submit_revenue", "job_id")]
    sensed = dag_run["xcom"][("wait_revenue", "return_value")]
    report = dag_run["xcom"][("report", "return_value")]
    truth = plaintext_answer(lc, jobspec.load(lc.root / "jobs" / "revenue-sum.toml"))

    assert sensed == {**sensed, "job_id": revenue_job, "state": "succeeded"}
    assert report["revenue"] == pytest.approx(truth["sum"], abs=1e-6)


def test_the_serialized_trigger_fires_for_an_ended_job(dag_run: dict[str, Any]) -> None:
    job_id = dag_run["xcom"][("mean_ticket_dp", "job_id")]
    classpath, kwargs = EnsnifJobTrigger(job_id, poll_interval=0.5).serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))

    async def first_event() -> Any:
        async for event in rebuilt.run():
            return event.payload

    assert asyncio.run(first_event())["state"] == "succeeded"


def test_a_connection_with_pem_contents_connects_and_logs_no_key(
    lc: LocalConsortium, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = lc.root / "pki"
    key_pem = (pki / "analyst.key").read_text()
    os.environ["AIRFLOW_CONN_ENSNIF_PEM"] = json.dumps(
        {
            "conn_type": "ensnif",
            "host": "127.0.0.1",
            "port": lc.members["coordinator"].port,
            "password": key_pem,
            "extra": {
                "ca_pem": (pki / "ca.crt").read_text(),
                "cert_pem": (pki / "analyst.crt").read_text(),
            },
        }
    )
    hook = EnsnifHook("ensnif_pem")
    caplog.set_level(logging.DEBUG)

    ok, message = hook.test_connection()

    assert ok, message
    assert hook._tmp is None  # the written PEM files are gone with the client
    body = "".join(key_pem.strip().splitlines()[1:-1])
    printed = capsys.readouterr()
    assert body[:40] not in caplog.text + printed.out + printed.err


def test_an_unknown_extra_is_refused_by_name(lc: LocalConsortium) -> None:
    from airflow.exceptions import AirflowException

    os.environ["AIRFLOW_CONN_ENSNIF_TYPO"] = json.dumps(
        {"conn_type": "ensnif", "extra": {"profle": str(lc.profile)}}
    )

    with pytest.raises(AirflowException, match="profle"):
        EnsnifHook("ensnif_typo").get_profile()


def test_a_job_the_coordinator_refuses_fails_the_task_with_its_reason(
    lc: LocalConsortium,
) -> None:
    from airflow.exceptions import AirflowException

    bad = {
        "protocol": "sum",
        "helpers": ["helper"],
        "inputs": [
            {"party": "grocery", "dataset": "no_such_table", "column": "basket_total"},
            {"party": "logistics", "dataset": "deliveries", "column": "fee"},
        ],
    }
    op = EnsnifSubmitJobOperator(task_id="bad", job=bad)

    with pytest.raises(AirflowException, match="no_such_table"):
        op.execute(context={})


def test_a_deferrable_sensor_on_an_ended_job_returns_without_deferring(
    dag_run: dict[str, Any],
) -> None:
    from ensnif_mpc.airflow import EnsnifJobSensor

    job_id = dag_run["xcom"][("mean_ticket_dp", "job_id")]
    sensor = EnsnifJobSensor(task_id="ended", job_id=job_id, deferrable=True)

    assert sensor.execute(context={})["state"] == "succeeded"
